//! Pieces shared by the sqlx stores: row decoding, time encoding and the
//! throttled, batched last-used tracker.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tower_pat::scope::{ScopeError, ScopeSet};
use tower_pat::store::{
    Background, OwnerId, RevocationReason, StoreError, StoreErrorKind, TokenRecord,
};
use tower_pat::token::{TokenDigest, TokenId};

/// A row as stored, before validation.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct RawRecord {
    id: i64,
    digest: Vec<u8>,
    owner: String,
    name: String,
    scopes: String,
    preview: String,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    revoked_reason: Option<String>,
    revoked_url: Option<String>,
    last_used_at: Option<i64>,
    owner_suspended: bool,
    rotated_from: Option<i64>,
    rate_limit: Option<String>,
    allowed_ips: Option<String>,
    last_used_ip: Option<String>,
}

impl RawRecord {
    /// Validates a row; anything unexpected is [`StoreError::corrupt`].
    /// Scope sets and owners already seen are shared through `shared`.
    pub(crate) fn into_record(self, shared: &Shared) -> Result<TokenRecord, StoreError> {
        let id = db_to_id(self.id);
        let digest = TokenDigest::try_from_slice(&self.digest)
            .ok_or_else(|| StoreError::corrupt(format!("token {id}: digest is not 32 bytes")))?;
        // From here on the digest is known: the layer answers 503 only to
        // a caller who proves the secret.
        let corrupt = |what: String| StoreError::corrupt_record(digest, what);
        let owner = shared
            .owner(&self.owner)
            .ok_or_else(|| corrupt(format!("token {id}: invalid owner")))?;
        let scopes = shared
            .scopes(&self.scopes)
            .map_err(|e| corrupt(format!("token {id}: {e}")))?;
        let mut record = TokenRecord::new(
            id,
            digest,
            owner,
            &self.name,
            scopes,
            from_micros(self.created_at),
        );
        record.preview = self.preview.into();
        record.expires_at = self.expires_at.map(from_micros);
        record.revoked_at = self.revoked_at.map(from_micros);
        record.revoked_reason = match &self.revoked_reason {
            None => None,
            Some(name) => Some(
                RevocationReason::from_parts(name, self.revoked_url.as_deref())
                    .ok_or_else(|| corrupt(format!("token {id}: unknown revocation reason")))?,
            ),
        };
        record.last_used_at = self.last_used_at.map(from_micros);
        record.owner_suspended = self.owner_suspended;
        record.rotated_from = self.rotated_from.map(db_to_id);
        // A limit that does not read back fails closed (503 to the holder
        // of the secret), never as "no limit".
        record.rate_limit = match &self.rate_limit {
            None => None,
            Some(t) => Some(
                t.parse()
                    .map_err(|e| corrupt(format!("token {id}: rate limit: {e}")))?,
            ),
        };
        record.allowed_ips = match &self.allowed_ips {
            None => None,
            Some(t) => Some(
                t.parse()
                    .map_err(|e| corrupt(format!("token {id}: allowlist: {e}")))?,
            ),
        };
        // A hint: an unreadable address is dropped, not an error.
        record.last_used_from = self.last_used_ip.as_deref().and_then(|t| t.parse().ok());
        Ok(record)
    }
}

/// Most distinct values [`Shared`] keeps of each kind: past it, values are
/// still read, only no longer shared.
const SHARED_MAX: usize = 65_536;

/// Values that many rows repeat, kept once: a scope set is three or four
/// allocations, and a store of a million tokens has a few dozen distinct
/// sets and far fewer owners than tokens, so a cache of records read from
/// the database holds each once instead of once per token.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    scopes: Interned<ScopeSet>,
    owners: Interned<OwnerId>,
}

impl Shared {
    fn scopes(&self, text: &str) -> Result<ScopeSet, ScopeError> {
        self.scopes
            .get_or(text, |t| ScopeSet::parse(t.split_ascii_whitespace()))
    }

    fn owner(&self, text: &str) -> Option<OwnerId> {
        self.owners.get_or(text, OwnerId::new).ok()
    }
}

/// Values read from text, kept by that text (up to [`SHARED_MAX`]).
#[derive(Debug)]
struct Interned<T>(Mutex<HashMap<Box<str>, T>>);

impl<T> Default for Interned<T> {
    fn default() -> Self {
        Self(Mutex::default())
    }
}

impl<T: Clone> Interned<T> {
    /// The value kept for `text`, or `read(text)`, kept if it succeeds.
    fn get_or<E>(&self, text: &str, read: impl FnOnce(&str) -> Result<T, E>) -> Result<T, E> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(v) = map.get(text) {
            return Ok(v.clone());
        }
        let v = read(text)?;
        if map.len() < SHARED_MAX {
            map.insert(text.into(), v.clone());
        }
        Ok(v)
    }
}

/// Token ids are stored as signed 64-bit integers (the bits of the u64).
pub(crate) fn id_to_db(id: TokenId) -> i64 {
    i64::from_be_bytes(*id.as_bytes())
}

pub(crate) fn db_to_id(v: i64) -> TokenId {
    TokenId::from_bytes(v.to_be_bytes())
}

pub(crate) fn to_micros(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

pub(crate) fn from_micros(v: i64) -> SystemTime {
    let d = Duration::from_micros(v.unsigned_abs());
    if v >= 0 {
        UNIX_EPOCH + d
    } else {
        UNIX_EPOCH - d
    }
}

pub(crate) fn scopes_to_db(s: &ScopeSet) -> String {
    s.to_space_separated()
}

pub(crate) fn db_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::with_source(StoreErrorKind::Conflict, e)
        }
        // A write the schema's triggers refuse (a revoked id inserted again).
        sqlx::Error::Database(d) if d.message().contains("tower_pat: ") => {
            StoreError::with_source(StoreErrorKind::Conflict, e)
        }
        _ => StoreError::with_source(StoreErrorKind::Unavailable, e),
    }
}

/// Collects successful uses in memory and hands them out in batches: no
/// database write on the request path. The layer already sends a use at
/// most about once a minute per token (when the record it found says the
/// last use is older than that); uses of one token between two flushes
/// collapse into the latest.
#[derive(Debug, Default)]
pub(crate) struct UseTracker {
    pending: Mutex<HashMap<TokenId, (SystemTime, Option<IpAddr>)>>,
}

impl UseTracker {
    pub(crate) fn note(&self, id: TokenId, at: SystemTime, from: Option<IpAddr>) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = pending.entry(id).or_insert((at, from));
        if at >= slot.0 {
            *slot = (at, from);
        }
    }

    pub(crate) fn take(&self) -> Vec<(TokenId, (SystemTime, Option<IpAddr>))> {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        p.drain().collect()
    }
}

/// Something that can write pending last-use times.
pub(crate) trait Flush: Send + Sync + 'static {
    fn flush(&self) -> impl std::future::Future<Output = ()> + Send;
}

/// Spawns the background task flushing last-use times every `every`. It
/// stops when aborted, or when the store is dropped.
pub(crate) fn spawn_flusher<T: Flush>(store: Weak<T>, every: Duration) -> Background {
    Background::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(s) = store.upgrade() else { break };
            s.flush().await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_times_round_trip() {
        for v in [0u64, 1, u64::MAX, 1 << 63] {
            let id = TokenId::from_bytes(u64::to_be_bytes(v));
            assert_eq!(db_to_id(id_to_db(id)), id);
        }
        let t = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(from_micros(to_micros(t)), t);
        let before = UNIX_EPOCH - Duration::from_secs(5);
        assert_eq!(from_micros(to_micros(before)), before);
    }

    #[test]
    fn uses_between_two_flushes_collapse_into_the_latest() {
        let t = UseTracker::default();
        let (a, b) = (
            TokenId::from_bytes(u64::to_be_bytes(7)),
            TokenId::from_bytes(u64::to_be_bytes(8)),
        );
        let now = SystemTime::now();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        t.note(a, now + Duration::from_secs(10), ip("203.0.113.1"));
        t.note(a, now, ip("203.0.113.2"));
        t.note(b, now, None);
        let mut batch = t.take();
        batch.sort();
        assert_eq!(
            batch,
            vec![
                (a, (now + Duration::from_secs(10), ip("203.0.113.1"))),
                (b, (now, None))
            ]
        );
        assert!(t.take().is_empty());
        t.note(a, now + Duration::from_secs(61), None);
        assert_eq!(t.take(), vec![(a, (now + Duration::from_secs(61), None))]);
    }

    #[test]
    fn corrupt_rows_are_errors_not_panics() {
        let raw = |digest: Vec<u8>, scopes: &str| RawRecord {
            id: 1,
            digest,
            owner: "o".into(),
            name: "n".into(),
            scopes: scopes.into(),
            preview: String::new(),
            created_at: 0,
            expires_at: None,
            revoked_at: None,
            revoked_reason: None,
            revoked_url: None,
            last_used_at: None,
            owner_suspended: false,
            rotated_from: None,
            rate_limit: None,
            allowed_ips: None,
            last_used_ip: None,
        };
        use tower_pat::store::StoreErrorKind::Corrupt;
        assert_eq!(
            raw(vec![0; 31], "a:b")
                .into_record(&Shared::default())
                .unwrap_err()
                .kind(),
            Corrupt
        );
        assert_eq!(
            raw(vec![0; 32], "NOT A SCOPE")
                .into_record(&Shared::default())
                .unwrap_err()
                .kind(),
            Corrupt
        );
        assert!(raw(vec![0; 32], "a:b c:d")
            .into_record(&Shared::default())
            .is_ok());
    }
}

/// The SELECT every lookup and listing starts with: the columns in the
/// order of [`RawRecord`], the owner's suspension and the revocation joined
/// in (revocations live in their own insert-only table).
macro_rules! select_records {
    () => {
        "SELECT t.id, t.digest, t.owner, t.name, t.scopes, t.preview, t.created_at, \
         t.expires_at, r.revoked_at, r.reason AS revoked_reason, r.url AS revoked_url, t.last_used_at, \
         COALESCE(o.suspended, FALSE) AS owner_suspended, t.rotated_from, \
         t.rate_limit, t.allowed_ips, t.last_used_ip \
         FROM tower_pat_tokens t \
         LEFT JOIN tower_pat_owners o ON o.owner = t.owner \
         LEFT JOIN tower_pat_revocations r ON r.id = t.id"
    };
}

/// The statements of one SQL dialect, written out as constants: the two
/// dialects differ only in how parameters are numbered (`$1` in
/// PostgreSQL, `?1` in SQLite, where `$1` would be a *named* parameter
/// numbered by first appearance).
#[derive(Debug)]
pub(crate) struct Dialect {
    pub(crate) find: &'static str,
    pub(crate) list_all: &'static str,
    pub(crate) list_owner: &'static str,
    pub(crate) insert: &'static str,
    /// Serialises the inserts of one (owner, name) until the transaction
    /// ends, where a check and an insert are not atomic by themselves
    /// (PostgreSQL); empty where the insert's transaction takes the write
    /// lock from its start (SQLite, see `begin_insert`).
    pub(crate) lock_name: &'static str,
    /// How an insert's transaction begins: SQLite's `BEGIN IMMEDIATE`
    /// takes the one write lock before the name check reads (a deferred
    /// transaction would read, then fail to write after another writer);
    /// empty for the default `BEGIN`.
    pub(crate) begin_insert: &'static str,
    /// How many tokens of an owner hold a name at a time, but the token a
    /// rotation replaces and the ones that one replaced in turn.
    pub(crate) name_holders: &'static str,
    /// Revokes an existing token; affects no row when it was revoked
    /// already or does not exist.
    pub(crate) revoke: &'static str,
    pub(crate) exists: &'static str,
    /// Shortens the expiry, never extends it.
    pub(crate) cap_expiry: &'static str,
    pub(crate) set_suspended: &'static str,
    pub(crate) is_suspended: &'static str,
    pub(crate) touch: &'static str,
    /// Forgets the client addresses of uses older than a cutoff.
    pub(crate) forget_addresses: &'static str,
    /// Sets a token's limits.
    pub(crate) set_limits: &'static str,
    /// A token's allowlist, locked until the transaction ends (SQLite's
    /// `BEGIN IMMEDIATE` holds the one write lock already).
    pub(crate) current_ips: &'static str,
}

/// Writes one [`Dialect`] from a parameter marker (`"$"` or `"?"`).
macro_rules! dialect {
    ($p:literal, $lock_name:literal, $begin_insert:literal, $for_update:literal) => {
        Dialect {
            find: concat!(select_records!(), " WHERE t.id = ", $p, "1"),
            list_all: concat!(select_records!(), " ORDER BY t.created_at DESC, t.id"),
            list_owner: concat!(
                select_records!(),
                " WHERE t.owner = ",
                $p,
                "1 ORDER BY t.created_at DESC, t.id"
            ),
            lock_name: $lock_name,
            begin_insert: $begin_insert,
            name_holders: concat!(
                "WITH RECURSIVE replaced(id) AS (SELECT ",
                $p,
                "4 UNION SELECT t.rotated_from FROM tower_pat_tokens t \
                 JOIN replaced ON t.id = replaced.id WHERE t.rotated_from IS NOT NULL) \
                 SELECT COUNT(*) FROM tower_pat_tokens t \
                 LEFT JOIN tower_pat_revocations r ON r.id = t.id \
                 WHERE t.owner = ",
                $p,
                "1 AND t.name = ",
                $p,
                "2 AND r.id IS NULL AND (t.expires_at IS NULL OR t.expires_at > ",
                $p,
                "3) AND t.id NOT IN (SELECT id FROM replaced)"
            ),
            insert: concat!(
                "INSERT INTO tower_pat_tokens (id, digest, owner, name, scopes, preview, \
                 created_at, expires_at, last_used_at, rotated_from, rate_limit, allowed_ips, \
                 last_used_ip) VALUES (",
                $p,
                "1, ",
                $p,
                "2, ",
                $p,
                "3, ",
                $p,
                "4, ",
                $p,
                "5, ",
                $p,
                "6, ",
                $p,
                "7, ",
                $p,
                "8, ",
                $p,
                "9, ",
                $p,
                "10, ",
                $p,
                "11, ",
                $p,
                "12, ",
                $p,
                "13)"
            ),
            revoke: concat!(
                "INSERT INTO tower_pat_revocations (id, revoked_at, reason, url) SELECT id, ",
                $p,
                "2, ",
                $p,
                "3, ",
                $p,
                "4 FROM tower_pat_tokens WHERE id = ",
                $p,
                "1 ON CONFLICT (id) DO NOTHING"
            ),
            exists: concat!("SELECT COUNT(*) FROM tower_pat_tokens WHERE id = ", $p, "1"),
            cap_expiry: concat!(
                "UPDATE tower_pat_tokens SET expires_at = CASE WHEN expires_at IS NULL \
                 OR expires_at > ",
                $p,
                "2 THEN ",
                $p,
                "2 ELSE expires_at END WHERE id = ",
                $p,
                "1"
            ),
            set_suspended: concat!(
                "INSERT INTO tower_pat_owners (owner, suspended) VALUES (",
                $p,
                "1, ",
                $p,
                "2) ON CONFLICT (owner) DO UPDATE SET suspended = excluded.suspended"
            ),
            is_suspended: concat!(
                "SELECT COUNT(*) FROM tower_pat_owners WHERE owner = ",
                $p,
                "1 AND suspended"
            ),
            touch: concat!(
                "UPDATE tower_pat_tokens SET last_used_at = ",
                $p,
                "2, last_used_ip = ",
                $p,
                "3 WHERE id = ",
                $p,
                "1 AND (last_used_at IS NULL OR last_used_at < ",
                $p,
                "2)"
            ),
            forget_addresses: concat!(
                "UPDATE tower_pat_tokens SET last_used_ip = NULL \
                 WHERE last_used_ip IS NOT NULL AND last_used_at < ",
                $p,
                "1"
            ),
            current_ips: concat!(
                "SELECT allowed_ips FROM tower_pat_tokens WHERE id = ",
                $p,
                "1",
                $for_update
            ),
            set_limits: concat!(
                "UPDATE tower_pat_tokens SET rate_limit = ",
                $p,
                "2, allowed_ips = ",
                $p,
                "3 WHERE id = ",
                $p,
                "1"
            ),
        }
    };
}

/// PostgreSQL's statements.
#[cfg(feature = "postgres")]
pub(crate) const POSTGRES: Dialect = dialect!(
    "$",
    "SELECT pg_advisory_xact_lock(hashtext('tower_pat_name:' || current_schema() || ':' || $1))",
    "",
    " FOR UPDATE"
);
/// SQLite's statements.
#[cfg(feature = "sqlite")]
pub(crate) const SQLITE: Dialect = dialect!("?", "", "BEGIN IMMEDIATE", "");
