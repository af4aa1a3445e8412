//! The verification path, top to bottom: [`Config::begin`] for what can
//! be decided at once, [`Config::judge`] for what follows the lookup.

use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::Request;
use subtle::ConstantTimeEq;

use super::{parse, Authenticated};
use crate::events::Sink;
use crate::response::{Realm, Rejection, RejectionKind};
use crate::store::{used_recently, Found, Lookup, StoreError, StoreErrorKind, TokenStatus};
use crate::transport::TransportPolicy;
use crate::{
    config::TokenConfig, store::TokenRecord, store::TokenStore, token::TokenDigest, token::TokenId,
};

/// Everything an [`crate::auth::AuthLayer`] was configured with, shared (in an
/// `Arc`) by the layer, its services and their pending lookups.
pub(crate) struct Config {
    pub(super) store: Arc<dyn TokenStore>,
    pub(super) tokens: TokenConfig,
    pub(super) realm: Arc<Realm>,
    pub(super) transport: TransportPolicy,
    pub(super) store_timeout: Option<Duration>,
    pub(super) retry_after: Duration,
    /// The latest time read from the clock, in whole seconds since the Unix
    /// epoch (see [`Config::now`]).
    pub(super) clock_floor: AtomicU64,
    /// Requests without credentials go through, unauthenticated.
    pub(super) optional: bool,
    /// Where live tokens seen over plain HTTP are reported, if anywhere
    /// (the WARN line of `crate::trace` is written either way).
    pub(super) events: Option<Sink>,
    /// The checks of tokens seen over plain HTTP.
    pub(super) exposures: super::exposure::Exposures,
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

/// Where the verification of one request stands when `call` returns.
pub(crate) enum Begun {
    /// Refused without waiting: transport, header, format, or a store
    /// that answered at once.
    Refused(Rejection),
    /// No credentials, and the layer is optional.
    Anonymous,
    /// Verified without waiting (a store that answered from memory).
    Verified(Authenticated),
    /// Waiting for the store.
    Pending(Verdict),
}

/// The rest of a verification that waits for the store.
pub(crate) type Verdict = Pin<Box<dyn Future<Output = Result<Authenticated, Rejection>> + Send>>;

impl Config {
    /// The verification path of one request, top to bottom: transport,
    /// header, offline format check, lookup, then (in [`Config::judge`])
    /// digest comparison and the record's status. Everything that can be
    /// decided without waiting is decided here.
    #[inline]
    pub(crate) fn begin<B>(self: &Arc<Self>, req: &Request<B>) -> Begun {
        let refuse = |kind, id| Begun::Refused(self.rejection(kind).with_token_id(id));

        // 1. HTTPS, known from the listener or a trusted proxy, never from
        //    the request itself.
        if !self.transport.is_secure(req) {
            // Tell the host when a real-looking token travelled in clear
            // so it can be revoked.
            let seen = parse::token_and_id(req.headers(), self.tokens.format()).ok();
            if let Some((token, id)) = seen {
                let sighting = self.exposures.sighted(self, id, token);
                crate::trace::token_sighted(id, sighting, &self.realm.log);
            }
            return refuse(RejectionKind::InsecureTransport, seen.map(|(_, id)| id));
        }

        // 2. and 3. The `Authorization` header, and the token's format and
        //    checksum: no store call for junk.
        let (token, id) = match parse::token_and_id(req.headers(), self.tokens.format()) {
            Ok(found) => found,
            Err(RejectionKind::MissingCredentials) if self.optional => return Begun::Anonymous,
            Err(kind) => return refuse(kind, None),
        };
        let digest = TokenDigest::of(token);

        // 4. The lookup by id. A store that answers from memory skips the
        //    timer and the allocation of an asynchronous lookup. A
        //    panicking store fails this request closed; the service keeps
        //    serving others.
        let lookup = catch_unwind(AssertUnwindSafe(|| self.store.find(id)))
            .unwrap_or_else(|_| Lookup::ready(Err(StoreError::new(StoreErrorKind::Panicked))));
        match lookup.now() {
            // 5. to 7., in `judge`.
            Ok(found) => match self.judge(id, digest, found) {
                Ok(auth) => Begun::Verified(auth),
                Err(kind) => refuse(kind, Some(id)),
            },
            Err(pending) => Begun::Pending(Box::pin(self.clone().wait(id, digest, pending))),
        }
    }

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

    /// Waits for a pending lookup (under the store timeout), then judges.
    async fn wait(
        self: Arc<Self>,
        id: TokenId,
        digest: TokenDigest,
        lookup: Lookup,
    ) -> Result<Authenticated, Rejection> {
        let started = crate::meter::ON.then(std::time::Instant::now);
        let found = match self.store_timeout {
            Some(t) => tokio::time::timeout(t, lookup)
                .await
                .unwrap_or_else(|_| Err(StoreError::new(StoreErrorKind::Timeout))),
            None => lookup.await,
        };
        if let Some(started) = started {
            crate::meter::store_lookup(started.elapsed());
        }
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
        // 5. The secret: one constant-time comparison whatever was found.
        let record = self.compare(id, digest, found, equal)?;
        // 6. The record itself: sound, and active now.
        let now = self.now();
        self.check_record(id, &record, now)?;
        // 7. Last use, kept to the minute: no hint when the record already
        //    says the token was used within the last minute (the one place
        //    last use is throttled). A store that panics here fails this
        //    request closed, like one that panics in its lookup.
        if !record.last_used_at.is_some_and(|t| used_recently(t, now)) {
            let noted = catch_unwind(AssertUnwindSafe(|| self.store.record_use(id, now)));
            if noted.is_err() {
                return Err(self.store_failure(id, StoreError::new(StoreErrorKind::Panicked)));
            }
        }
        Ok(Authenticated { record })
    }

    /// Compares the presented token's digest with the stored one: against
    /// a dummy digest when the id is unknown, so the work is the same
    /// either way. A record the store could not read back is the server's
    /// fault, but only a caller who proves the secret may learn that this
    /// id is special: anyone else gets the ordinary 401.
    fn compare(
        &self,
        id: TokenId,
        digest: TokenDigest,
        found: Found,
        equal: impl FnOnce(&TokenDigest, &TokenDigest) -> bool,
    ) -> Result<Arc<TokenRecord>, RejectionKind> {
        let (stored, record) = match found {
            Ok(r) => (r.as_ref().map_or(TokenDigest::DUMMY, |r| r.digest), Ok(r)),
            Err(e) if e.kind() == StoreErrorKind::Corrupt => {
                crate::trace::store_error(id, &e, &self.realm.log);
                (e.corrupt_digest().unwrap_or(TokenDigest::DUMMY), Err(e))
            }
            Err(e) => return Err(self.store_failure(id, e)),
        };
        let matches = equal(&stored, &digest);
        match record {
            Ok(Some(record)) if matches => Ok(record),
            Ok(Some(_)) => Err(RejectionKind::SecretMismatch),
            Ok(None) => Err(RejectionKind::UnknownToken),
            Err(e) => Err(match (e.corrupt_digest(), matches) {
                (Some(_), true) => RejectionKind::StoreUnavailable(StoreErrorKind::Corrupt),
                (Some(_), false) => RejectionKind::SecretMismatch,
                (None, _) => RejectionKind::UnknownToken,
            }),
        }
    }

    /// A record that proved its secret: is it the one asked for, does it
    /// hold only scopes the catalog defines, and is it active at `now`?
    fn check_record(
        &self,
        id: TokenId,
        record: &TokenRecord,
        now: SystemTime,
    ) -> Result<(), RejectionKind> {
        if record.id != id {
            // The digest covers the id, so only a broken store gets here.
            let e = StoreError::corrupt("the store answered with another token's record");
            return Err(self.store_failure(id, e));
        }
        if let Err(e) = self.tokens.catalog().check_known(&record.scopes) {
            return Err(self.store_failure(id, StoreError::with_source(StoreErrorKind::Corrupt, e)));
        }
        match record.status(now) {
            TokenStatus::Active => Ok(()),
            TokenStatus::Revoked => Err(RejectionKind::Revoked),
            TokenStatus::Expired => Err(RejectionKind::Expired),
            TokenStatus::OwnerSuspended => Err(RejectionKind::OwnerSuspended),
        }
    }

    /// Logs a store failure and answers it 503, fail closed.
    fn store_failure(&self, id: TokenId, e: StoreError) -> RejectionKind {
        crate::trace::store_error(id, &e, &self.realm.log);
        RejectionKind::StoreUnavailable(e.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::{NewToken, TokenManager};
    use crate::{auth::AuthLayer, store::MemoryStore};

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
        let admin = TokenManager::new(store.clone(), crate::testing::live());
        let known = admin
            .create(NewToken::new("t", "o", ["orders:read"]))
            .await
            .unwrap()
            .token;
        let layer = AuthLayer::new(store, crate::testing::live());
        let unknown = crate::testing::live().format().mint().token;
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
