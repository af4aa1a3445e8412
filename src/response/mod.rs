//! Rejections: what the client is told, and what the host application learns.
//!
//! Every refusal is a response, never a service error. The precise reason is
//! a [`Rejection`], handed to the responder, put in the response extensions
//! when the layer is built with `AuthLayerBuilder::attach_rejections`, and told in
//! a `tracing` event with the `tracing` feature. The client sees only what
//! RFC 6750 and RFC 9457 prescribe:
//!
//! | case | status | `WWW-Authenticate` |
//! |---|---|---|
//! | no credentials | 401 | `Bearer realm="…"` |
//! | malformed, unknown, wrong secret, revoked, expired, owner suspended | 401 | `Bearer realm="…", error="invalid_token"` (byte-identical responses) |
//! | valid token, missing scope | 403 | `Bearer realm="…", error="insufficient_scope", scope="…"` |
//! | plain HTTP | 403 | — |
//! | store failing or timing out | 503 + `Retry-After` | — |
//!
//! Bodies are `application/problem+json` with the default [`ProblemDetails`]
//! responder. To answer in your own shape, pass any
//! `Fn(&Rejection) -> Response<B>` as the responder; [`Rejection::response`]
//! keeps the status and headers right for you:
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
//! use http::{Request, Response, StatusCode};
//! use tower::{service_fn, Layer, ServiceExt};
//! use tower_pat::transport::TlsConnection;
//! use tower_pat::{response::{Rejection, RejectionKind}, AuthLayer, MemoryStore};
//!
//! let layer = AuthLayer::builder(MemoryStore::new(), your_token_config())
//!     .attach_rejections()
//!     .responder(|r: &Rejection| {
//!         let body = format!(r#"{{"ok":false,"code":{}}}"#, r.status().as_u16());
//!         r.response(body)
//!     }).build();
//! let svc = layer.layer(service_fn(|_: Request<()>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(String::from("orders")))
//! }));
//!
//! let req = Request::get("/orders")
//!     .extension(TlsConnection) // set by the TLS listener
//!     .header("authorization", "Bearer nvl_live_not-a-real-token")
//!     .body(())
//!     .unwrap();
//! let res = svc.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="api", error="invalid_token""#);
//! assert_eq!(res.body(), r#"{"ok":false,"code":401}"#);
//! // The precise reason stays on the server side.
//! let reason = res.extensions().get::<Rejection>().unwrap().kind();
//! assert!(matches!(reason, RejectionKind::InvalidFormat(_)));
//! # }
//! ```

mod realm;
mod rejection;
mod responder;

pub(crate) use self::realm::{Realm, DEFAULT_REALM};
pub use self::rejection::{MalformedReason, Rejection, RejectionKind};
pub use self::responder::{EmptyBody, ProblemDetails, Responder};
