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
//! let admin = TokenManager::new(store.clone(), tower_pat::preset::nuvlyx_live());
//! let created = admin
//!     .create(NewToken::new("bot", "demo-store", ["orders:read"]))
//!     .await
//!     .unwrap();
//!
//! let svc = AuthLayer::new(store, tower_pat::preset::nuvlyx_live()).layer(service_fn(|req: Request<String>| async move {
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
#[doc(hidden)]
pub use self::parse::bearer_token;

use crate::require::{RequireScopesLayer, ScopeMatch};
use crate::response::{ProblemDetails, Realm, Rejection, RejectionKind, Responder, DEFAULT_REALM};
use crate::store::{
    used_recently, Found, Lookup, OwnerId, StoreError, StoreErrorKind, TokenRecord, TokenStatus,
    TokenStore,
};
use crate::transport::TransportPolicy;
use crate::{ScopeError, ScopeSet, TokenConfig, TokenDigest, TokenId};

/// Who called: attached to the request extensions of every authenticated
/// request. Cheap to clone (it shares the store's record).
#[derive(Clone)]
pub struct Authenticated {
    record: Arc<TokenRecord>,
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
/// token, not as a wiring mistake.
#[derive(Clone, Copy)]
pub(crate) struct Anonymous;

/// Default store timeout.
pub(crate) const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(2);
/// Default `Retry-After` on 503.
pub(crate) const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

pub(crate) struct Config {
    store: Arc<dyn TokenStore>,
    tokens: TokenConfig,
    realm: Arc<Realm>,
    transport: TransportPolicy,
    store_timeout: Option<Duration>,
    retry_after: Duration,
    /// The latest time read from the clock, in whole seconds since the Unix
    /// epoch (see [`Config::now`]).
    clock_floor: AtomicU64,
    /// Requests without credentials go through, unauthenticated.
    optional: bool,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("tokens", &self.tokens)
            .field("realm", &self.realm.name())
            .field("transport", &self.transport)
            .field("store_timeout", &self.store_timeout)
            .field("retry_after", &self.retry_after)
            .field("optional", &self.optional)
            .finish_non_exhaustive()
    }
}

/// Applies PAT authentication to a service. Cheap to clone.
///
/// Defaults: realm `"api"`, HTTPS required, no trusted proxies, 2-second
/// store timeout, `Retry-After: 1`, problem+json bodies.
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
    /// A layer verifying tokens of `config` (format, catalog, clock: the
    /// same value the [`crate::admin::TokenManager`] mints with) against
    /// `store` (any [`TokenStore`], or an `Arc` of one).
    pub fn new(store: impl TokenStore, config: TokenConfig) -> Self {
        Self {
            config: Arc::new(Config {
                store: Arc::new(store),
                tokens: config,
                realm: Arc::new(Realm::new(DEFAULT_REALM, false)),
                transport: TransportPolicy::default(),
                store_timeout: Some(DEFAULT_STORE_TIMEOUT),
                retry_after: DEFAULT_RETRY_AFTER,
                clock_floor: AtomicU64::new(0),
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
                tokens: c.tokens.clone(),
                realm: c.realm.clone(),
                transport: c.transport.clone(),
                store_timeout: c.store_timeout,
                retry_after: c.retry_after,
                clock_floor: AtomicU64::new(c.clock_floor.load(Ordering::Relaxed)),
                optional: c.optional,
            });
        }
        Arc::get_mut(&mut self.config).expect("unique after copy")
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
        self.config_mut().realm = Arc::new(Realm::new(realm, attach));
        self
    }

    /// Adds the [`Rejection`] (the precise reason, with the token id when
    /// there is one) to the extensions of every rejection response, for
    /// layers above this one: metrics by reason, rate limits on failed
    /// authentication (see `examples/rate_limit.rs`). Off by default: it
    /// costs three small allocations per rejection. Scope checks built from
    /// this layer follow the same setting.
    pub fn attach_rejections(mut self) -> Self {
        let name = self.config.realm.name().to_owned();
        self.config_mut().realm = Arc::new(Realm::new(&name, true));
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
    ///     .layer(AuthLayer::new(MemoryStore::new(), tower_pat::preset::nuvlyx_live()).optional());
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
    /// let layer = AuthLayer::new(MemoryStore::new(), tower_pat::preset::nuvlyx_live())
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

    /// Replaces the rejection responder (see [`Responder`]). Scope checks
    /// built from this layer afterwards use it too.
    pub fn responder<R2>(self, responder: R2) -> AuthLayer<R2> {
        AuthLayer {
            config: self.config,
            responder,
        }
    }

    /// A scope check requiring **every** scope in `scopes`, answering 403
    /// `insufficient_scope` otherwise, in this layer's realm and with its
    /// responder (override it with [`RequireScopesLayer::responder`]). Put
    /// it behind this layer, per route (with axum, `route_layer`). Build
    /// the layer completely first: a setting changed afterwards does not
    /// reach checks built before.
    ///
    /// # Panics
    ///
    /// If a scope is not `resource:action`, is not defined in the layer's
    /// catalog (a typo would refuse everyone), or the list is empty. These
    /// are programming errors, caught when the routes are built; the panic
    /// names the scope. [`AuthLayer::try_require_scopes`] returns them
    /// instead.
    ///
    /// ```should_panic
    /// use tower_pat::{preset, AuthLayer, MemoryStore};
    ///
    /// let auth = AuthLayer::new(MemoryStore::new(), preset::nuvlyx_live());
    /// // panics: unknown scope "order:read"
    /// let check = auth.require_scopes(["order:read"]);
    /// # let _ = check;
    /// ```
    pub fn require_scopes<I>(&self, scopes: I) -> RequireScopesLayer<R>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
        R: Clone,
    {
        self.try_require_scopes(scopes, ScopeMatch::All)
            .unwrap_or_else(|e| panic!("require_scopes: {e}"))
    }

    /// A scope check requiring **at least one** scope in `scopes`;
    /// otherwise as [`AuthLayer::require_scopes`].
    ///
    /// # Panics
    ///
    /// As [`AuthLayer::require_scopes`].
    pub fn require_any_scope<I>(&self, scopes: I) -> RequireScopesLayer<R>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
        R: Clone,
    {
        self.try_require_scopes(scopes, ScopeMatch::Any)
            .unwrap_or_else(|e| panic!("require_any_scope: {e}"))
    }

    /// As [`AuthLayer::require_scopes`] or [`AuthLayer::require_any_scope`]
    /// (by `mode`), returning an error instead of panicking: for scopes read
    /// from configuration.
    pub fn try_require_scopes<I>(
        &self,
        scopes: I,
        mode: ScopeMatch,
    ) -> Result<RequireScopesLayer<R>, ScopeError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
        R: Clone,
    {
        RequireScopesLayer::try_new(
            scopes,
            mode,
            self.config.tokens.catalog(),
            self.config.realm.clone(),
            self.responder.clone(),
        )
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
            let exposed = parse::token_and_id(req.headers(), config.tokens.format())
                .ok()
                .map(|(_, id)| id);
            if let Some(id) = exposed {
                crate::trace::token_exposed(id, &config.realm.log);
            }
            return reject(RejectionKind::InsecureTransport, exposed);
        }

        let (token, id) = match parse::token_and_id(req.headers(), config.tokens.format()) {
            Ok(found) => found,
            Err(RejectionKind::MissingCredentials) if config.optional => {
                let mut req = req;
                req.extensions_mut().insert(Anonymous);
                return ResponseFuture::calling(self.inner.call(req));
            }
            Err(kind) => return reject(kind, None),
        };
        let digest = TokenDigest::of(token);

        // A store that answers from memory skips the timer and the
        // allocation of an asynchronous lookup. A panicking store fails
        // this request closed; the service keeps serving others.
        let lookup =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.store.find(id)))
                .unwrap_or_else(|_| Lookup::ready(Err(StoreError::new(StoreErrorKind::Panicked))));
        let pending = match lookup.now() {
            Ok(found) => {
                return match config.judge(id, digest, found) {
                    Ok(auth) => {
                        crate::trace::authenticated(id);
                        let mut req = req;
                        req.extensions_mut().insert(auth);
                        ResponseFuture::calling(self.inner.call(req))
                    }
                    Err(kind) => reject(kind, Some(id)),
                }
            }
            Err(pending) => pending,
        };

        let lookup = Box::pin(config.clone().verify(id, digest, pending));
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::verifying(lookup, req, inner, self.responder.clone(), config.clone())
    }
}

impl Config {
    pub(crate) fn rejection(&self, kind: RejectionKind) -> Rejection {
        let r = Rejection::new(kind, self.realm.clone());
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
        let now = self.tokens.now();
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
    /// Waits for a pending lookup (under the store timeout), then judges.
    async fn verify(
        self: Arc<Self>,
        id: TokenId,
        digest: TokenDigest,
        lookup: Lookup,
    ) -> Result<Authenticated, Rejection> {
        let found = match self.store_timeout {
            Some(t) => tokio::time::timeout(t, lookup)
                .await
                .unwrap_or_else(|_| Err(StoreError::new(StoreErrorKind::Timeout))),
            None => lookup.await,
        };
        self.judge(id, digest, found)
            .map_err(|kind| self.rejection(kind).with_token_id(Some(id)))
    }

    /// Everything after the lookup: digest comparison and record checks.
    fn judge(
        &self,
        id: TokenId,
        digest: TokenDigest,
        found: Found,
    ) -> Result<Authenticated, RejectionKind> {
        self.judge_with(id, digest, found, |a, b| a.ct_eq(b).into())
    }

    /// [`Config::judge`] with the digest comparison given, so that a test
    /// can count comparisons without a counter on the production path.
    fn judge_with(
        &self,
        id: TokenId,
        digest: TokenDigest,
        found: Found,
        equal: impl FnOnce(&TokenDigest, &TokenDigest) -> bool,
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
        let matches = equal(&stored, &digest);
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
        if let Err(e) = self.tokens.catalog().check_known(&record.scopes) {
            let e = StoreError::with_source(StoreErrorKind::Corrupt, e);
            crate::trace::store_error(id, &e, &self.realm.log);
            return Err(RejectionKind::StoreUnavailable(StoreErrorKind::Corrupt));
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
        Ok(Authenticated { record })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::{NewToken, TokenManager};
    use crate::MemoryStore;

    /// Looks `token` up and judges it, counting digest comparisons.
    async fn comparisons_for(config: &Config, token: &str) -> (usize, Option<RejectionKind>) {
        let id = config.tokens.format().parse(token).unwrap();
        let found = config.store.find(id).await;
        let mut count = 0;
        let verdict = config.judge_with(id, TokenDigest::of(token), found, |a, b| {
            count += 1;
            a.ct_eq(b).into()
        });
        (count, verdict.err())
    }

    #[tokio::test(flavor = "current_thread")]
    async fn unknown_id_still_compares_against_a_dummy_digest() {
        let store = MemoryStore::new();
        let admin = TokenManager::new(store.clone(), crate::preset::nuvlyx_live());
        let known = admin
            .create(NewToken::new("t", "o", ["orders:read"]))
            .await
            .unwrap()
            .token;
        let layer = AuthLayer::new(store, crate::preset::nuvlyx_live());
        let unknown = crate::preset::nuvlyx_live().format().mint().token;
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
