//! [`SqliteStore`]: tokens in a SQLite file (feature `sqlite`).

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use async_trait::async_trait;

use tower_pat::limit::{IpAllowlist, RateLimit};
use tower_pat::store::feed::Message;
use tower_pat::store::{
    Background, Change, Invalidate, Lookup, OwnerId, RevocationReason, StoreError, TokenAdmin,
    TokenRecord, TokenStore,
};
use tower_pat::token::TokenId;

use crate::engine::{Backend, Engine};
use crate::sql::{db_error, spawn_flusher, to_micros, Dialect, Flush, SQLITE};

/// How often pending last-use times are written.
/// How long change-feed rows are kept for other processes to read.
const KEEP_CHANGES: Duration = Duration::from_secs(24 * 3600);

/// A token store in a SQLite database (sqlx, bundled SQLite).
///
/// Opening applies the embedded migrations (a no-op when already applied).
/// Files use WAL journaling and a busy timeout, so a second process — a CLI
/// minting or revoking tokens — can write while a server reads. Revocations,
/// suspensions and expiry changes are also appended to a change table that
/// [`SqliteStore::watch_changes`] polls to keep other processes' caches
/// honest.
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
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use tower_pat::admin::{NewToken, TokenManager};
/// use tower_pat::{AuthLayer, ScopeCatalog};
/// use tower_pat_sqlx_store::SqliteStore;
///
/// let store = SqliteStore::in_memory().await.unwrap();
/// let tokens = TokenManager::new(store.clone(), your_token_config());
/// tokens.create(NewToken::new("bot", "demo-store", ["orders:read"])).await.unwrap();
/// let layer = AuthLayer::new(store, your_token_config());
/// # let _ = layer;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStore {
    engine: Arc<Engine<Sqlite>>,
}

/// SQLite's side of the engine: `?1` parameters, and a change table that
/// other processes poll.
#[derive(Debug)]
struct Sqlite;

impl Backend for Sqlite {
    type Db = sqlx::Sqlite;
    const SQL: Dialect = SQLITE;

    fn rows_affected(result: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    /// Appends the change to the change table that
    /// [`SqliteStore::watch_changes`] polls in every process.
    async fn announce(&self, pool: &SqlitePool, change: Change) {
        let (kind, key) = match &change {
            Change::Token(id) => ("token", id.to_string()),
            Change::Owner(o) => ("owner", o.to_string()),
            _ => return,
        };
        let now = to_micros(SystemTime::now());
        let keep = i64::try_from(KEEP_CHANGES.as_micros()).unwrap_or(i64::MAX);
        let result = async {
            sqlx::query("INSERT INTO tower_pat_changes (kind, key, at) VALUES (?1, ?2, ?3)")
                .bind(kind)
                .bind(key)
                .bind(now)
                .execute(pool)
                .await?;
            sqlx::query("DELETE FROM tower_pat_changes WHERE at < ?1")
                .bind(now.saturating_sub(keep))
                .execute(pool)
                .await
        }
        .await;
        if let Err(_e) = result {
            crate::log::store_warning(
                "recording a change for other processes failed",
                &db_error(_e),
            );
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(db_error)?;
        Self::from_pool(pool).await
    }

    /// A private in-memory database (one connection, kept open).
    pub async fn in_memory() -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new().in_memory(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(db_error)?;
        Self::from_pool(pool).await
    }

    /// Uses an existing pool, applying the migrations.
    pub async fn from_pool(pool: SqlitePool) -> Result<Self, StoreError> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| StoreError::unavailable(format!("migrating the token store: {e}")))?;
        let engine = Arc::new(Engine::new(pool, Sqlite));
        Ok(Self { engine })
    }

    /// The connection pool (for raw queries, tests, backups).
    pub fn pool(&self) -> &SqlitePool {
        &self.engine.pool
    }

    /// Writes the last-use times the layer notes (see
    /// [`TokenStore::record_use`]) every `period`, in the background, until
    /// the returned handle is dropped or shut down;
    /// [`Background::shutdown`] writes the times still pending. Without it,
    /// they are written only by [`SqliteStore::flush_last_used`]. Call it once,
    /// with a Tokio runtime; 10 s is a good period.
    pub fn write_last_used_every(&self, period: Duration) -> Background {
        let engine = self.engine.clone();
        spawn_flusher(Arc::downgrade(&self.engine), period)
            .finish_with(move || async move { engine.flush_uses().await })
    }

    /// Writes pending last-use times now (see
    /// [`SqliteStore::write_last_used_every`] for writing them in the background).
    pub async fn flush_last_used(&self) -> Result<(), StoreError> {
        self.engine.flush_uses().await
    }

    /// Polls the change table every `every` and passes each change made by
    /// any process (revocation, suspension, expiry, creation) to `target` —
    /// typically a `CachedStore`'s invalidator. Changes made after this call
    /// returns are seen. Polls until the returned handle is dropped or shut
    /// down (or the store is).
    pub async fn watch_changes(
        &self,
        target: impl Invalidate,
        every: Duration,
    ) -> Result<Background, StoreError> {
        let start: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM tower_pat_changes")
            .fetch_one(&self.engine.pool)
            .await
            .map_err(db_error)?;
        let weak = Arc::downgrade(&self.engine);
        let task = Background::spawn(async move {
            let mut last = start.unwrap_or(0);
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(engine) = weak.upgrade() else { break };
                let rows: Result<Vec<(i64, String, String)>, _> = sqlx::query_as(
                    "SELECT seq, kind, key FROM tower_pat_changes WHERE seq > ?1 ORDER BY seq",
                )
                .bind(last)
                .fetch_all(&engine.pool)
                .await;
                // On error the rows stay in the table and are read next time.
                let Ok(rows) = rows else { continue };
                for (seq, kind, key) in rows {
                    // A row this crate did not write: everything may have
                    // changed.
                    let change = match Message::parse(&format!("{kind}:{key}")) {
                        Some(Message::Change(change)) => change,
                        _ => Change::All,
                    };
                    target.invalidate(&change);
                    last = seq;
                }
            }
        });
        Ok(task)
    }
}

impl TokenStore for SqliteStore {
    fn find(&self, id: TokenId) -> Lookup {
        self.engine.find(id)
    }

    /// Kept in memory, and written by [`SqliteStore::write_last_used_every`]
    /// or [`SqliteStore::flush_last_used`].
    fn record_use(&self, id: TokenId, at: SystemTime, from: Option<IpAddr>) {
        self.engine.note_use(id, at, from);
    }
}

#[async_trait]
impl TokenAdmin for SqliteStore {
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

impl Flush for Engine<Sqlite> {
    async fn flush(&self) {
        self.flush_or_warn().await;
    }
}
