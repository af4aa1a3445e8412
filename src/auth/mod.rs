//! The verification layer: [`AuthLayer`] → [`Auth`] → [`ResponseFuture`].
//!
//! For each request, in order: transport check (HTTPS), header parsing
//! (RFC 6750), offline format check (prefix, environment, length, hex,
//! checksum — no store call), store lookup by the non-secret id (with a
//! timeout), constant-time digest comparison (also against a dummy digest
//! when the id is unknown), then revoked / expired / owner-suspended
//! checks. On success the request gets an [`Authenticated`] extension.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{service_fn, ServiceExt};
//! use tower_pat::transport::TlsConnection;
//! use tower_pat::admin::{NewToken, TokenManager};
//! use tower_pat::{Authenticated, AuthLayer, Environment, MemoryStore, ScopeCatalog, TokenConfig, TokenFormat};
//! use tower_layer::Layer;
//!
//! // Your API's token format (`nvl_live_…`) and scopes.
//! let config = TokenConfig::new(
//!     TokenFormat::new("nvl", Environment::Live).unwrap(),
//!     ScopeCatalog::new().scope("orders:read", "Read orders and their status."),
//! );
//! let store = MemoryStore::new();
//! let admin = TokenManager::new(store.clone(), config.clone());
//! let created = admin
//!     .create(NewToken::new("bot", "demo-store", ["orders:read"]))
//!     .await
//!     .unwrap();
//!
//! let svc = AuthLayer::new(store, config).layer(service_fn(|req: Request<String>| async move {
//!     let who = req.extensions().get::<Authenticated>().unwrap();
//!     let body = Full::new(Bytes::from(who.owner().to_string()));
//!     Ok::<_, std::convert::Infallible>(Response::new(body))
//! }));
//!
//! let ok = Request::get("/orders")
//!     .extension(TlsConnection) // set by the TLS listener
//!     .header("authorization", format!("Bearer {}", created.token.expose_secret()))
//!     .body(String::new())
//!     .unwrap();
//! let res = svc.clone().oneshot(ok).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! let body = http_body_util::BodyExt::collect(res.into_body()).await.unwrap().to_bytes();
//! assert_eq!(body, "demo-store");
//!
//! let anonymous = Request::get("/orders")
//!     .extension(TlsConnection)
//!     .body(String::new())
//!     .unwrap();
//! let res = svc.oneshot(anonymous).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! # }
//! ```

pub(crate) mod authenticated;
mod exposure;
mod future;
pub(crate) mod layer;
mod parse;
mod require;
mod service;
mod verify;

pub(crate) use self::authenticated::Anonymous;
pub(crate) use self::authenticated::Authenticated;
pub(crate) use self::future::respond;
#[allow(unused_imports)] // used by the axum extractor
pub(crate) use self::future::CredentialsRequired;
pub use self::future::ResponseFuture;
#[allow(unused_imports)] // for the test kit and unit tests
pub(crate) use self::layer::AuthLayer;
pub use self::layer::AuthLayerBuilder;
#[doc(hidden)]
pub use self::parse::bearer_token;
pub use self::require::{RequireScopes, RequireScopesFuture, RequireScopesLayer};
pub use self::service::Auth;
