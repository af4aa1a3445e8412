//! [`AuthLayer`], its [`AuthLayerBuilder`], and the scope checks built from
//! the finished layer.

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use tower_layer::Layer;

use super::require::RequireScopesLayer;
use super::verify::{Config, Limits};
use super::Auth;
use crate::limit::{FailureLimiter, IpAllowlist, MemoryRateLimiter, RateLimit};
use crate::response::{ProblemDetails, Realm, DEFAULT_REALM};
use crate::scope::ScopeMatch;
use crate::store::RateLimiter;
use crate::transport::TransportPolicy;
use crate::{config::TokenConfig, scope::ScopeError, store::TokenStore};

/// Default store timeout.
pub(crate) const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(2);
/// Default `Retry-After` on 503.
pub(crate) const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The default failed-attempt limit per client address: 20 at once, then
/// one every 3 seconds (20 a minute).
fn default_failed_auth_limit() -> RateLimit {
    RateLimit::new(20, Duration::from_secs(60)).expect("a valid budget")
}

/// Applies PAT authentication to a service. Cheap to clone.
///
/// [`AuthLayer::new`] has the defaults: realm `"api"`, HTTPS required, no
/// trusted proxies, 2-second store timeout, `Retry-After: 1`, problem+json
/// bodies, at most 20 failed attempts a minute per client address, token
/// budgets kept in this process's memory. [`AuthLayer::builder`] changes them. A finished layer has no
/// setters, so the scope checks built from it
/// ([`AuthLayer::require_scopes`]) always answer as it does.
#[derive(Clone)]
#[must_use]
pub struct AuthLayer<R = ProblemDetails> {
    pub(super) config: Arc<Config>,
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
    /// A layer with the defaults, verifying tokens of `config` (format,
    /// catalog, clock: the same value the [`crate::admin::TokenManager`]
    /// mints with) against `store` (any [`TokenStore`], or an `Arc` of
    /// one). Same as `AuthLayer::builder(store, config).build()`.
    pub fn new(store: impl TokenStore, config: TokenConfig) -> Self {
        Self::builder(store, config).build()
    }

    /// A builder for a layer with other settings than the defaults: every
    /// setting is made before the layer exists.
    ///
    /// ```
    /// # let your_token_config = || tower_pat::TokenConfig::new(
    /// #     tower_pat::TokenFormat::new("nvl", tower_pat::Environment::Live).unwrap(),
    /// #     tower_pat::ScopeCatalog::new().scope("orders:read", "Read orders."),
    /// # );
    /// use std::time::Duration;
    /// use tower_pat::{AuthLayer, MemoryStore};
    ///
    /// let auth = AuthLayer::builder(MemoryStore::new(), your_token_config())
    ///     .realm("nuvlyx")
    ///     .store_timeout(Some(Duration::from_millis(500)))
    ///     .build();
    /// let orders = auth.require_scopes(["orders:read"]); // answers in realm "nuvlyx"
    /// # let _ = orders;
    /// ```
    pub fn builder(store: impl TokenStore, config: TokenConfig) -> AuthLayerBuilder {
        AuthLayerBuilder {
            config: Config {
                store: Arc::new(store),
                tokens: config,
                realm: Arc::new(Realm::new(DEFAULT_REALM, false)),
                transport: TransportPolicy::default(),
                store_timeout: Some(DEFAULT_STORE_TIMEOUT),
                retry_after: DEFAULT_RETRY_AFTER,
                clock_floor: AtomicU64::new(0),
                optional: false,
                events: None,
                exposures: Default::default(),
                limits: Limits {
                    memory: MemoryRateLimiter::new(),
                    shared: None,
                    default_rate: None,
                    default_ips: None,
                    failures: Some(FailureLimiter::new(default_failed_auth_limit())),
                    record_addresses: false,
                    policies: Default::default(),
                },
            },
            responder: ProblemDetails,
        }
    }
}

/// The settings of an [`AuthLayer`], made before it exists
/// ([`AuthLayer::builder`]); [`AuthLayerBuilder::build`] yields the layer.
#[must_use = "call `.build()` to get the layer"]
pub struct AuthLayerBuilder<R = ProblemDetails> {
    config: Config,
    responder: R,
}

impl<R: fmt::Debug> fmt::Debug for AuthLayerBuilder<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayerBuilder")
            .field("config", &self.config)
            .field("responder", &self.responder)
            .finish()
    }
}

impl<R> AuthLayerBuilder<R> {
    /// The finished layer. Scope checks are built from it, and answer with
    /// its realm, responder and attach setting.
    pub fn build(self) -> AuthLayer<R> {
        AuthLayer {
            config: Arc::new(self.config),
            responder: self.responder,
        }
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
        self.config.realm = Arc::new(Realm::new(realm, attach));
        self
    }

    /// Adds the [`Rejection`](crate::response::Rejection) (the precise reason, with the token id when
    /// there is one) to the extensions of every rejection response, for
    /// layers above this one: metrics by reason, rate limits on failed
    /// authentication (see `examples/rate_limit.rs`). Off by default: it
    /// costs three small allocations per rejection. Scope checks built from
    /// this layer follow the same setting.
    pub fn attach_rejections(mut self) -> Self {
        let name = self.config.realm.name().to_owned();
        self.config.realm = Arc::new(Realm::new(&name, true));
        self
    }

    /// Lets requests **without** credentials through, unauthenticated, for
    /// routes that work with and without a token (a public listing that
    /// shows more to a known caller). Handlers then see no
    /// [`Authenticated`](crate::auth::Authenticated) (with axum, `Option<Authenticated>` is `None`), and
    /// a `require_scopes` layer answers such a request 401 as it would
    /// without this setting. Credentials that are present must still be
    /// valid: a malformed, unknown, revoked or expired token is 401, never
    /// anonymous. HTTPS is still required.
    ///
    /// ```
    /// # fn your_token_config() -> tower_pat::TokenConfig {
    /// #     // Your API's token format and scopes, here `nvl_live_…` tokens.
    /// #     tower_pat::TokenConfig::new(
    /// #         tower_pat::TokenFormat::new("nvl", tower_pat::Environment::Live).unwrap(),
    /// #         tower_pat::ScopeCatalog::new()
    /// #             .scope("products:read", "List products.")
    /// #             .scope("orders:read", "Read orders.")
    /// #             .scope("orders:write", "Create orders.")
    /// #             .scope("wallet:read", "Read the wallet balance."),
    /// #     )
    /// # }
    /// # #[cfg(feature = "axum")]
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
    ///     .layer(AuthLayer::builder(MemoryStore::new(), your_token_config()).optional().build());
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
    /// # #[cfg(not(feature = "axum"))] fn main() {}
    /// ```
    pub fn optional(mut self) -> Self {
        self.config.optional = true;
        self
    }

    /// Accepts requests over plain HTTP. **For local development only**:
    /// tokens sent over plain HTTP can be read by anyone on the path.
    pub fn allow_plain_http(mut self) -> Self {
        self.config.transport.allow_plain_http = true;
        self
    }

    /// Believes `header` when, and only when, it comes from one of these
    /// proxy addresses or networks (`"10.0.0.0/8"`, `"127.0.0.1/32"`): the
    /// TLS-terminating proxy in front of this service. Name the one header
    /// your proxy sets; the other is ignored (see [`crate::transport`] for
    /// the parsing rules).
    ///
    /// ```
    /// # fn your_token_config() -> tower_pat::TokenConfig {
    /// #     // Your API's token format and scopes, here `nvl_live_…` tokens.
    /// #     tower_pat::TokenConfig::new(
    /// #         tower_pat::TokenFormat::new("nvl", tower_pat::Environment::Live).unwrap(),
    /// #         tower_pat::ScopeCatalog::new()
    /// #             .scope("products:read", "List products.")
    /// #             .scope("orders:read", "Read orders.")
    /// #             .scope("orders:write", "Create orders.")
    /// #             .scope("wallet:read", "Read the wallet balance."),
    /// #     )
    /// # }
    /// use tower_pat::transport::ProxyHeader;
    /// use tower_pat::{AuthLayer, MemoryStore};
    ///
    /// let layer = AuthLayer::builder(MemoryStore::new(), your_token_config())
    ///     .trusted_proxies(ProxyHeader::XForwardedProto, ["10.0.0.0/8".parse().unwrap()]).build();
    /// # let _ = layer;
    /// ```
    pub fn trusted_proxies<I>(mut self, header: crate::transport::ProxyHeader, proxies: I) -> Self
    where
        I: IntoIterator<Item = IpNet>,
    {
        self.config.transport.proxies = Some((header, proxies.into_iter().collect()));
        self
    }

    /// Keeps token budgets ([`TokenRecord::rate_limit`](crate::store::TokenRecord::rate_limit))
    /// in `limiter` instead of this process's memory: a limiter shared by
    /// all instances, such as `tower-pat-redis`'s. Its calls run under the
    /// store timeout; a failure is answered 503, unless the limiter falls
    /// back on something itself.
    pub fn rate_limiter(mut self, limiter: impl RateLimiter) -> Self {
        self.config.limits.shared = Some(Arc::new(limiter));
        self
    }

    /// The budget of tokens whose record carries none (by default they
    /// have none).
    pub fn default_rate_limit(mut self, limit: RateLimit) -> Self {
        self.config.limits.default_rate = Some(limit);
        self
    }

    /// The networks tokens whose record carries no allowlist may be used
    /// from (by default, any).
    pub fn default_allowed_ips(mut self, allowed: IpAllowlist) -> Self {
        self.config.limits.default_ips = Some(allowed);
        self
    }

    /// How many failed authentications (401 answers to requests that sent
    /// credentials) each client address may have: past the burst, the
    /// client gets 429 with `Retry-After`, before the store is asked, for
    /// every request carrying credentials, until its budget refills. This
    /// is what bounds a flood of forged, well-formed tokens, each of which
    /// costs a lookup.
    ///
    /// The default is `20/min` (20 at once, then one every 3 seconds).
    /// `None` turns it off (when a limiter in front of the service does
    /// this). A client is an IPv4 address or an IPv6 /64, found as for
    /// allowlists (the peer, or behind trusted proxies their forwarding
    /// header); requests whose client address is not known are not
    /// counted. A valid token sent from a blocked address is refused too:
    /// the layer cannot know it is valid without asking the store.
    ///
    /// **Behind a proxy or a load balancer, configure
    /// [`AuthLayerBuilder::trusted_proxies`]**, or every client shares the
    /// proxy's budget. Until you do, loopback, private and link-local peer
    /// addresses (what a proxy in front usually has) are not counted, so
    /// that one client cannot lock out all.
    pub fn failed_auth_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.config.limits.failures = limit.map(FailureLimiter::new);
        self
    }

    /// Records the client address of each token's last use
    /// ([`TokenRecord::last_used_from`](crate::store::TokenRecord::last_used_from)),
    /// as GitLab shows it in token listings. Off by default: an IP address
    /// is personal data, so tell your users, and keep it no longer than
    /// needed (the shipped stores forget it after 30 days).
    pub fn record_client_addresses(mut self) -> Self {
        self.config.limits.record_addresses = true;
        self
    }

    /// Fails a store call that takes longer than `timeout` with 503.
    /// `None` waits forever (not recommended). Needs a Tokio runtime.
    pub fn store_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.store_timeout = timeout;
        self
    }

    /// The `Retry-After` sent with 503 (whole seconds, at least 1).
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.config.retry_after = after;
        self
    }

    /// Reports each live token whose secret arrived over plain HTTP to
    /// `sink`, as [`Event::TokenExposed`](crate::events::Event), so the host
    /// can revoke it or tell its owner.
    ///
    /// Every well-formed token seen over plain HTTP (and refused, with or
    /// without a sink) is checked against the store in the background,
    /// since ids are public and anyone can send a real id with a made-up
    /// secret. Only a secret that matches a live token is reported (once a
    /// day per token) and logged at WARN as exposed; other sightings are
    /// DEBUG lines that advise nothing. Checks never delay the response,
    /// run at most 16 at once and 200 a second, and need a Tokio runtime;
    /// a flood of made-up tokens sends no event and cannot hide a real
    /// exposure that comes again after it.
    pub fn events(mut self, sink: impl crate::events::EventSink) -> Self {
        self.config.events = Some(Arc::new(sink));
        self
    }

    /// Replaces the rejection responder (see [`Responder`](crate::response::Responder)). Scope checks
    /// built from the layer use it too.
    pub fn responder<R2>(self, responder: R2) -> AuthLayerBuilder<R2> {
        AuthLayerBuilder {
            config: self.config,
            responder,
        }
    }
}

impl<R> AuthLayer<R> {
    /// A scope check requiring **every** scope in `scopes`, answering 403
    /// `insufficient_scope` otherwise, in this layer's realm and with its
    /// responder (override it with [`RequireScopesLayer::responder`]). Put
    /// it behind this layer, per route (with axum, `route_layer`).
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
    /// # fn your_token_config() -> tower_pat::TokenConfig {
    /// #     // Your API's token format and scopes, here `nvl_live_…` tokens.
    /// #     tower_pat::TokenConfig::new(
    /// #         tower_pat::TokenFormat::new("nvl", tower_pat::Environment::Live).unwrap(),
    /// #         tower_pat::ScopeCatalog::new()
    /// #             .scope("products:read", "List products.")
    /// #             .scope("orders:read", "Read orders.")
    /// #             .scope("orders:write", "Create orders.")
    /// #             .scope("wallet:read", "Read the wallet balance."),
    /// #     )
    /// # }
    /// use tower_pat::{AuthLayer, MemoryStore};
    ///
    /// let auth = AuthLayer::new(MemoryStore::new(), your_token_config());
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
