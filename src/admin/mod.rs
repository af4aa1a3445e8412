//! Token administration: what the "API Tokens" screen of an admin panel does.
//!
//! [`TokenManager`] mints tokens (validating scopes against a
//! [`ScopeCatalog`](crate::scope::ScopeCatalog)), lists them without secrets, revokes them for good,
//! rotates them with a grace period and suspends owners. It works over any
//! store implementing [`TokenAdmin`].
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
//! use std::time::Duration;
//! use tower_pat::admin::{NewToken, TokenManager};
//! use tower_pat::{MemoryStore, ScopeCatalog};
//!
//! let tokens = TokenManager::new(MemoryStore::new(), your_token_config());
//! let created = tokens
//!     .create(NewToken::new("order bot", "demo-store", ["orders:read"]))
//!     .await
//!     .unwrap();
//! // Show `created.token.expose_secret()` to the user once, then drop it.
//!
//! let rotated = tokens
//!     .rotate(created.record.id, Duration::from_secs(3600))
//!     .await
//!     .unwrap();
//! assert_eq!(rotated.record.scopes, created.record.scopes);
//!
//! tokens.revoke(rotated.record.id).await.unwrap();
//! # }
//! ```

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::events::{default_sink, Event, EventSink, Sink};

use crate::limit::{IpAllowlist, RateLimit};
use crate::store::{OwnerId, StoreError, StoreErrorKind, TokenAdmin, TokenRecord};
use crate::{config::TokenConfig, store::RevocationReason, token::TokenId};

/// Mints, lists, rotates and revokes tokens; suspends owners. Each change
/// is also reported as an [`Event`] (see [`crate::events`]).
#[derive(Clone)]
pub struct TokenManager<S> {
    store: S,
    config: TokenConfig,
    events: Sink,
    /// (token, threshold) pairs already reported as expiring soon.
    reported: Arc<Mutex<HashSet<(TokenId, Duration)>>>,
}

impl<S: fmt::Debug> fmt::Debug for TokenManager<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManager")
            .field("store", &self.store)
            .field("config", &self.config)
            .field("events", &format_args!("EventSink"))
            .finish_non_exhaustive()
    }
}

impl<S: TokenAdmin> TokenManager<S> {
    /// A manager minting tokens of `config` (format, catalog, clock: the
    /// same value the [`crate::auth::AuthLayer`] verifies with) into `store`.
    /// Events go to [`TracingEvents`](crate::events::TracingEvents) until [`TokenManager::events`] says
    /// otherwise.
    pub fn new(store: S, config: TokenConfig) -> Self {
        Self {
            store,
            config,
            events: default_sink(),
            reported: Arc::default(),
        }
    }

    /// Sends lifecycle events to `sink` (created, rotated, revoked, owner
    /// suspended and reinstated, expiring soon), each right after the
    /// change was written.
    #[must_use]
    pub fn events(mut self, sink: impl EventSink) -> Self {
        self.events = Arc::new(sink);
        self
    }

    /// The underlying store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The format, catalog and clock tokens are minted with.
    pub fn config(&self) -> &TokenConfig {
        &self.config
    }

    /// Creates a token. Nothing is written unless every check passes. An
    /// owner has one live token per name, as on GitHub:
    /// [`AdminError::NameInUse`] while another of its tokens with this name
    /// is neither revoked nor expired (rotate it, or revoke it first).
    pub async fn create(&self, req: NewToken) -> Result<CreatedToken, AdminError> {
        self.create_replacing(req, None).await
    }

    /// [`TokenManager::create`], the new token replacing `replaces` by
    /// rotation (kept on the record; it may share the old token's name
    /// while that one is in its grace).
    async fn create_replacing(
        &self,
        req: NewToken,
        replaces: Option<TokenId>,
    ) -> Result<CreatedToken, AdminError> {
        let scopes = self.config.catalog().grant(&req.scopes)?;
        let owner = OwnerId::new(&req.owner)?;
        let name = req.name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(unsafe_in_name) {
            return Err(AdminError::InvalidName);
        }
        let now = self.config.now();
        let expires_at = match req.expires_in {
            None => None,
            Some(d) if d.is_zero() => return Err(AdminError::InvalidLifetime),
            Some(d) => Some(now.checked_add(d).ok_or(AdminError::InvalidLifetime)?),
        };
        // An id collision (1 in 2^64 per pair) is answered by minting again.
        for _ in 0..3 {
            let minted = self.config.format().mint();
            let mut record = TokenRecord::new(
                minted.id,
                minted.digest,
                owner.clone(),
                name,
                scopes.clone(),
                now,
            );
            record.preview = minted.token.preview().into();
            record.expires_at = expires_at;
            record.rotated_from = replaces;
            record.rate_limit = req.rate_limit;
            record.allowed_ips = req.allowed_ips.clone();
            match self.store.insert(record.clone()).await {
                Ok(()) => {
                    self.events.event(&Event::TokenCreated {
                        id: record.id,
                        owner: record.owner.clone(),
                        name: record.name.to_string(),
                        scopes: record.scopes.clone(),
                        expires_at: record.expires_at,
                    });
                    return Ok(CreatedToken {
                        token: minted.token,
                        record,
                    });
                }
                Err(e) if e.kind() == StoreErrorKind::Conflict => continue,
                Err(e) if e.kind() == StoreErrorKind::NameInUse => {
                    return Err(AdminError::NameInUse {
                        owner: owner.as_str().to_owned(),
                        name: name.to_owned(),
                    })
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::new(StoreErrorKind::Conflict).into())
    }

    /// Lists tokens (one owner's, or all), newest first. No secrets.
    pub async fn list(&self, owner: Option<&str>) -> Result<Vec<TokenRecord>, AdminError> {
        let owner = owner.map(OwnerId::new).transpose()?;
        Ok(self.store.list(owner.as_ref()).await?)
    }

    /// Revokes a token at once and for good. Returns `true` if this call
    /// revoked it, `false` if it already was revoked.
    pub async fn revoke(&self, id: TokenId) -> Result<bool, AdminError> {
        self.revoke_with_reason(id, RevocationReason::Manual).await
    }

    /// Revokes for `reason`, which is kept on the record and sent with the
    /// [`Event::TokenRevoked`]: for hosts that revoke on their own signals
    /// (a leak report, an abuse check). Returns `true` if this call revoked
    /// it, `false` if it already was revoked (the first reason stays).
    pub async fn revoke_with_reason(
        &self,
        id: TokenId,
        reason: RevocationReason,
    ) -> Result<bool, AdminError> {
        let revoked = self
            .store
            .revoke(id, self.config.now(), &reason)
            .await
            .map_err(|e| not_found_as(e, id))?;
        if revoked {
            self.events.event(&Event::TokenRevoked { id, reason });
        }
        Ok(revoked)
    }

    /// Revokes the token given in full (a leaked token pasted by its owner).
    /// The plaintext must be well-formed and match the stored digest.
    pub async fn revoke_token(&self, token: &str) -> Result<bool, AdminError> {
        let id = self.resolve(token).await?;
        self.revoke(id).await
    }

    /// Finds the id of a full token, checking its digest.
    pub async fn resolve(&self, token: &str) -> Result<TokenId, AdminError> {
        let id = self.config.format().parse(token)?;
        match self.store.find(id).await? {
            Some(r) if r.digest.verify(token) => Ok(id),
            _ => Err(AdminError::UnknownToken(id)),
        }
    }

    /// Rotates a token: mints a new one with the same name, owner and
    /// scopes (and the same lifetime length, if the old one had one), and
    /// lets the old one work until `now + grace` — never past its own
    /// expiry. A zero grace revokes the old token at once, with the reason
    /// [`RevocationReason::RotationGraceEnded`].
    pub async fn rotate(&self, id: TokenId, grace: Duration) -> Result<CreatedToken, AdminError> {
        let old = self
            .store
            .find(id)
            .await?
            .ok_or(AdminError::UnknownToken(id))?;
        let now = self.config.now();
        if old.revoked_at.is_some() || old.is_expired_at(now) {
            return Err(AdminError::UnknownToken(id));
        }
        let lifetime = old
            .expires_at
            .and_then(|e| e.duration_since(old.created_at).ok())
            .filter(|d| !d.is_zero());
        let mut req = NewToken::new(
            &old.name,
            old.owner.as_str(),
            old.scopes.iter().map(|s| s.as_str().to_owned()),
        );
        req.expires_in = lifetime;
        // The limits go with the token to its successor.
        req.rate_limit = old.rate_limit;
        req.allowed_ips = old.allowed_ips.clone();
        let created = self.create_replacing(req, Some(id)).await?;
        // The old token ends at `now + grace`, or at its own expiry if that
        // comes first. A grace too long for the clock to represent leaves
        // its expiry as it was (never "now").
        let old_ends_at = match now.checked_add(grace) {
            Some(end) if grace.is_zero() => {
                self.revoke_with_reason(id, RevocationReason::RotationGraceEnded)
                    .await?;
                Some(end)
            }
            Some(end) => {
                self.store
                    .cap_expiry(id, end)
                    .await
                    .map_err(|e| not_found_as(e, id))?;
                Some(old.expires_at.map_or(end, |e| e.min(end)))
            }
            None => old.expires_at,
        };
        self.events.event(&Event::TokenRotated {
            old: id,
            new: created.record.id,
            owner: old.owner.clone(),
            old_ends_at,
        });
        Ok(created)
    }

    /// Changes a live token's limits: its budget, freely, and its
    /// allowlist, only narrower. [`AdminError::AllowlistWidened`] if
    /// `allowed_ips` lets in an address the current list refuses, or lifts
    /// the list: a token restricted to networks was handed out on that
    /// understanding, so widening it takes a new token (and a new secret).
    ///
    /// Who may call it is the host's decision; the demo lets the owner
    /// (signed in, in sudo mode) narrow an allowlist and change a budget.
    pub async fn set_limits(
        &self,
        id: TokenId,
        rate_limit: Option<RateLimit>,
        allowed_ips: Option<IpAllowlist>,
    ) -> Result<(), AdminError> {
        let current = self
            .store
            .find(id)
            .await?
            .ok_or(AdminError::UnknownToken(id))?;
        if current.revoked_at.is_some() || current.is_expired_at(self.config.now()) {
            return Err(AdminError::UnknownToken(id));
        }
        if let Some(current) = &current.allowed_ips {
            if !current.may_become(allowed_ips.as_ref()) {
                return Err(AdminError::AllowlistWidened);
            }
        }
        self.store
            .set_limits(id, rate_limit, allowed_ips.clone())
            .await
            .map_err(|e| match e.kind() {
                // Narrowed meanwhile, by someone else, below this list.
                StoreErrorKind::Conflict => AdminError::AllowlistWidened,
                _ => not_found_as(e, id),
            })?;
        self.events.event(&Event::TokenLimitsChanged {
            id,
            owner: current.owner.clone(),
            rate_limit,
            allowed_ips,
        });
        Ok(())
    }

    /// Suspends an owner: every token it owns answers 401 until reinstated.
    pub async fn suspend_owner(&self, owner: &str) -> Result<(), AdminError> {
        let owner = OwnerId::new(owner)?;
        self.store.set_owner_suspended(&owner, true).await?;
        self.events.event(&Event::OwnerSuspended { owner });
        Ok(())
    }

    /// Lifts an owner's suspension.
    pub async fn reinstate_owner(&self, owner: &str) -> Result<(), AdminError> {
        let owner = OwnerId::new(owner)?;
        self.store.set_owner_suspended(&owner, false).await?;
        self.events.event(&Event::OwnerReinstated { owner });
        Ok(())
    }

    /// Reports, as [`Event::TokenExpiringSoon`], every live token that
    /// expires within one of `thresholds` (say 7 days and 1 day): once per
    /// token and threshold, however often the scan runs. Run it on a
    /// schedule of your choosing (hourly, say). Returns how many events
    /// it sent. What was reported is kept by this manager (and its clones)
    /// in memory: a restarted process reports each pending threshold once
    /// more.
    pub async fn report_expiring(&self, thresholds: &[Duration]) -> Result<usize, AdminError> {
        let now = self.config.now();
        let records = self.store.list(None).await?;
        let mut events = Vec::new();
        {
            let mut reported = self.reported.lock().unwrap_or_else(PoisonError::into_inner);
            for r in &records {
                let (None, Some(expires_at)) = (r.revoked_at, r.expires_at) else {
                    continue;
                };
                let Ok(left) = expires_at.duration_since(now) else {
                    continue; // expired already
                };
                if left.is_zero() {
                    continue;
                }
                for &within in thresholds {
                    if left <= within && reported.insert((r.id, within)) {
                        events.push(Event::TokenExpiringSoon {
                            id: r.id,
                            owner: r.owner.clone(),
                            expires_at,
                            within,
                        });
                    }
                }
            }
        }
        for e in &events {
            self.events.event(e);
        }
        Ok(events.len())
    }
}

/// Characters refused in token names: control characters, invisible
/// formatting characters, and the bidirectional controls (Trojan Source,
/// CVE-2021-42574).
fn unsafe_in_name(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'                   // Arabic letter mark
            | '\u{200B}'..='\u{200F}'    // zero-width space/joiners, LRM, RLM
            | '\u{202A}'..='\u{202E}'    // LRE, RLE, PDF, LRO, RLO
            | '\u{2060}'..='\u{2064}'    // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}'    // LRI, RLI, FSI, PDI
            | '\u{FEFF}'                 // zero-width no-break space (BOM)
            | '\u{FFF9}'..='\u{FFFB}' // interlinear annotations
        )
}

fn not_found_as(e: StoreError, id: TokenId) -> AdminError {
    if e.kind() == StoreErrorKind::NotFound {
        AdminError::UnknownToken(id)
    } else {
        AdminError::Store(e)
    }
}

mod types;

pub use self::types::{AdminError, CreatedToken, NewToken};

#[cfg(test)]
mod tests;
