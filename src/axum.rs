//! Axum extractors (feature `axum`).
//!
//! [`Authenticated`] is an extractor; `Option<Authenticated>` too, for
//! routes that work with and without a token behind an
//! [`AuthLayerBuilder::optional`](crate::auth::AuthLayerBuilder::optional) layer (a layer that
//! is not optional refuses a request without a token before any handler
//! runs):
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
//! use axum::{routing::get, Router};
//! use tower_pat::{Authenticated, AuthLayer, MemoryStore};
//!
//! async fn orders(who: Authenticated) -> String {
//!     format!("orders for {} (token {})", who.owner(), who.token_id())
//! }
//!
//! let auth = AuthLayer::new(MemoryStore::new(), your_token_config());
//! let app: Router = Router::new()
//!     .route("/orders", get(orders).route_layer(auth.require_scopes(["orders:read"])))
//!     .layer(auth);
//! # let _ = app;
//! ```

use std::convert::Infallible;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;

use crate::auth::Authenticated;

/// Rejection of the [`Authenticated`] extractor: no token was verified for
/// this request.
///
/// Behind an [`AuthLayerBuilder::optional`](crate::auth::AuthLayerBuilder::optional) layer, a
/// request without credentials gets the layer's own answer to a missing
/// token (401 with the challenge, or your responder's answer), exactly as
/// a required layer would have sent. With no auth layer in front of the
/// route at all, it is a wiring mistake, answered 500 so it is noticed,
/// never with the handler's data.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the route is not behind tower_pat::AuthLayer")]
pub struct MissingAuthLayer;

impl IntoResponse for MissingAuthLayer {
    fn into_response(self) -> Response {
        let mut res = (
            StatusCode::INTERNAL_SERVER_ERROR,
            "authentication is not configured for this route",
        )
            .into_response();
        // An optional auth layer around the route replaces this answer.
        res.extensions_mut()
            .insert(crate::auth::CredentialsRequired);
        res
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = MissingAuthLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Authenticated>()
            .cloned()
            .ok_or(MissingAuthLayer)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Authenticated {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Authenticated>().cloned())
    }
}
