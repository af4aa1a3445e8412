//! Tokens seen over plain HTTP: which of them are real.
//!
//! A token id is no secret, and the checksum is public: anyone can send a
//! well-formed token with a real id and a random secret, or a million
//! made-up ones. So a sighting proves nothing until the secret has been
//! checked against the store. Here each sighting is checked **off the
//! response path** (a task of its own; the 403 never waits for it), and:
//!
//! - only a secret that matches a live token is reported as exposed (a
//!   WARN line advising revocation, and [`Event::TokenExposed`] to the
//!   layer's sink); anything else is a DEBUG line that advises nothing;
//! - checks are bounded: [`MAX_IN_FLIGHT`] at once and [`RATE`] a second
//!   (burst [`BURST`]); a sighting past the budget is counted and said in a
//!   budgeted WARN line, never checked later;
//! - what was decided is remembered for a while, each kind in a map of its
//!   own with a size bound that drops the oldest entry, never a permanent
//!   cap: a verified exposure is reported once per [`VERIFIED_FOR`], a
//!   sighting that did not verify is not checked again for
//!   [`REFUSED_FOR`]. A flood of made-up tokens fills only the second map,
//!   so it can neither silence nor repeat reports about real ones, and it
//!   sends no event at all.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::verify::Config;
use crate::events::Event;
pub(crate) use crate::trace::Sighting;
use crate::{store::TokenStatus, token::TokenDigest, token::TokenId};

/// Checks running at once.
const MAX_IN_FLIGHT: usize = 16;
/// Checks started per second, in the long run.
const RATE: f64 = 200.0;
/// Checks that may start at once after a quiet time.
const BURST: f64 = 200.0;
/// How long a verified exposure is not reported again.
const VERIFIED_FOR: Duration = Duration::from_secs(24 * 3600);
/// How long a sighting that did not verify is not checked again.
const REFUSED_FOR: Duration = Duration::from_secs(3600);
/// Entries each map keeps at most (the oldest goes first).
const MAX_REMEMBERED: usize = 16_384;
/// How long one check may wait for the store.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// The exposure checks of one layer.
#[derive(Debug)]
pub(crate) struct Exposures {
    state: Mutex<State>,
    in_flight: AtomicUsize,
}

#[derive(Debug)]
struct State {
    verified: Expiring<TokenId>,
    /// Keyed by id and digest: a wrong secret for a real id must not stop
    /// the right one from being checked.
    refused: Expiring<(TokenId, [u8; 32])>,
    tokens: f64,
    refilled: Option<Instant>,
}

impl Default for Exposures {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                verified: Expiring::default(),
                refused: Expiring::default(),
                tokens: BURST,
                refilled: None,
            }),
            in_flight: AtomicUsize::new(0),
        }
    }
}

impl Exposures {
    /// A well-formed token `token` with id `id` arrived over plain HTTP:
    /// checks it in the background, within the budget.
    pub(crate) fn sighted(&self, config: &Arc<Config>, id: TokenId, token: &[u8]) -> Sighting {
        let digest = TokenDigest::of(token);
        let now = Instant::now();
        {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if s.verified.contains(&id, now) || s.refused.contains(&(id, *digest.as_bytes()), now) {
                return Sighting::Known;
            }
            let elapsed = s.refilled.map_or(0.0, |at| (now - at).as_secs_f64());
            s.tokens = (s.tokens + elapsed * RATE).min(BURST);
            s.refilled = Some(now);
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return Sighting::OverBudget;
            };
            if s.tokens < 1.0 || self.in_flight.load(Ordering::Acquire) >= MAX_IN_FLIGHT {
                return Sighting::OverBudget;
            }
            s.tokens -= 1.0;
            self.in_flight.fetch_add(1, Ordering::AcqRel);
            let config = config.clone();
            runtime.spawn(async move { check(&config, id, digest).await });
        }
        Sighting::Checking
    }
}

/// Looks `id` up and compares the digests in constant time; reports a
/// live match, remembers the outcome.
async fn check(config: &Config, id: TokenId, digest: TokenDigest) {
    let timeout = config.store_timeout.unwrap_or(CHECK_TIMEOUT);
    let found = tokio::time::timeout(timeout, config.store.find(id)).await;
    let exposures = &config.exposures;
    exposures.in_flight.fetch_sub(1, Ordering::AcqRel);
    let record = match found {
        Ok(Ok(record)) => record,
        // Not decided: a later sighting may check again.
        Ok(Err(_)) | Err(_) => {
            crate::trace::exposure_unchecked(id);
            return;
        }
    };
    let stored = record.as_ref().map_or(TokenDigest::DUMMY, |r| r.digest);
    let matches: bool = subtle::ConstantTimeEq::ct_eq(&stored, &digest).into();
    let live = matches
        && record
            .as_ref()
            .is_some_and(|r| r.status(config.tokens.now()) == TokenStatus::Active);
    let now = Instant::now();
    let mut s = exposures
        .state
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if live {
        if !s.verified.insert(id, now + VERIFIED_FOR, now) {
            return;
        }
        drop(s);
        crate::trace::token_exposed(id);
        if let Some(sink) = &config.events {
            sink.event(&Event::TokenExposed { id });
        }
    } else {
        s.refused
            .insert((id, *digest.as_bytes()), now + REFUSED_FOR, now);
        drop(s);
        crate::trace::exposure_not_verified(id, matches);
    }
}

/// A set whose entries expire, bounded in size: when full, the oldest
/// entry goes.
#[derive(Debug)]
struct Expiring<K> {
    until: HashMap<K, Instant>,
    order: VecDeque<(K, Instant)>,
}

impl<K> Default for Expiring<K> {
    fn default() -> Self {
        Self {
            until: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<K: Hash + Eq + Clone> Expiring<K> {
    fn contains(&mut self, key: &K, now: Instant) -> bool {
        self.expire(now);
        self.until.get(key).is_some_and(|until| *until > now)
    }

    /// Adds `key` until `until`; `false` if it was there already.
    fn insert(&mut self, key: K, until: Instant, now: Instant) -> bool {
        self.expire(now);
        if self.until.get(&key).is_some_and(|u| *u > now) {
            return false;
        }
        while self.until.len() >= MAX_REMEMBERED {
            let Some((old, _)) = self.order.pop_front() else {
                break;
            };
            self.until.remove(&old);
        }
        self.until.insert(key.clone(), until);
        self.order.push_back((key, until));
        true
    }

    /// Drops the entries whose time is up (entries expire in insertion
    /// order: every entry of a map lives equally long).
    fn expire(&mut self, now: Instant) {
        while let Some((key, until)) = self.order.front() {
            if *until > now {
                break;
            }
            if self.until.get(key) == Some(until) {
                self.until.remove(key);
            }
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_oldest_goes_when_full() {
        let mut set = Expiring::default();
        let now = Instant::now();
        let hour = Duration::from_secs(3600);
        assert!(set.insert(1u32, now + hour, now));
        assert!(!set.insert(1u32, now + hour, now), "already there");
        assert!(set.contains(&1, now));
        assert!(!set.contains(&1, now + hour), "expired");
        for i in 0..MAX_REMEMBERED as u32 + 10 {
            set.insert(i, now + hour, now);
        }
        assert_eq!(set.until.len(), MAX_REMEMBERED);
        assert!(!set.contains(&0, now), "the oldest went first");
        assert!(set.contains(&(MAX_REMEMBERED as u32 + 9), now));
    }
}
