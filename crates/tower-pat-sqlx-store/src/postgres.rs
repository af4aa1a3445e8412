//! [`PostgresStore`]: tokens in PostgreSQL, shared by many instances
//! (feature `postgres`).

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};

use std::time::SystemTime;

use async_trait::async_trait;

use tower_pat::limit::{IpAllowlist, RateLimit};
use tower_pat::store::feed::{ChangeFeed, Subscription};
use tower_pat::store::{
    Background, Change, Invalidate, Lookup, OwnerId, RevocationReason, StoreError, TokenAdmin,
    TokenRecord, TokenStore,
};
use tower_pat::token::TokenId;

use crate::engine::{Backend, Engine};
use crate::known_ids::KnownIds;
use crate::pg_changes::{self, Follower, Wakes};
use crate::sql::{db_error, spawn_flusher, Dialect, Flush, POSTGRES};

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

/// PostgreSQL's side of the engine: `$1` parameters, the schema's
/// notification channel, and the listener tasks to stop with the store.
#[derive(Debug)]
pub(crate) struct Postgres {
    channel: String,
    /// The ids this store holds, while [`PostgresStore::listen`] keeps
    /// them current.
    pub(crate) known: KnownIds,
    /// The change table's follower, once listening.
    follower: OnceLock<Arc<Follower>>,
}

impl Backend for Postgres {
    type Db = sqlx::Postgres;
    const SQL: Dialect = POSTGRES;

    fn rows_affected(result: &sqlx::postgres::PgQueryResult) -> u64 {
        result.rows_affected()
    }

    /// Nothing to send: the triggers wrote the change, and its
    /// notification, in the transaction that committed. The id is known
    /// here at once (other instances read it from the change table).
    async fn announce(&self, _pool: &PgPool, change: Change) {
        if let Change::Token(id) = &change {
            self.known.add(*id);
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
        let mut migrator = sqlx::migrate!("./migrations/postgres");
        // Rolling upgrades: an instance of this release keeps working on a
        // database that a newer one has migrated further (the migrations
        // only add, and keep the revocation triggers).
        migrator.set_ignore_missing(true);
        migrator
            .run(&pool)
            .await
            .map_err(|e| StoreError::unavailable(format!("migrating the token store: {e}")))?;
        let backend = Postgres {
            channel: format!("tower_pat:{schema}"),
            known: KnownIds::default(),
            follower: OnceLock::new(),
        };
        let engine = Arc::new(Engine::new(pool, backend));
        Ok(Self { engine })
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.engine.pool
    }

    /// Writes the last-use times the layer notes (see
    /// [`TokenStore::record_use`]) every `period`, in the background, until
    /// the returned handle is dropped or shut down;
    /// [`Background::shutdown`] writes the times still pending. Without it,
    /// they are written only by [`PostgresStore::flush_last_used`]. Call it once,
    /// with a Tokio runtime; 10 s is a good period.
    pub fn write_last_used_every(&self, period: Duration) -> Background {
        let engine = self.engine.clone();
        spawn_flusher(Arc::downgrade(&self.engine), period)
            .finish_with(move || async move { engine.flush_uses().await })
    }

    /// Writes pending last-use times now (see
    /// [`PostgresStore::write_last_used_every`] for writing them in the background).
    pub async fn flush_last_used(&self) -> Result<(), StoreError> {
        self.engine.flush_uses().await
    }

    /// Listens for changes made through any instance, or by hand, and
    /// passes them to `target` (a `CachedStore`'s invalidator). Returns
    /// once the filter of known ids is built.
    ///
    /// **What is believed.** Changes are rows of the `tower_pat_changes`
    /// table, written by triggers on the token tables in the transaction
    /// that makes them (feed format 2): only a role that can write the
    /// tokens can write a change, none is lost after its commit, and a
    /// `COPY` or hand `INSERT` is recorded like the store's own writes. A
    /// notification on the schema's channel (`tower_pat:<schema>`, payload
    /// `v2`) carries nothing but "read the table": a notification from
    /// anyone else causes at most a read of an empty range, merged with
    /// others and spaced out (at most 100 reads a second), on a connection
    /// of the follower's own. See SECURITY.md.
    ///
    /// **Heartbeat.** A notification connection can die without a word (a
    /// NAT or firewall forgetting an idle flow, a proxy restarted). So
    /// every `heartbeat` this instance sends itself a notification on a
    /// private channel and expects it back within another `heartbeat`;
    /// when it does not come back (or the connection reports an error), a
    /// warning is logged and a new connection `LISTEN`s again (retrying
    /// with backoff up to 5 s), then the changes committed meanwhile are
    /// read from the table. A change made on another instance reaches this
    /// cache within milliseconds, or within about `2 × heartbeat` plus the
    /// time to reconnect when the connection died. 5 s is a reasonable
    /// heartbeat: one tiny `NOTIFY` per instance every 5 s.
    ///
    /// **Made-up ids never reach the token table.** While it listens, this
    /// store keeps a filter of the ids the table holds (a Bloom filter,
    /// seeded at random per instance, sized for twice the ids it is built
    /// from: 3.4 MiB per million ids, at most 0.1 % false positives once
    /// full), built by one scan before `listen` returns. A lookup of an id
    /// the filter does not hold waits for a read of the change table that
    /// starts after it (one read serves every such lookup in flight): a
    /// token whose creation committed before the lookup is then in the
    /// filter, so **a token works on every instance as soon as `create`
    /// returned**, and a flood of forged tokens costs those shared reads
    /// plus one token query in a thousand. A bulk load (a statement of
    /// more than 10,000 rows) is one change that makes every instance
    /// flush its cache and scan again; until that scan has finished,
    /// every lookup asks the table. Scans run on a connection of their
    /// own, one at a time, retried with backoff.
    ///
    /// Listens until the returned handle is dropped or shut down: keep it
    /// while serving. From then on, lookups ask the table again for every
    /// id (the filter is no longer kept current). Call it once per store
    /// handle (and its clones); a second call is an error, also after the
    /// first handle is gone.
    pub async fn listen(
        &self,
        target: impl Invalidate,
        heartbeat: Duration,
    ) -> Result<Background, StoreError> {
        let feed = PgFeed {
            changes: self.engine.backend.channel.clone(),
            pool: self.engine.pool.clone(),
        };
        self.listen_on(feed, target, heartbeat).await
    }

    /// [`PostgresStore::listen`], with the notifications heard on another
    /// [`ChangeFeed`] than `LISTEN`, such as `tower-pat-redis`'s
    /// `RedisChannel`: for deployments where `LISTEN` does not work, such
    /// as behind PgBouncer in transaction mode. The changes are still read
    /// from the change table (through the pool's connection options): a
    /// message on the feed, whoever sent it, only asks for a read. Writers
    /// should announce on the feed (with `RedisChannel::announcing`), so
    /// that other caches hear of revocations at once; without it they hear
    /// of them when the connection is renewed. Fresh tokens work
    /// everywhere either way.
    pub async fn listen_on(
        &self,
        feed: impl ChangeFeed,
        target: impl Invalidate,
        heartbeat: Duration,
    ) -> Result<Background, StoreError> {
        let (follower, tasks) = self.follow(target).await?;
        let following = self.following(tasks);
        let listener = feed.listen(Wakes(follower.clone()), heartbeat).await?;
        // What was committed while the feed was being set up.
        follower.wake();
        Ok(following.join(listener))
    }

    /// Marks the follower's tasks as stopping with them: then lookups no
    /// longer consult the filter of known ids (nothing keeps it current),
    /// and every lookup asks the table.
    fn following(&self, tasks: Background) -> Background {
        let engine = self.engine.clone();
        tasks.on_stop(move || {
            if let Some(follower) = engine.backend.follower.get() {
                follower.stop();
            }
            engine.backend.known.drop_filter();
        })
    }

    /// Starts following the change table into `target` (once per store).
    async fn follow(
        &self,
        target: impl Invalidate,
    ) -> Result<(Arc<Follower>, Background), StoreError> {
        let backend = &self.engine.backend;
        if backend.follower.get().is_some() {
            return Err(StoreError::unavailable(
                "this PostgresStore is already listening",
            ));
        }
        let options = (*self.engine.pool.connect_options()).clone();
        let (follower, tasks) = pg_changes::follow(&self.engine, options, target).await?;
        if backend.follower.set(follower.clone()).is_err() {
            drop(tasks);
            return Err(StoreError::unavailable(
                "this PostgresStore is already listening",
            ));
        }
        Ok((follower, tasks))
    }

    /// (ids in the filter of known ids, bytes it takes), while there is
    /// one: for this crate's scale bench, not part of the API.
    #[doc(hidden)]
    pub fn known_ids_stats(&self) -> Option<(usize, usize)> {
        self.engine.backend.known.stats()
    }

    /// (scans of the ids started, reads of the change table made) since
    /// `listen`: for this crate's tests and scale bench, not part of the
    /// API.
    #[doc(hidden)]
    pub fn follower_stats(&self) -> Option<(u64, u64)> {
        self.engine.backend.follower.get().map(|f| f.stats())
    }
}

/// `LISTEN` on the changes channel and the listener's heartbeat channel;
/// heartbeats are sent with `NOTIFY` through the pool.
struct PgFeed {
    changes: String,
    pool: PgPool,
}

impl ChangeFeed for PgFeed {
    type Subscription = Listening;
    const KIND: &'static str = "postgres";

    /// A new connection of its own (not one from the pool, which may have
    /// sat idle on the same dead path) listening on both channels.
    async fn subscribe(&self, heartbeats: &str) -> Result<Listening, StoreError> {
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
            .listen_all([self.changes.as_str(), heartbeats])
            .await
            .map_err(db_error)?;
        Ok(Listening(listener))
    }

    async fn beat(&self, heartbeats: &str, payload: &str) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(heartbeats)
            .bind(payload)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(db_error)
    }
}

/// A `LISTEN`ing connection.
struct Listening(PgListener);

impl Subscription for Listening {
    /// `try_recv` is cancel-safe.
    async fn next(&mut self) -> Result<(String, String), StoreError> {
        match self.0.try_recv().await {
            Ok(Some(n)) => Ok((n.channel().to_owned(), n.payload().to_owned())),
            Ok(None) => Err(StoreError::unavailable(
                "the notification connection closed",
            )),
            Err(e) => Err(StoreError::unavailable(format!(
                "the notification connection failed: {e}"
            ))),
        }
    }
}

impl TokenStore for PostgresStore {
    fn find(&self, id: TokenId) -> Lookup {
        let backend = &self.engine.backend;
        if backend.known.may_hold(id) {
            if !crate::meter::ON || backend.follower.get().is_none_or(|f| f.stopped()) {
                return self.engine.find(id);
            }
            // Let through by the filter: count the ids the table does not
            // hold (its false positives).
            let engine = self.engine.clone();
            return Lookup::pending(async move {
                let found = engine.find(id).await;
                if matches!(found, Ok(None)) {
                    crate::meter::filter_false_positive();
                }
                found
            });
        }
        let Some(follower) = backend.follower.get().filter(|f| !f.stopped()) else {
            return self.engine.find(id);
        };
        // Not in the filter: unknown, unless it was created since the
        // last read of the change table. One read that starts now tells.
        let caught_up = follower.caught_up();
        let engine = self.engine.clone();
        Lookup::pending(async move {
            if caught_up.await && !engine.backend.known.may_hold(id) {
                crate::meter::filter_refused(false);
                return Ok(None);
            }
            // Created meanwhile, or the read failed: ask the table.
            crate::meter::filter_refused(true);
            engine.find(id).await
        })
    }

    /// Kept in memory, and written by [`PostgresStore::write_last_used_every`]
    /// or [`PostgresStore::flush_last_used`].
    fn record_use(&self, id: TokenId, at: SystemTime, from: Option<IpAddr>) {
        self.engine.note_use(id, at, from);
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

    async fn set_limits(
        &self,
        id: TokenId,
        rate_limit: Option<RateLimit>,
        allowed_ips: Option<IpAllowlist>,
    ) -> Result<(), StoreError> {
        self.engine
            .set_limits(id, rate_limit, allowed_ips.as_ref())
            .await
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
