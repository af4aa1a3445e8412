//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::{Request, Response};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_pat::admin::{NewToken, TokenManager};
use tower_pat::{
    auth::AuthLayerBuilder,
    store::{Lookup, TokenStore},
    token::TokenId,
    AuthLayer, MemoryStore, TokenConfig,
};

/// Wraps a store and counts `find` calls.
#[derive(Debug, Clone, Default)]
pub struct CountingStore {
    pub inner: MemoryStore,
    pub finds: Arc<AtomicUsize>,
}

impl CountingStore {
    pub fn finds(&self) -> usize {
        self.finds.load(Ordering::SeqCst)
    }
}

impl TokenStore for CountingStore {
    fn find(&self, id: TokenId) -> Lookup {
        self.finds.fetch_add(1, Ordering::SeqCst);
        self.inner.find(id)
    }
    fn record_use(&self, id: TokenId, at: SystemTime, from: Option<std::net::IpAddr>) {
        self.inner.record_use(id, at, from)
    }
}

pub struct Fixture {
    pub store: CountingStore,
    pub admin: TokenManager<MemoryStore>,
    pub config: TokenConfig,
    /// Tokens minted by [`Fixture::token`]: an owner has one live token
    /// per name, so the second is "test token 2", and so on.
    minted: AtomicUsize,
}

impl Fixture {
    pub fn new() -> Self {
        Self::with_config(nuvlyx::live())
    }

    /// A fixture whose manager and layer share `config` (a clock, say).
    pub fn with_config(config: TokenConfig) -> Self {
        let store = CountingStore::default();
        let admin = TokenManager::new(store.inner.clone(), config.clone());
        Self {
            store,
            admin,
            config,
            minted: AtomicUsize::new(0),
        }
    }

    pub async fn token(&self, scopes: &[&str]) -> (String, TokenId) {
        let c = self
            .admin
            .create(NewToken::new(
                &self.name("test token"),
                "demo-store",
                scopes,
            ))
            .await
            .unwrap();
        (c.token.expose_secret().to_owned(), c.record.id)
    }

    /// `base` the first time, then `base 2`, `base 3`…
    pub fn name(&self, base: &str) -> String {
        match self.minted.fetch_add(1, Ordering::SeqCst) {
            0 => base.to_owned(),
            n => format!("{base} {}", n + 1),
        }
    }

    /// The layer's settings: this fixture's store and config, realm
    /// "nuvlyx"; [`Fixture::layer`] builds them as they are.
    pub fn builder(&self) -> AuthLayerBuilder {
        AuthLayer::builder(self.store.clone(), self.config.clone()).realm("nuvlyx")
    }

    pub fn layer(&self) -> AuthLayer {
        self.builder().build()
    }

    pub fn app(&self) -> Router {
        app_with(self.builder())
    }
}

/// The routes used across tests: one per kind of requirement.
/// Rejections are attached so tests can read the precise reason.
pub fn app_with(layer: AuthLayerBuilder) -> Router {
    let layer = layer.attach_rejections().build();
    Router::new()
        .route(
            "/orders",
            get(|| async { "orders" }).route_layer(layer.require_scopes(["orders:read"])),
        )
        .route(
            "/wallet",
            get(|| async { "wallet" })
                .route_layer(layer.require_scopes(["wallet:read", "wallet:write"])),
        )
        .route(
            "/catalog",
            get(|| async { "catalog" })
                .route_layer(layer.require_any_scope(["products:read", "inventory:read"])),
        )
        .route(
            "/whoami",
            get(
                |axum::Extension(who): axum::Extension<tower_pat::Authenticated>| async move {
                    format!("{} {} {}", who.owner(), who.name(), who.token_id())
                },
            ),
        )
        .layer(layer)
}

/// A request as it arrives on a TLS listener (the server's marker, not
/// the URI scheme, is what says HTTPS).
pub fn https(path: &str) -> http::request::Builder {
    Request::get(path).extension(tower_pat::transport::TlsConnection)
}

pub fn bearer(path: &str, token: &str) -> Request<Body> {
    https(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

pub async fn send(app: &Router, req: Request<Body>) -> Response<Body> {
    app.clone().oneshot(req).await.unwrap()
}

/// Status, headers and body, for byte-for-byte comparisons.
pub async fn parts(res: Response<Body>) -> (http::StatusCode, http::HeaderMap, Vec<u8>) {
    let (p, b) = res.into_parts();
    (
        p.status,
        p.headers,
        b.collect().await.unwrap().to_bytes().to_vec(),
    )
}

pub async fn json(res: Response<Body>) -> serde_json::Value {
    let (_, _, body) = parts(res).await;
    serde_json::from_slice(&body).unwrap()
}

/// The challenge of every invalid-token 401 (realm "nuvlyx").
pub const INVALID: &str = r#"Bearer realm="nuvlyx", error="invalid_token""#;

pub fn kind(res: &http::Response<Body>) -> tower_pat::response::RejectionKind {
    res.extensions()
        .get::<tower_pat::response::Rejection>()
        .expect("rejection in extensions")
        .kind()
}

/// Replaces the secret part of a token keeping id and a valid checksum.
pub fn with_other_secret(token: &str) -> String {
    let (head, body) = token.split_at(token.len() - 72);
    let mut raw: Vec<u8> = (0..36)
        .map(|i| u8::from_str_radix(&body[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    raw[8..32].iter_mut().for_each(|b| *b = b.wrapping_add(1));
    let crc = crc32fast::hash(&raw[..32]).to_be_bytes();
    raw[32..].copy_from_slice(&crc);
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    format!("{head}{hex}")
}

/// Changes the last character: the checksum no longer matches.
pub fn flip_last(token: &str) -> String {
    let (head, last) = token.split_at(token.len() - 1);
    format!("{head}{}", if last == "0" { "1" } else { "0" })
}

/// A syntactically perfect token whose id is not in any store.
pub fn unknown_token() -> String {
    nuvlyx::live()
        .format()
        .clone()
        .mint()
        .token
        .expose_secret()
        .to_owned()
}
