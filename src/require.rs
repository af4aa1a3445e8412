//! Scope checks: [`require_scopes`] (all of) and [`require_any_scope`].
//!
//! Put them behind [`crate::AuthLayer`], per route. With axum, use
//! `route_layer` so that unknown paths still answer 404:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use axum::{body::Body, routing::get, Router};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//! use tower_pat::transport::TlsConnection;
//! use tower_pat::admin::{NewToken, TokenManager};
//! use tower_pat::{require_scopes, AuthLayer, MemoryStore, ScopeCatalog};
//!
//! let store = MemoryStore::new();
//! let admin = TokenManager::new(store.clone(), ScopeCatalog::nuvlyx());
//! let token = admin
//!     .create(NewToken::new("bot", "demo-store", ["orders:read"]))
//!     .await
//!     .unwrap()
//!     .token;
//!
//! let app = Router::new()
//!     .route("/orders", get(|| async { "orders" }).route_layer(require_scopes(["orders:read"])))
//!     .route("/wallet", get(|| async { "wallet" }).route_layer(require_scopes(["wallet:read"])))
//!     .layer(AuthLayer::new(store));
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

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::auth::{Anonymous, Authenticated};
use crate::response::{
    ProblemDetails, Realm, Rejection, RejectionKind, Responder, ScopeMatch, DEFAULT_REALM,
};
use crate::{ScopeError, ScopeSet};

/// Requires every scope in `scopes`; 403 `insufficient_scope` otherwise.
///
/// # Panics
///
/// If a scope is not `resource:action` or the list is empty (programming
/// errors, caught at start-up). Use [`RequireScopesLayer::try_new`] to
/// handle them.
pub fn require_scopes<I>(scopes: I) -> RequireScopesLayer
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    RequireScopesLayer::try_new(scopes, ScopeMatch::All).unwrap_or_else(|e| panic!("{e}"))
}

/// Requires at least one scope in `scopes`; 403 `insufficient_scope`
/// otherwise.
///
/// # Panics
///
/// As [`require_scopes`].
pub fn require_any_scope<I>(scopes: I) -> RequireScopesLayer
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    RequireScopesLayer::try_new(scopes, ScopeMatch::Any).unwrap_or_else(|e| panic!("{e}"))
}

/// Layer checking the [`Authenticated`] scopes of each request.
#[derive(Debug, Clone)]
#[must_use]
pub struct RequireScopesLayer<R = ProblemDetails> {
    required: ScopeSet,
    mode: ScopeMatch,
    responder: R,
}

impl RequireScopesLayer {
    /// Builds the layer, validating the scopes.
    pub fn try_new<I>(scopes: I, mode: ScopeMatch) -> Result<Self, ScopeError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let required = ScopeSet::parse(scopes)?;
        if required.is_empty() {
            return Err(ScopeError::Empty);
        }
        Ok(Self {
            required,
            mode,
            responder: ProblemDetails,
        })
    }
}

impl<R> RequireScopesLayer<R> {
    /// Replaces the rejection responder.
    pub fn responder<R2>(self, responder: R2) -> RequireScopesLayer<R2> {
        RequireScopesLayer {
            required: self.required,
            mode: self.mode,
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
            required: self.required.clone(),
            mode: self.mode,
            responder: self.responder.clone(),
        }
    }
}

/// Service produced by [`RequireScopesLayer`].
#[derive(Debug, Clone)]
pub struct RequireScopes<S, R = ProblemDetails> {
    inner: S,
    required: ScopeSet,
    mode: ScopeMatch,
    responder: R,
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
        let rejection = match req.extensions().get::<Authenticated>() {
            None => match req.extensions().get::<Anonymous>() {
                // Let through without credentials by an optional auth layer:
                // an ordinary missing token.
                Some(Anonymous(realm)) => {
                    Some(Rejection::new(RejectionKind::MissingCredentials, realm))
                }
                None => {
                    // A wiring mistake: always tell the host why. The realm
                    // is looked up once, not on every such request.
                    static WIRING: OnceLock<&'static Realm> = OnceLock::new();
                    let realm = *WIRING.get_or_init(|| Realm::new(DEFAULT_REALM, true));
                    Some(Rejection::new(RejectionKind::NotAuthenticated, realm))
                }
            },
            Some(auth) => {
                let ok = match self.mode {
                    ScopeMatch::All => auth.scopes().contains_all(&self.required),
                    ScopeMatch::Any => auth.scopes().contains_any(&self.required),
                };
                (!ok).then(|| {
                    Rejection::new(RejectionKind::InsufficientScope, auth.realm)
                        .with_token_id(Some(auth.token_id()))
                        .with_required(self.required.clone(), self.mode)
                })
            }
        };
        match rejection {
            Some(r) => RequireScopesFuture {
                state: FutState::Rejected {
                    response: Some(crate::auth::respond(r, &self.responder)),
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
