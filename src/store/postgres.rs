//! [`PostgresStore`]: tokens in PostgreSQL, shared by many instances
//! (feature `postgres`).

use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures_util::TryStreamExt;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};

use std::time::SystemTime;

use async_trait::async_trait;

use super::engine::{Backend, Engine};
use super::feed;
use super::invalidation::change_payload;
use super::known_ids::KnownIds;
use super::sql::{db_error, db_to_id, spawn_flusher, Dialect, Flush, POSTGRES};
use super::{Change, Invalidate, Lookup, OwnerId, StoreError, TokenAdmin, TokenRecord, TokenStore};
use crate::{RevocationReason, TokenId};

const FLUSH_EVERY: Duration = Duration::from_secs(10);

/// A token store in PostgreSQL (sqlx pool).
///
/// Every instance of a service points at the same database. Opening applies
/// the embedded migrations (idempotent, and serialised between instances by
/// sqlx's advisory lock). A lookup is one round trip: the owner's suspension
/// is joined in. Revocations, suspensions and expiry changes are announced
/// with `NOTIFY`; [`PostgresStore::listen`] hands them to a cache so every
/// instance drops stale entries within milliseconds.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    engine: Arc<Engine<Postgres>>,
}

/// PostgreSQL's side of the engine: `$1` parameters, `NOTIFY` on the
/// schema's channel, and the listener tasks to stop with the store.
#[derive(Debug)]
struct Postgres {
    channel: String,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    /// The ids this store holds, while [`PostgresStore::listen`] keeps
    /// them current.
    known: KnownIds,
}

impl Backend for Postgres {
    type Db = sqlx::Postgres;
    const SQL: Dialect = POSTGRES;

    fn rows_affected(result: &sqlx::postgres::PgQueryResult) -> u64 {
        result.rows_affected()
    }

    /// `NOTIFY` on the schema's channel, which [`PostgresStore::listen`]
    /// hears in every instance.
    async fn announce(&self, pool: &PgPool, change: Change) {
        if let Change::Token(id) = &change {
            // Known here at once; other instances learn it from the
            // notification, which also comes back to this instance's
            // listener, where a full filter asks for a rescan.
            self.known.add(*id);
        }
        let payload = change_payload(&change);
        let sent = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.channel)
            .bind(payload)
            .execute(pool)
            .await;
        if let Err(_e) = sent {
            crate::trace::store_warning(
                "NOTIFY failed; other caches catch up by TTL",
                &db_error(_e),
            );
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            t.abort();
        }
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host/db`) and uses the `public`
    /// schema.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_in_schema(url, "public").await
    }

    /// Connects and keeps the tables in `schema` (created if missing): one
    /// database can hold several independent token stores, and tests get
    /// their own. `schema` is 1 to 48 characters of `a-z`, `0-9` and `_`,
    /// starting with a letter.
    pub async fn connect_in_schema(url: &str, schema: &str) -> Result<Self, StoreError> {
        let valid = (1..=48).contains(&schema.len())
            && schema.starts_with(|c: char| c.is_ascii_lowercase())
            && schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(StoreError::unavailable(format!(
                "invalid schema name {schema:?}"
            )));
        }
        let options = PgConnectOptions::from_str(url).map_err(db_error)?;
        let bootstrap = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
            .await
            .map_err(db_error)?;
        // `schema` was checked above: letters, digits and `_` only.
        let create = format!("CREATE SCHEMA IF NOT EXISTS {schema}");
        sqlx::query(sqlx::AssertSqlSafe(create))
            .execute(&bootstrap)
            .await
            .map_err(db_error)?;
        bootstrap.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.options([("search_path", schema)]))
            .await
            .map_err(db_error)?;
        Self::from_pool(pool, schema).await
    }

    /// Uses an existing pool (whose `search_path` selects the schema named
    /// `schema`, used for the notification channel), applying migrations.
    pub async fn from_pool(pool: PgPool, schema: &str) -> Result<Self, StoreError> {
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::unavailable(format!("migrating the token store: {e}")))?;
        let backend = Postgres {
            channel: format!("tower_pat:{schema}"),
            tasks: Mutex::new(Vec::new()),
            known: KnownIds::default(),
        };
        let engine = Arc::new(Engine::new(pool, backend));
        spawn_flusher(Arc::downgrade(&engine), FLUSH_EVERY);
        Ok(Self { engine })
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.engine.pool
    }

    /// Writes pending last-use times now (they are otherwise written in the
    /// background every 10 s).
    pub async fn flush_last_used(&self) -> Result<(), StoreError> {
        self.engine.flush_uses().await
    }

    /// Listens for changes announced by any instance and passes them to
    /// `target` (a `CachedStore`'s invalidator). Returns once `LISTEN` is in
    /// place.
    ///
    /// A notification connection can die without a word (a NAT or firewall
    /// forgetting an idle flow, a proxy restarted): nothing arrives, and
    /// nothing says so. So every `heartbeat` this instance sends itself a
    /// notification on a private channel through the pool, and expects it
    /// back on the listening connection within another `heartbeat`. When it
    /// does not come back (or the connection reports an error), the channel
    /// is declared dead and a warning is logged; a new connection is opened
    /// and `LISTEN`s again (retrying with backoff up to 5 s); only **then**
    /// is `target` told that everything may have changed ([`Change::All`]),
    /// because notifications sent while the channel was dead are lost.
    ///
    /// Staleness bound: a change made on another instance reaches this
    /// cache within about `2 × heartbeat` plus the time to reconnect, or
    /// within the cache TTL, whichever comes first. 5 s is a reasonable
    /// heartbeat: one tiny `NOTIFY` per instance every 5 s.
    ///
    /// **Made-up ids never reach the database.** While it listens, this
    /// store keeps a filter of the ids the table holds (a Bloom filter,
    /// seeded at random per instance, sized for twice the ids it is built
    /// from: 3.4 MiB per million ids, at most 0.1 % false positives once
    /// full): a well-formed token whose id is not in it is answered
    /// "unknown" without a query, so a flood of forged tokens costs the
    /// database at most about one query in a thousand. The
    /// filter is built by one scan of the ids before `listen` returns, and
    /// kept current by the same notifications: a token created through any
    /// `PostgresStore` on the database is announced, and its id is added
    /// before any cache hears of the change, so it is never refused once
    /// the announcement has arrived (on the instance that created it, at
    /// once). When the channel is declared dead there is no filter, and
    /// every lookup asks the database, until the channel is back and a new
    /// scan has finished. Rows written by other means (a `COPY`, an
    /// `INSERT` by hand) are not announced: follow them with
    /// `SELECT pg_notify('tower_pat:<schema>', 'all')`, which makes every
    /// listening instance flush its cache and scan again.
    pub async fn listen(
        &self,
        target: impl Invalidate,
        heartbeat: Duration,
    ) -> Result<(), StoreError> {
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(StoreError::unavailable)?;
        let source = PgFeed {
            changes: self.engine.backend.channel.clone(),
            // Private to this listener: other instances never see its
            // heartbeats.
            own: format!("tower_pat_hb:{:016x}", u64::from_be_bytes(nonce)),
            pool: self.engine.pool.clone(),
        };
        let (filtered, lost) = self.keep_ids_current(target);
        let task = feed::spawn_listener(source, filtered, heartbeat, lost).await?;
        self.engine
            .backend
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(task);
        // Listening already: ids created during the scan go into the new
        // filter too.
        scan_ids(&self.engine).await
    }

    /// [`PostgresStore::listen`], with the changes heard over Redis pub/sub
    /// instead of `LISTEN` (feature `redis`): for deployments where
    /// `LISTEN` does not work, such as behind PgBouncer in transaction
    /// mode. `channel.listen(target, heartbeat)` would keep the cache
    /// current; this also keeps this store's filter of known ids current,
    /// with the same rules as `listen` (scan before returning, ids added
    /// before the cache hears of them, no filter while the channel is
    /// down). Every process that creates tokens must then announce on the
    /// channel, writing through
    /// [`RedisChannel::announcing`](super::RedisChannel::announcing): a
    /// token created unannounced is refused by the other instances until
    /// they scan again (`PUBLISH <channel> all` makes every instance
    /// rescan).
    #[cfg(feature = "redis")]
    pub async fn listen_on(
        &self,
        channel: &super::RedisChannel,
        target: impl Invalidate,
        heartbeat: Duration,
    ) -> Result<(), StoreError> {
        let (filtered, lost) = self.keep_ids_current(target);
        channel.listen_with(filtered, heartbeat, lost).await?;
        scan_ids(&self.engine).await
    }

    /// A listener's target that keeps the filter of known ids current
    /// before passing changes to `target`, and what to call when the
    /// channel is lost.
    fn keep_ids_current<T: Invalidate>(
        &self,
        target: T,
    ) -> (KeepIdsCurrent<T>, impl Fn() + Send + 'static) {
        let engine = Arc::downgrade(&self.engine);
        let lost = move || {
            if let Some(e) = engine.upgrade() {
                e.backend.known.lost();
            }
        };
        let filtered = KeepIdsCurrent {
            engine: Arc::downgrade(&self.engine),
            target,
        };
        (filtered, lost)
    }

    /// (ids in the filter of known ids, bytes it takes), while there is
    /// one: for this crate's scale bench, not part of the API.
    #[doc(hidden)]
    pub fn known_ids_stats(&self) -> Option<(usize, usize)> {
        self.engine.backend.known.stats()
    }
}

/// Fills a new filter of known ids from one scan of the table and makes it
/// the one lookups consult (unless the channel was lost meanwhile).
async fn scan_ids(engine: &Engine<Postgres>) -> Result<(), StoreError> {
    let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM tower_pat_tokens")
        .fetch_one(&engine.pool)
        .await
        .map_err(db_error)?;
    let known = &engine.backend.known;
    let (generation, filter) = known.begin(usize::try_from(rows).unwrap_or(0));
    let mut ids =
        sqlx::query_as::<_, (i64,)>("SELECT id FROM tower_pat_tokens").fetch(&engine.pool);
    while let Some((id,)) = ids.try_next().await.map_err(db_error)? {
        filter.add(db_to_id(id));
    }
    known.publish(generation);
    Ok(())
}

/// Scans in the background until a scan succeeds or the store is gone.
fn rescan_in_background(engine: Weak<Engine<Postgres>>) {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(200);
        while let Some(e) = engine.upgrade() {
            match scan_ids(&e).await {
                Ok(()) => return,
                Err(_e) => {
                    crate::trace::store_warning(
                        "scanning token ids failed; every lookup asks the database until it works",
                        &_e,
                    );
                }
            }
            drop(e);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    });
}

/// The listener's target: adds announced ids to the filter of known ids
/// before passing the change on, and rescans when everything may have
/// changed.
struct KeepIdsCurrent<T> {
    engine: Weak<Engine<Postgres>>,
    target: T,
}

impl<T: Invalidate> Invalidate for KeepIdsCurrent<T> {
    fn invalidate(&self, change: &Change) {
        if let Some(engine) = self.engine.upgrade() {
            let known = &engine.backend.known;
            match change {
                Change::Token(id) => {
                    // Before the cache hears of it: a lookup that follows
                    // the cache's invalidation finds the id in the filter.
                    if known.add(*id) && known.claim_rescan() {
                        rescan_in_background(self.engine.clone());
                    }
                }
                Change::Owner(_) => {}
                _ => {
                    known.lost();
                    rescan_in_background(self.engine.clone());
                }
            }
        }
        self.target.invalidate(change);
    }
}

/// `LISTEN` on the changes channel and this listener's heartbeat channel;
/// heartbeats are sent with `NOTIFY` through the pool.
struct PgFeed {
    changes: String,
    own: String,
    pool: PgPool,
}

impl feed::Source for PgFeed {
    type Sub = PgListener;

    /// A new connection of its own (not one from the pool, which may have
    /// sat idle on the same dead path) listening on both channels.
    async fn subscribe(&self) -> Result<PgListener, StoreError> {
        let own = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with((*self.pool.connect_options()).clone())
            .await
            .map_err(db_error)?;
        let mut listener = PgListener::connect_with(&own).await.map_err(db_error)?;
        listener
            .listen_all([self.changes.as_str(), self.own.as_str()])
            .await
            .map_err(db_error)?;
        Ok(listener)
    }

    async fn beat(&self, payload: &str) -> Result<(), String> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.own)
            .bind(payload)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn own(&self) -> &str {
        &self.own
    }
}

impl feed::Subscription for PgListener {
    /// `try_recv` is cancel-safe.
    async fn next(&mut self) -> Result<(String, String), String> {
        match self.try_recv().await {
            Ok(Some(n)) => Ok((n.channel().to_owned(), n.payload().to_owned())),
            Ok(None) => Err("the notification connection closed".into()),
            Err(e) => Err(format!("the notification connection failed: {e}")),
        }
    }
}

impl TokenStore for PostgresStore {
    fn find(&self, id: TokenId) -> Lookup {
        if !self.engine.backend.known.may_hold(id) {
            return Lookup::ready(Ok(None));
        }
        self.engine.find(id)
    }

    /// Kept in memory and written in the background every 10 s (see
    /// [`PostgresStore::flush_last_used`]).
    fn record_use(&self, id: TokenId, at: SystemTime) {
        self.engine.note_use(id, at);
    }
}

#[async_trait]
impl TokenAdmin for PostgresStore {
    async fn insert(&self, record: TokenRecord) -> Result<(), StoreError> {
        self.engine.insert(record).await
    }

    async fn list(&self, owner: Option<&OwnerId>) -> Result<Vec<TokenRecord>, StoreError> {
        self.engine.list(owner).await
    }

    async fn revoke(
        &self,
        id: TokenId,
        at: SystemTime,
        reason: &RevocationReason,
    ) -> Result<bool, StoreError> {
        self.engine.revoke(id, at, reason).await
    }

    async fn cap_expiry(&self, id: TokenId, at: SystemTime) -> Result<(), StoreError> {
        self.engine.cap_expiry(id, at).await
    }

    async fn set_owner_suspended(
        &self,
        owner: &OwnerId,
        suspended: bool,
    ) -> Result<(), StoreError> {
        self.engine.set_owner_suspended(owner, suspended).await
    }

    async fn is_owner_suspended(&self, owner: &OwnerId) -> Result<bool, StoreError> {
        self.engine.is_owner_suspended(owner).await
    }
}

impl Flush for Engine<Postgres> {
    async fn flush(&self) {
        self.flush_or_warn().await;
    }
}
