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
//! use tower_pat::{AuthLayer, Authenticated, MemoryStore, ScopeCatalog};
//! use tower_layer::Layer;
//!
//! let store = MemoryStore::new();
//! let admin = TokenManager::new(store.clone(), ScopeCatalog::nuvlyx());
//! let created = admin
//!     .create(NewToken::new("bot", "demo-store", ["orders:read"]))
//!     .await
//!     .unwrap();
//!
//! let svc = AuthLayer::new(store).layer(service_fn(|req: Request<String>| async move {
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

mod future;
mod parse;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Request, Response};
use ipnet::IpNet;
use subtle::ConstantTimeEq;
use tower_layer::Layer;
use tower_service::Service;

pub(crate) use self::future::respond;
pub use self::future::ResponseFuture;
pub use self::parse::bearer_token;

use crate::clock::{Clock, SystemClock};
use crate::response::{ProblemDetails, Realm, Rejection, RejectionKind, Responder, DEFAULT_REALM};
use crate::store::{
    used_recently, OwnerId, StoreError, StoreErrorKind, TokenRecord, TokenStatus, TokenStore,
};
use crate::transport::TransportPolicy;
use crate::{ScopeCatalog, ScopeSet, TokenDigest, TokenFormat, TokenId};

/// Who called: attached to the request extensions of every authenticated
/// request. Cheap to clone (it shares the store's record).
#[derive(Clone)]
pub struct Authenticated {
    record: Arc<TokenRecord>,
    pub(crate) realm: &'static Realm,
}

impl Authenticated {
    /// The token's non-secret id.
    pub fn token_id(&self) -> TokenId {
        self.record.id
    }

    /// The owner (store / tenant) the token belongs to.
    pub fn owner(&self) -> &OwnerId {
        &self.record.owner
    }

    /// The token's human name.
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// The scopes the token holds.
    pub fn scopes(&self) -> &ScopeSet {
        &self.record.scopes
    }

    /// Whether the token holds `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.record.scopes.contains(scope)
    }

    /// When the token expires, if ever.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.record.expires_at
    }
}

impl fmt::Debug for Authenticated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticated")
            .field("token_id", &self.token_id())
            .field("owner", self.owner())
            .field("name", &self.name())
            .field("scopes", self.scopes())
            .field("expires_at", &self.expires_at())
            .finish()
    }
}

/// Marks a request let through without credentials by an optional
/// [`AuthLayer`], so that `require_scopes` answers it as an ordinary missing
/// token (401 in that layer's realm), not as a wiring mistake.
#[derive(Clone, Copy)]
pub(crate) struct Anonymous(pub(crate) &'static Realm);

/// Default store timeout.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(2);
/// Default `Retry-After` on 503.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

pub(crate) struct Config {
    store: Arc<dyn TokenStore>,
    format: TokenFormat,
    realm: &'static Realm,
    transport: TransportPolicy,
    store_timeout: Option<Duration>,
    retry_after: Duration,
    clock: Arc<dyn Clock>,
    /// The latest time read from `clock`, in whole seconds since the Unix
    /// epoch (see [`Config::now`]).
    clock_floor: AtomicU64,
    catalog: Option<Arc<ScopeCatalog>>,
    /// Requests without credentials go through, unauthenticated.
    optional: bool,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("format", &self.format)
            .field("realm", &self.realm)
            .field("transport", &self.transport)
            .field("store_timeout", &self.store_timeout)
            .field("retry_after", &self.retry_after)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// Applies PAT authentication to a service. Cheap to clone.
///
/// Defaults: `nvl_live_…` tokens, realm `"api"`, HTTPS required, no trusted
/// proxies, 2-second store timeout, `Retry-After: 1`, problem+json bodies.
#[derive(Clone)]
#[must_use]
pub struct AuthLayer<R = ProblemDetails> {
    config: Arc<Config>,
    responder: R,
}

impl<R: fmt::Debug> fmt::Debug for AuthLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("config", &self.config)
            .field("responder", &self.responder)
            .finish()
    }
}

impl AuthLayer<ProblemDetails> {
    /// A layer verifying tokens against `store` (any [`TokenStore`], or an
    /// `Arc` of one).
    pub fn new(store: impl TokenStore) -> Self {
        Self {
            config: Arc::new(Config {
                store: Arc::new(store),
                format: TokenFormat::nuvlyx_live(),
                realm: Realm::new(DEFAULT_REALM, false),
                transport: TransportPolicy::default(),
                store_timeout: Some(DEFAULT_STORE_TIMEOUT),
                retry_after: DEFAULT_RETRY_AFTER,
                clock: Arc::new(SystemClock),
                clock_floor: AtomicU64::new(0),
                catalog: None,
                optional: false,
            }),
            responder: ProblemDetails,
        }
    }
}

impl<R> AuthLayer<R> {
    fn config_mut(&mut self) -> &mut Config {
        // Builders run before the layer is cloned; if it was, copy it.
        if Arc::get_mut(&mut self.config).is_none() {
            let c = &self.config;
            self.config = Arc::new(Config {
                store: c.store.clone(),
                format: c.format.clone(),
                realm: c.realm,
                transport: c.transport.clone(),
                store_timeout: c.store_timeout,
                retry_after: c.retry_after,
                clock: c.clock.clone(),
                clock_floor: AtomicU64::new(c.clock_floor.load(Ordering::Relaxed)),
                catalog: c.catalog.clone(),
                optional: c.optional,
            });
        }
        Arc::get_mut(&mut self.config).expect("unique after copy")
    }

    /// Accepts tokens of this format (prefix and environment). A layer
    /// for `live` refuses `test` tokens and vice versa.
    pub fn format(mut self, format: TokenFormat) -> Self {
        self.config_mut().format = format;
        self
    }

    /// Sets the realm of the `WWW-Authenticate` challenge.
    ///
    /// # Panics
    ///
    /// If `realm` is empty or has characters other than visible ASCII and
    /// space, or a quote or backslash (a programming error).
    pub fn realm(mut self, realm: &str) -> Self {
        let ok = !realm.is_empty()
            && realm
                .bytes()
                .all(|b| (b == b' ' || b.is_ascii_graphic()) && b != b'"' && b != b'\\');
        assert!(
            ok,
            "invalid realm {realm:?}: use visible ASCII without quotes or backslashes"
        );
        let attach = self.config.realm.attach;
        self.config_mut().realm = Realm::new(realm, attach);
        self
    }

    /// Adds the [`Rejection`] (the precise reason, with the token id when
    /// there is one) to the extensions of every rejection response, for
    /// layers above this one: metrics by reason, rate limits on failed
    /// authentication (see `examples/rate_limit.rs`). Off by default: it
    /// costs three small allocations per rejection. `require_scopes` layers
    /// under this one follow the same setting.
    pub fn attach_rejections(mut self) -> Self {
        let realm: &'static Realm = self.config.realm;
        self.config_mut().realm = Realm::new(realm.name(), true);
        self
    }

    /// Lets requests **without** credentials through, unauthenticated, for
    /// routes that work with and without a token (a public listing that
    /// shows more to a known caller). Handlers then see no
    /// [`Authenticated`] (with axum, `Option<Authenticated>` is `None`), and
    /// a `require_scopes` layer answers such a request 401 as it would
    /// without this setting. Credentials that are present must still be
    /// valid: a malformed, unknown, revoked or expired token is 401, never
    /// anonymous. HTTPS is still required.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use axum::{body::Body, routing::get, Router};
    /// use http::{Request, StatusCode};
    /// use tower::ServiceExt;
    /// use tower_pat::transport::TlsConnection;
    /// use tower_pat::{Authenticated, AuthLayer, MemoryStore};
    ///
    /// let app: Router = Router::new()
    ///     .route("/products", get(|who: Option<Authenticated>| async move {
    ///         match who {
    ///             Some(who) => format!("products, with prices for {}", who.owner()),
    ///             None => "products".to_owned(),
    ///         }
    ///     }))
    ///     .layer(AuthLayer::new(MemoryStore::new()).optional());
    ///
    /// let anonymous = Request::get("/products").extension(TlsConnection).body(Body::empty()).unwrap();
    /// assert_eq!(app.clone().oneshot(anonymous).await.unwrap().status(), StatusCode::OK);
    /// let bad = Request::get("/products")
    ///     .extension(TlsConnection)
    ///     .header("authorization", "Bearer nvl_live_0000")
    ///     .body(Body::empty())
    ///     .unwrap();
    /// assert_eq!(app.oneshot(bad).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    /// # }
    /// ```
    pub fn optional(mut self) -> Self {
        self.config_mut().optional = true;
        self
    }

    /// Accepts requests over plain HTTP. **For local development only**:
    /// tokens sent over plain HTTP can be read by anyone on the path.
    pub fn allow_plain_http(mut self) -> Self {
        self.config_mut().transport.allow_plain_http = true;
        self
    }

    /// Believes `header` when, and only when, it comes from one of these
    /// proxy addresses or networks (`"10.0.0.0/8"`, `"127.0.0.1/32"`): the
    /// TLS-terminating proxy in front of this service. Name the one header
    /// your proxy sets; the other is ignored (see [`crate::transport`] for
    /// the parsing rules).
    ///
    /// ```
    /// use tower_pat::transport::ProxyHeader;
    /// use tower_pat::{AuthLayer, MemoryStore};
    ///
    /// let layer = AuthLayer::new(MemoryStore::new())
    ///     .trusted_proxies(ProxyHeader::XForwardedProto, ["10.0.0.0/8".parse().unwrap()]);
    /// # let _ = layer;
    /// ```
    pub fn trusted_proxies<I>(mut self, header: crate::transport::ProxyHeader, proxies: I) -> Self
    where
        I: IntoIterator<Item = IpNet>,
    {
        self.config_mut().transport.proxies = Some((header, proxies.into_iter().collect()));
        self
    }

    /// Fails a store call that takes longer than `timeout` with 503.
    /// `None` waits forever (not recommended). Needs a Tokio runtime.
    pub fn store_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config_mut().store_timeout = timeout;
        self
    }

    /// The `Retry-After` sent with 503 (whole seconds, at least 1).
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.config_mut().retry_after = after;
        self
    }

    /// Reads the time from `clock` for expiry checks (tests).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.config_mut().clock = Arc::new(clock);
        self
    }

    /// Refuses (503, fail closed) any stored record holding a scope that
    /// `catalog` does not know: a corrupted or hand-edited row must not
    /// grant anything.
    pub fn catalog(mut self, catalog: ScopeCatalog) -> Self {
        self.config_mut().catalog = Some(Arc::new(catalog));
        self
    }

    /// Replaces the rejection responder (see [`crate::response`]).
    pub fn responder<R2>(self, responder: R2) -> AuthLayer<R2> {
        AuthLayer {
            config: self.config,
            responder,
        }
    }
}

impl<S, R: Clone> Layer<S> for AuthLayer<R> {
    type Service = Auth<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            config: self.config.clone(),
            responder: self.responder.clone(),
        }
    }
}

/// The service produced by [`AuthLayer`].
#[derive(Clone)]
pub struct Auth<S, R = ProblemDetails> {
    inner: S,
    config: Arc<Config>,
    responder: R,
}

impl<S: fmt::Debug, R: fmt::Debug> fmt::Debug for Auth<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .field("responder", &self.responder)
            .finish()
    }
}

impl<S, R> Auth<S, R> {
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

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for Auth<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    R: Responder<ResBody>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let config = &self.config;
        let reject = |kind, id| {
            let rejection = config.rejection(kind).with_token_id(id);
            ResponseFuture::rejected(rejection, &self.responder)
        };

        if !config.transport.is_secure(&req) {
            // Tell the host when a real-looking token travelled in clear
            // so it can be revoked.
            let exposed = parse::token_and_id(req.headers(), &config.format)
                .ok()
                .map(|(_, id)| id);
            if let Some(id) = exposed {
                crate::trace::token_exposed(id, &config.realm.log);
            }
            return reject(RejectionKind::InsecureTransport, exposed);
        }

        let (token, id) = match parse::token_and_id(req.headers(), &config.format) {
            Ok(found) => found,
            Err(RejectionKind::MissingCredentials) if config.optional => {
                let mut req = req;
                req.extensions_mut().insert(Anonymous(config.realm));
                return ResponseFuture::calling(self.inner.call(req));
            }
            Err(kind) => return reject(kind, None),
        };
        let digest = TokenDigest::of(token);

        // Stores that can answer from memory skip the timer and the
        // allocation of an asynchronous lookup.
        let now = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            config.store.try_find_now(id)
        }))
        .unwrap_or_else(|_| Some(Err(StoreError::new(StoreErrorKind::Panicked))));
        if let Some(found) = now {
            return match config.judge(id, digest, found) {
                Ok(auth) => {
                    crate::trace::authenticated(id);
                    let mut req = req;
                    req.extensions_mut().insert(auth);
                    ResponseFuture::calling(self.inner.call(req))
                }
                Err(kind) => reject(kind, Some(id)),
            };
        }

        let lookup = Box::pin(config.clone().verify(id, digest));
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::verifying(lookup, req, inner, self.responder.clone(), config.clone())
    }
}

impl Config {
    pub(crate) fn rejection(&self, kind: RejectionKind) -> Rejection {
        let r = Rejection::new(kind, self.realm);
        match kind {
            RejectionKind::StoreUnavailable(_) => r.with_retry_after(self.retry_after),
            _ => r,
        }
    }

    /// The time for expiry checks: the clock, but never earlier than the
    /// latest whole second it has shown. A wall clock stepped back (by NTP,
    /// or by hand) therefore cannot revive an expired token, to within a
    /// second. The floor is written at most once a second, so requests do
    /// not contend on it.
    fn now(&self) -> SystemTime {
        let now = self.clock.now();
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let floor = self.clock_floor.load(Ordering::Relaxed);
        if secs < floor {
            return UNIX_EPOCH + Duration::from_secs(floor);
        }
        if secs > floor {
            self.clock_floor.fetch_max(secs, Ordering::Relaxed);
        }
        now
    }

    /// Store lookup, digest comparison and record checks.
    async fn verify(
        self: Arc<Self>,
        id: TokenId,
        digest: TokenDigest,
    ) -> Result<Authenticated, Rejection> {
        let checked = self.check(id, digest).await;
        checked.map_err(|kind| self.rejection(kind).with_token_id(Some(id)))
    }

    async fn check(
        &self,
        id: TokenId,
        digest: TokenDigest,
    ) -> Result<Authenticated, RejectionKind> {
        let found = match self.store_timeout {
            Some(t) => match tokio::time::timeout(t, self.store.find(id)).await {
                Ok(r) => r,
                Err(_) => Err(StoreError::new(StoreErrorKind::Timeout)),
            },
            None => self.store.find(id).await,
        };
        self.judge(id, digest, found.map(|r| r.map(Arc::new)))
    }

    /// Everything after the lookup: digest comparison and record checks.
    fn judge(
        &self,
        id: TokenId,
        digest: TokenDigest,
        found: Result<Option<Arc<TokenRecord>>, StoreError>,
    ) -> Result<Authenticated, RejectionKind> {
        // A record the store could not read back is the server's fault, but
        // only a caller who proves the secret may learn that this id is
        // special: anyone else gets the ordinary 401.
        let (stored, record) = match found {
            Ok(r) => (r.as_ref().map_or(TokenDigest::DUMMY, |r| r.digest), Ok(r)),
            Err(e) if e.kind() == StoreErrorKind::Corrupt => {
                crate::trace::store_error(id, &e, &self.realm.log);
                (e.corrupt_digest().unwrap_or(TokenDigest::DUMMY), Err(e))
            }
            Err(e) => {
                crate::trace::store_error(id, &e, &self.realm.log);
                return Err(RejectionKind::StoreUnavailable(e.kind()));
            }
        };
        // Same work whether or not the id exists: always one comparison.
        let matches: bool = stored.ct_eq(&digest).into();
        #[cfg(test)]
        COMPARISONS.with(|c| c.set(c.get() + 1));
        let record = match record {
            Ok(Some(record)) => record,
            Ok(None) => return Err(RejectionKind::UnknownToken),
            Err(e) => {
                return Err(match (e.corrupt_digest(), matches) {
                    (Some(_), true) => RejectionKind::StoreUnavailable(StoreErrorKind::Corrupt),
                    (Some(_), false) => RejectionKind::SecretMismatch,
                    (None, _) => RejectionKind::UnknownToken,
                })
            }
        };
        if !matches {
            return Err(RejectionKind::SecretMismatch);
        }
        if record.id != id {
            // The digest covers the id, so only a broken store gets here.
            let e = StoreError::corrupt("the store answered with another token's record");
            crate::trace::store_error(id, &e, &self.realm.log);
            return Err(RejectionKind::StoreUnavailable(StoreErrorKind::Corrupt));
        }
        if let Some(catalog) = &self.catalog {
            if let Err(e) = catalog.check_known(&record.scopes) {
                let e = StoreError::with_source(StoreErrorKind::Corrupt, e);
                crate::trace::store_error(id, &e, &self.realm.log);
                return Err(RejectionKind::StoreUnavailable(StoreErrorKind::Corrupt));
            }
        }
        let now = self.now();
        match record.status(now) {
            TokenStatus::Active => {}
            TokenStatus::Revoked => return Err(RejectionKind::Revoked),
            TokenStatus::Expired => return Err(RejectionKind::Expired),
            TokenStatus::OwnerSuspended => return Err(RejectionKind::OwnerSuspended),
        }
        // Last use is kept to the minute: skip the hint when the record
        // already says the token was used within the last minute. A store
        // that panics here fails this request closed, like one that panics
        // in its lookup.
        if !record.last_used_at.is_some_and(|t| used_recently(t, now)) {
            let noted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.store.record_use(id, now)
            }));
            if noted.is_err() {
                let e = StoreError::new(StoreErrorKind::Panicked);
                crate::trace::store_error(id, &e, &self.realm.log);
                return Err(RejectionKind::StoreUnavailable(StoreErrorKind::Panicked));
            }
        }
        Ok(Authenticated {
            record,
            realm: self.realm,
        })
    }
}

#[cfg(test)]
thread_local! {
    /// Digest comparisons made on this thread (tests only).
    pub(crate) static COMPARISONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::{NewToken, TokenManager};
    use crate::{MemoryStore, ScopeCatalog};

    async fn comparisons_for(config: &Arc<Config>, token: &str) -> (usize, Option<RejectionKind>) {
        let id = config.format.parse(token).unwrap();
        COMPARISONS.with(|c| c.set(0));
        let r = config.clone().verify(id, TokenDigest::of(token)).await;
        (COMPARISONS.with(|c| c.get()), r.err().map(|r| r.kind()))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn unknown_id_still_compares_against_a_dummy_digest() {
        let store = MemoryStore::new();
        let admin = TokenManager::new(store.clone(), ScopeCatalog::nuvlyx());
        let known = admin
            .create(NewToken::new("t", "o", ["orders:read"]))
            .await
            .unwrap()
            .token;
        let layer = AuthLayer::new(store);
        let unknown = TokenFormat::nuvlyx_live().mint().token;
        assert_eq!(
            comparisons_for(&layer.config, unknown.expose_secret()).await,
            (1, Some(RejectionKind::UnknownToken))
        );
        assert_eq!(
            comparisons_for(&layer.config, known.expose_secret()).await,
            (1, None)
        );
    }
}
