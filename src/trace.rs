//! `tracing` events (feature `tracing`); no-ops without it. Events carry
//! the token id, never the token.
//!
//! Levels are chosen so that neither a log reader nor the time a request
//! takes can tell one invalid-token reason from another, and so that a flood
//! of bad requests cannot flood the log:
//!
//! - every rejection is an event at DEBUG with its precise reason (all
//!   reasons at the same level);
//! - at most one line per ten seconds and per kind of trouble is written at
//!   WARN (refused requests, tokens seen over plain HTTP) or ERROR (store
//!   failures, wiring mistakes), carrying the number of events held back at
//!   DEBUG since the previous one. Which request writes it depends only on
//!   the time, never on the reason.

use crate::token::TokenId;

/// What became of a well-formed token seen over plain HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sighting {
    /// Decided before (reported already, or known not to verify).
    Known,
    /// Past the budget: not checked.
    OverBudget,
    /// A check was started.
    Checking,
}

/// Whose trouble a rejection is, for the WARN/ERROR lines.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) enum RejectionClass {
    /// No credentials: ordinary, never a WARN line.
    Ordinary,
    /// The store failed (told by `store_error`): not the client's fault.
    NotTheClients,
    /// A scope check ran on a request no layer authenticated.
    Wiring,
    /// A client was refused.
    Refused,
}

/// A rejection, as the log sees it.
#[derive(Debug)]
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) struct Rejected<'a> {
    pub(crate) reason: &'a str,
    pub(crate) token_id: Option<TokenId>,
    pub(crate) status: u16,
    /// The client-visible error code, `""` when there is none.
    pub(crate) error: &'a str,
    pub(crate) class: RejectionClass,
}

#[cfg(feature = "tracing")]
mod imp {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    /// How often at most a WARN/ERROR line of each kind is written per realm.
    const WINDOW: Duration = Duration::from_secs(10);
    use std::error::Error;

    use super::{Rejected, RejectionClass, Sighting};
    use crate::token::TokenId;

    /// Lets one event through per window; counts the others.
    #[derive(Debug)]
    struct Budget {
        start: Instant,
        /// The window the last event let through belongs to (0: none yet).
        window: AtomicU64,
        held_back: AtomicU64,
    }

    impl Budget {
        fn new() -> Self {
            Self {
                start: Instant::now(),
                window: AtomicU64::new(0),
                held_back: AtomicU64::new(0),
            }
        }

        /// `Some(n)` when this event opens a new window (`n` events were
        /// held back since the last one let through), `None` otherwise.
        fn take(&self) -> Option<u64> {
            let now = self.start.elapsed().as_secs() / WINDOW.as_secs() + 1;
            let seen = self.window.load(Ordering::Relaxed);
            if seen != now
                && self
                    .window
                    .compare_exchange(seen, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                return Some(self.held_back.swap(0, Ordering::Relaxed));
            }
            self.held_back.fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    /// The log budgets of one realm.
    #[derive(Debug)]
    pub(crate) struct LogBudgets {
        refused: Budget,
        failed: Budget,
        exposed: Budget,
        unknown_address: Budget,
    }

    impl LogBudgets {
        pub(crate) fn new() -> Self {
            Self {
                refused: Budget::new(),
                failed: Budget::new(),
                exposed: Budget::new(),
                unknown_address: Budget::new(),
            }
        }
    }

    /// A token restricted to networks was refused because the request's
    /// client address is not known: usually the host's wiring, so it says
    /// what to check (at most one line per ten seconds).
    pub(crate) fn address_unknown(id: TokenId, budgets: &LogBudgets) {
        if let Some(held_back) = budgets.unknown_address.take() {
            let token_id = tracing::field::display(id);
            tracing::warn!(target: "tower_pat", token_id, held_back, "refused a token restricted to networks: the client address is unknown (give the request a PeerAddr or axum's ConnectInfo, and behind a proxy configure trusted_proxies; a trusted proxy's forwarding header that does not parse is unknown too)");
        }
    }

    pub(crate) fn rejected(r: &Rejected<'_>, budgets: &LogBudgets) {
        let reason = r.reason;
        let token_id = r.token_id.map(tracing::field::display);
        let status = r.status;
        tracing::debug!(target: "tower_pat", reason, token_id, status, "request rejected");
        // Nothing more to do (not even reading the time) when nobody
        // listens at WARN.
        if !tracing::enabled!(target: "tower_pat", tracing::Level::WARN) {
            return;
        }
        match r.class {
            // Not a failure: clients without credentials are ordinary.
            RejectionClass::Ordinary => {}
            // Not the client's fault: the store (already told by
            // `store_error`) or the host's wiring.
            RejectionClass::NotTheClients => {}
            RejectionClass::Wiring => {
                if let Some(held_back) = budgets.failed.take() {
                    tracing::error!(target: "tower_pat", status, held_back, "a scope check ran on a request no auth layer authenticated: put AuthLayer outside require_scopes");
                }
            }
            RejectionClass::Refused => {
                if let Some(held_back) = budgets.refused.take() {
                    // The client-visible error only: the precise reason
                    // is at DEBUG, the same level for every reason.
                    let error = r.error;
                    tracing::warn!(target: "tower_pat", status, error, token_id, held_back, "requests refused (each one is logged at DEBUG with its reason; held_back counts those since the previous line)");
                }
            }
        }
    }

    /// A well-formed token arrived over plain HTTP (and was refused). Its
    /// secret is checked in the background (`auth::exposure`); nothing
    /// here says it is real.
    pub(crate) fn token_sighted(id: TokenId, sighting: Sighting, budgets: &LogBudgets) {
        match sighting {
            Sighting::OverBudget => match budgets.exposed.take() {
                Some(held_back) => tracing::warn!(
                    target: "tower_pat",
                    token_id = %id,
                    held_back,
                    "well-formed tokens seen over plain HTTP faster than they can be checked; this one was not checked (held_back: further ones since the previous line, each at DEBUG)"
                ),
                None => tracing::debug!(
                    target: "tower_pat",
                    token_id = %id,
                    "well-formed token seen over plain HTTP, not checked (check budget used up)"
                ),
            },
            Sighting::Checking => tracing::debug!(
                target: "tower_pat",
                token_id = %id,
                "well-formed token seen over plain HTTP; checking its secret against the store"
            ),
            Sighting::Known => tracing::debug!(
                target: "tower_pat",
                token_id = %id,
                "well-formed token seen over plain HTTP, checked already"
            ),
        }
    }

    /// The secret of a token seen over plain HTTP matches a live token.
    pub(crate) fn token_exposed(id: TokenId) {
        tracing::warn!(
            target: "tower_pat",
            token_id = %id,
            secret_verified = true,
            "live token received over plain HTTP (secret verified against the store): it is exposed, revoke it"
        );
    }

    /// The secret of a token seen over plain HTTP is not that of a live
    /// token: made up, or the token is revoked or expired already.
    pub(crate) fn exposure_not_verified(id: TokenId, matched_a_dead_token: bool) {
        tracing::debug!(
            target: "tower_pat",
            token_id = %id,
            secret_verified = false,
            matched_a_dead_token,
            "token seen over plain HTTP is not a live token's secret: nothing to revoke"
        );
    }

    /// The store could not say; a later sighting checks again.
    pub(crate) fn exposure_unchecked(id: TokenId) {
        tracing::debug!(
            target: "tower_pat",
            token_id = %id,
            "token seen over plain HTTP could not be checked (the store failed)"
        );
    }

    pub(crate) fn store_error(id: TokenId, e: &(dyn Error + 'static), budgets: &LogBudgets) {
        let source = e.source().map(ToString::to_string);
        match budgets.failed.take() {
            Some(held_back) => {
                tracing::error!(target: "tower_pat", token_id = %id, error = %e, source, held_back, "token store failed")
            }
            None => {
                tracing::debug!(target: "tower_pat", token_id = %id, error = %e, source, "token store failed")
            }
        }
    }

    pub(crate) fn authenticated(id: TokenId) {
        tracing::trace!(target: "tower_pat", token_id = %id, "request authenticated");
    }

    /// One WARN line per window for one kind of trouble outside a realm.
    #[derive(Debug)]
    pub(crate) struct WarnThrottle(Budget);

    impl WarnThrottle {
        pub(crate) fn new() -> Self {
            Self(Budget::new())
        }
    }

    /// A change-feed message that is neither format was ignored. Its
    /// content is not logged (anyone may have sent anything).
    pub(crate) fn feed_garbled(throttle: &WarnThrottle, channel: &str, len: usize) {
        match throttle.0.take() {
            Some(held_back) => {
                tracing::warn!(target: "tower_pat", channel, len, held_back, "unreadable change-feed message ignored (held_back: further ones since the previous line, each at DEBUG)")
            }
            None => {
                tracing::debug!(target: "tower_pat", channel, len, "unreadable change-feed message ignored")
            }
        }
    }

    pub(crate) fn store_warning(what: &str, e: &dyn Error) {
        tracing::warn!(target: "tower_pat", error = %e, source = ?e.source().map(ToString::to_string), "{what}");
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn one_event_per_window_passes_and_the_rest_are_counted() {
            let b = Budget::new();
            assert_eq!(b.take(), Some(0));
            for _ in 0..1000 {
                assert_eq!(b.take(), None);
            }
            // The next window opens: the count of the held-back events.
            b.window.store(0, Ordering::Relaxed);
            assert_eq!(b.take(), Some(1000));
            assert_eq!(b.take(), None);
        }
    }
}

#[cfg(not(feature = "tracing"))]
mod imp {
    use std::error::Error;

    use super::{Rejected, Sighting};
    use crate::token::TokenId;

    #[derive(Debug)]
    pub(crate) struct LogBudgets;

    impl LogBudgets {
        pub(crate) fn new() -> Self {
            Self
        }
    }

    #[inline(always)]
    pub(crate) fn rejected(_: &Rejected<'_>, _: &LogBudgets) {}
    #[inline(always)]
    pub(crate) fn token_sighted(_: TokenId, _: Sighting, _: &LogBudgets) {}
    #[inline(always)]
    pub(crate) fn token_exposed(_: TokenId) {}
    #[inline(always)]
    pub(crate) fn address_unknown(_: TokenId, _: &LogBudgets) {}
    #[inline(always)]
    pub(crate) fn exposure_not_verified(_: TokenId, _: bool) {}
    #[inline(always)]
    pub(crate) fn exposure_unchecked(_: TokenId) {}
    #[inline(always)]
    pub(crate) fn store_error(_: TokenId, _: &(dyn Error + 'static), _: &LogBudgets) {}
    #[inline(always)]
    pub(crate) fn authenticated(_: TokenId) {}
    #[inline(always)]
    pub(crate) fn store_warning(_: &str, _: &dyn Error) {}

    #[derive(Debug)]
    pub(crate) struct WarnThrottle;

    impl WarnThrottle {
        pub(crate) fn new() -> Self {
            Self
        }
    }

    #[inline(always)]
    pub(crate) fn feed_garbled(_: &WarnThrottle, _: &str, _: usize) {}
}

pub(crate) use imp::*;
