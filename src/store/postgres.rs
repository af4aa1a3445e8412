//! [`PostgresStore`]: tokens in PostgreSQL, shared by many instances
//! (feature `postgres`).

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};

use super::sql::{db_error, spawn_flusher, Queries, UseTracker};
use super::{Change, Invalidate, StoreError};

const FLUSH_EVERY: Duration = Duration::from_secs(10);
/// Longest wait between two reconnection attempts of the listener.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

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
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    pool: PgPool,
    queries: Queries,
    uses: UseTracker,
    channel: String,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Drop for Shared {
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
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
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
        let shared = Arc::new(Shared {
            pool,
            queries: Queries::new('$'),
            uses: UseTracker::default(),
            channel: format!("tower_pat:{schema}"),
            tasks: Mutex::new(Vec::new()),
        });
        spawn_flusher(Arc::downgrade(&shared), FLUSH_EVERY);
        Ok(Self { shared })
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.shared.pool
    }

    fn sql(q: &'static str) -> Cow<'static, str> {
        Cow::Borrowed(q)
    }

    async fn announce(&self, change: Change) {
        let payload = match &change {
            Change::Token(id) => format!("token:{id}"),
            Change::Owner(o) => format!("owner:{o}"),
            _ => return,
        };
        let sent = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.shared.channel)
            .bind(payload)
            .execute(&self.shared.pool)
            .await;
        if let Err(_e) = sent {
            crate::trace::store_warning(
                "NOTIFY failed; other caches catch up by TTL",
                &db_error(_e),
            );
        }
    }

    /// Listens for changes announced by any instance and passes them to
    /// `target` (a `CachedStore`'s invalidator). Returns once `LISTEN` is in
    /// place. If the connection drops, `target` is told that everything may
    /// have changed (`Change::All`) as soon as it is back — notifications
    /// sent meanwhile are lost — and reconnection is retried with backoff
    /// up to 5 s; until then cached entries live at most their TTL.
    pub async fn listen(&self, target: impl Invalidate) -> Result<(), StoreError> {
        let mut listener = PgListener::connect_with(&self.shared.pool)
            .await
            .map_err(db_error)?;
        listener
            .listen(&self.shared.channel)
            .await
            .map_err(db_error)?;
        let task = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match listener.try_recv().await {
                    Ok(Some(n)) => {
                        backoff = Duration::from_millis(100);
                        let (kind, key) = n.payload().split_once(':').unwrap_or(("", ""));
                        target.invalidate(&super::sql::parse_change(kind, key));
                    }
                    // Connection lost: sqlx reconnects and re-LISTENs on
                    // the next call; what was sent meanwhile is lost.
                    Ok(None) => target.invalidate(&Change::All),
                    Err(_) => {
                        target.invalidate(&Change::All);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        });
        self.shared
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(task.abort_handle());
        Ok(())
    }
}

super::sql::sqlx_store_impl!(PostgresStore);
