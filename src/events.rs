//! Lifecycle events: what happened to tokens and owners, for audit logs,
//! notifications and webhooks.
//!
//! An [`EventSink`] receives each [`Event`]. `TokenManager::events` sets
//! the manager's; its default, [`TracingEvents`], writes each event as an
//! INFO `tracing` event (with the `tracing` feature; nothing without it).
//! `AuthLayerBuilder::events` sets the layer's, for live tokens whose secret was
//! seen over plain HTTP (checked against the store first); by default the
//! layer reports those only in its WARN log line. Events carry ids and
//! metadata, never a secret.
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
//! use std::sync::{Arc, Mutex};
//! use tower_pat::admin::{NewToken, TokenManager};
//! use tower_pat::events::Event;
//! use tower_pat::MemoryStore;
//!
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let sink = {
//!     let seen = seen.clone();
//!     move |e: &Event| seen.lock().unwrap().push(e.clone())
//! };
//! let tokens = TokenManager::new(MemoryStore::new(), your_token_config()).events(sink);
//! let created = tokens.create(NewToken::new("bot", "shop", ["orders:read"])).await.unwrap();
//! tokens.revoke(created.record.id).await.unwrap();
//! let seen = seen.lock().unwrap();
//! assert!(matches!(seen[0], Event::TokenCreated { .. }));
//! assert!(matches!(seen[1], Event::TokenRevoked { .. }));
//! # }
//! ```
//!
//! "Expiring soon" events come from a scan the host schedules:
//! `TokenManager::report_expiring`.

use crate::limit::{IpAllowlist, RateLimit};
use std::time::{Duration, SystemTime};

use crate::{scope::ScopeSet, store::OwnerId, store::RevocationReason, token::TokenId};

/// Something that happened to a token or an owner. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A token was minted.
    TokenCreated {
        /// The new token.
        id: TokenId,
        /// Its owner.
        owner: OwnerId,
        /// Its name.
        name: String,
        /// Its scopes.
        scopes: ScopeSet,
        /// When it expires, if ever.
        expires_at: Option<SystemTime>,
    },
    /// A token was rotated: `new` replaces `old`, which works until
    /// `old_ends_at` (never past its own expiry).
    TokenRotated {
        /// The token being replaced.
        old: TokenId,
        /// Its replacement (also reported as created).
        new: TokenId,
        /// The owner of both.
        owner: OwnerId,
        /// When the old token stops working, if it ever does.
        old_ends_at: Option<SystemTime>,
    },
    /// A token's limits were changed (its allowlist can only have been
    /// narrowed).
    TokenLimitsChanged {
        /// The token.
        id: TokenId,
        /// Its owner.
        owner: OwnerId,
        /// Its budget now.
        rate_limit: Option<RateLimit>,
        /// Its allowlist now.
        allowed_ips: Option<IpAllowlist>,
    },
    /// A token was revoked, for good.
    TokenRevoked {
        /// The token.
        id: TokenId,
        /// Why.
        reason: RevocationReason,
    },
    /// An owner was suspended: all its tokens are refused.
    OwnerSuspended {
        /// The owner.
        owner: OwnerId,
    },
    /// An owner was reinstated.
    OwnerReinstated {
        /// The owner.
        owner: OwnerId,
    },
    /// A live token's secret arrived over plain HTTP: it is exposed,
    /// revoke it. Sent only after the secret was checked against the store
    /// (ids are public: a real id with a made-up secret is not reported),
    /// at most once a day per token.
    TokenExposed {
        /// The token's id.
        id: TokenId,
    },
    /// A token expires within `within`: reported once per token and
    /// threshold by `TokenManager::report_expiring`.
    TokenExpiringSoon {
        /// The token.
        id: TokenId,
        /// Its owner.
        owner: OwnerId,
        /// When it expires.
        expires_at: SystemTime,
        /// The threshold it crossed (for example 7 days, then 1 day).
        within: Duration,
    },
}

impl Event {
    /// A short stable name for logs and webhooks (`token.created`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Event::TokenCreated { .. } => "token.created",
            Event::TokenRotated { .. } => "token.rotated",
            Event::TokenLimitsChanged { .. } => "token.limits_changed",
            Event::TokenRevoked { .. } => "token.revoked",
            Event::OwnerSuspended { .. } => "owner.suspended",
            Event::OwnerReinstated { .. } => "owner.reinstated",
            Event::TokenExposed { .. } => "token.exposed",
            Event::TokenExpiringSoon { .. } => "token.expiring_soon",
        }
    }
}

/// Receives lifecycle events. Called inline, right after the change was
/// written: keep it quick, and hand slow work (a webhook) to a task or a
/// queue. Any `Fn(&Event)` closure is a sink.
pub trait EventSink: Send + Sync + 'static {
    /// One event.
    fn event(&self, event: &Event);
}

impl<F> EventSink for F
where
    F: Fn(&Event) + Send + Sync + 'static,
{
    fn event(&self, event: &Event) {
        self(event)
    }
}

/// The default sink: each event as an INFO `tracing` event, target
/// `tower_pat::events` (with the `tracing` feature; nothing without it).
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingEvents;

impl EventSink for TracingEvents {
    fn event(&self, event: &Event) {
        #[cfg(feature = "tracing")]
        tracing::info!(target: "tower_pat::events", event = event.name(), details = ?event, "token lifecycle");
        #[cfg(not(feature = "tracing"))]
        let _ = event;
    }
}

/// A shareable sink, as the manager and the layer keep it.
pub(crate) type Sink = std::sync::Arc<dyn EventSink>;

pub(crate) fn default_sink() -> Sink {
    std::sync::Arc::new(TracingEvents)
}
