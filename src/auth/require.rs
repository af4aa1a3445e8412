//! Scope checks, built from the [`AuthLayer`] in front of them with
//! [`AuthLayer::require_scopes`] (all of the scopes) or
//! [`AuthLayer::require_any_scope`] (one of them).
//!
//! Built that way, a scope check answers in the layer's realm, with the
//! layer's responder and its attach setting, and a route requiring a scope
//! the layer's catalog does not define is refused when the route is built.
//! With axum, put it on routes with `route_layer`: a path no route matches
//! then answers 404 (after authentication, see the README), while a route's
//! missing scope answers 403.
//!
//! ```
//! # fn your_token_config() -> tower_pat::TokenConfig {
//! #     // Your API's token format and scopes, here `nvl_live_…` tokens.
//! #     tower_pat::TokenConfig::new(
//! #         tower_pat::TokenFormat::new("nvl", tower_pat::Environment::Live).unwrap(),
//! #         tower_pat::ScopeCatalog::new()
//! #             .scope("products:read", "List products.")
//! #             .scope("orders:read", "Read orders.")
//! #             .scope("orders:write", "Create orders.")
//! #             .scope("wallet:read", "Read the wallet balance."),
//! #     )
//! # }
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use axum::{body::Body, routing::get, Router};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//! use tower_pat::transport::TlsConnection;
//! use tower_pat::admin::{NewToken, TokenManager};
//! use tower_pat::{AuthLayer, MemoryStore};
//!
//! let store = MemoryStore::new();
//! let admin = TokenManager::new(store.clone(), your_token_config());
//! let token = admin
//!     .create(NewToken::new("bot", "demo-store", ["orders:read"]))
//!     .await
//!     .unwrap()
//!     .token;
//!
//! let auth = AuthLayer::new(store, your_token_config());
//! let app = Router::new()
//!     .route("/orders", get(|| async { "orders" }).route_layer(auth.require_scopes(["orders:read"])))
//!     .route("/wallet", get(|| async { "wallet" }).route_layer(auth.require_scopes(["wallet:read"])))
//!     .layer(auth);
//!
//! let get = |path: &str| {
//!     Request::get(path)
//!         .extension(TlsConnection) // set by the TLS listener
//!         .header("authorization", format!("Bearer {}", token.expose_secret()))
//!         .body(Body::empty())
//!         .unwrap()
//! };
//! assert_eq!(app.clone().oneshot(get("/orders")).await.unwrap().status(), StatusCode::OK);
//! let denied = app.oneshot(get("/wallet")).await.unwrap();
//! assert_eq!(denied.status(), StatusCode::FORBIDDEN);
//! assert_eq!(
//!     denied.headers()["www-authenticate"],
//!     r#"Bearer realm="api", error="insufficient_scope", scope="wallet:read""#
//! );
//! # }
//! ```
//!
//! [`AuthLayer`]: crate::auth::AuthLayer
//! [`AuthLayer::require_scopes`]: crate::auth::AuthLayer::require_scopes
//! [`AuthLayer::require_any_scope`]: crate::auth::AuthLayer::require_any_scope

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::auth::{Anonymous, Authenticated};
use crate::response::{ProblemDetails, Realm, Rejection, RejectionKind, Responder};
use crate::scope::{ScopeCatalog, ScopeError, ScopeMatch, ScopeSet};

/// Layer checking the [`Authenticated`] scopes of each request. Built by
/// [`crate::auth::AuthLayer::require_scopes`] and
/// [`crate::auth::AuthLayer::require_any_scope`], with that layer's responder.
#[derive(Clone)]
#[must_use]
pub struct RequireScopesLayer<R = ProblemDetails> {
    required: ScopeSet,
    mode: ScopeMatch,
    realm: Arc<Realm>,
    responder: R,
}

impl<R: fmt::Debug> fmt::Debug for RequireScopesLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireScopesLayer")
            .field("required", &self.required)
            .field("mode", &self.mode)
            .field("realm", &self.realm.name())
            .field("responder", &self.responder)
            .finish()
    }
}

impl<R> RequireScopesLayer<R> {
    /// Validates `scopes` (well-formed, at least one, each defined in
    /// `catalog`) and builds the check.
    pub(crate) fn try_new<I>(
        scopes: I,
        mode: ScopeMatch,
        catalog: &ScopeCatalog,
        realm: Arc<Realm>,
        responder: R,
    ) -> Result<Self, ScopeError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let required = ScopeSet::parse(scopes)?;
        if required.is_empty() {
            return Err(ScopeError::Empty);
        }
        if let Some(unknown) = required.iter().find(|s| catalog.get(s.as_str()).is_none()) {
            return Err(ScopeError::Unknown(unknown.to_string()));
        }
        Ok(Self {
            required,
            mode,
            realm,
            responder,
        })
    }

    /// Answers this route's rejections with `responder` instead of the
    /// auth layer's.
    pub fn responder<R2>(self, responder: R2) -> RequireScopesLayer<R2> {
        RequireScopesLayer {
            required: self.required,
            mode: self.mode,
            realm: self.realm,
            responder,
        }
    }

    /// The scopes this layer requires.
    pub fn required(&self) -> &ScopeSet {
        &self.required
    }
}

impl<S, R: Clone> Layer<S> for RequireScopesLayer<R> {
    type Service = RequireScopes<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireScopes {
            inner,
            layer: self.clone(),
        }
    }
}

/// Service produced by [`RequireScopesLayer`].
#[derive(Clone)]
pub struct RequireScopes<S, R = ProblemDetails> {
    inner: S,
    layer: RequireScopesLayer<R>,
}

impl<S: fmt::Debug, R: fmt::Debug> fmt::Debug for RequireScopes<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireScopes")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, R> RequireScopes<S, R> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for RequireScopes<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: Responder<ResBody>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = RequireScopesFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let layer = &self.layer;
        let rejection = match req.extensions().get::<Authenticated>() {
            Some(auth) => {
                let ok = match layer.mode {
                    ScopeMatch::All => auth.scopes().contains_all(&layer.required),
                    ScopeMatch::Any => auth.scopes().contains_any(&layer.required),
                };
                (!ok).then(|| {
                    Rejection::new(RejectionKind::InsufficientScope, layer.realm.clone())
                        .with_token_id(Some(auth.token_id()))
                        .with_required(layer.required.clone(), layer.mode)
                })
            }
            // Let through without credentials by an optional auth layer:
            // an ordinary missing token.
            None if req.extensions().get::<Anonymous>().is_some() => Some(Rejection::new(
                RejectionKind::MissingCredentials,
                layer.realm.clone(),
            )),
            // No auth layer ran: a wiring mistake, refused to fail closed.
            None => Some(Rejection::new(
                RejectionKind::NotAuthenticated,
                layer.realm.clone(),
            )),
        };
        match rejection {
            Some(r) => RequireScopesFuture {
                state: FutState::Rejected {
                    response: Some(crate::auth::respond(r, &layer.responder)),
                },
            },
            None => RequireScopesFuture {
                state: FutState::Inner {
                    future: self.inner.call(req),
                },
            },
        }
    }
}

pin_project! {
    /// Response future of [`RequireScopes`].
    pub struct RequireScopesFuture<F, B> {
        #[pin]
        state: FutState<F, B>,
    }
}

pin_project! {
    #[project = FutStateProj]
    enum FutState<F, B> {
        Inner { #[pin] future: F },
        Rejected { response: Option<Response<B>> },
    }
}

impl<F, B> fmt::Debug for RequireScopesFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireScopesFuture")
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for RequireScopesFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            FutStateProj::Inner { future } => future.poll(cx),
            FutStateProj::Rejected { response } => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
        }
    }
}
