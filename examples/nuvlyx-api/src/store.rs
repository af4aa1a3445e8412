//! Opening the configured token store: the embedded SQLite file, or a
//! shared PostgreSQL database.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tower_pat::admin::TokenManager;
use tower_pat::store::{Background, CacheConfig, CacheStats, CachedStore, TokenAdmin};
use tower_pat_sqlx_store::{PostgresStore, SqliteStore};

use crate::admin::audit::Audit;
use crate::cli::StoreArgs;
use crate::files;

/// Any of the token stores, as the commands use it.
pub type Store = Arc<dyn TokenAdmin>;

/// What the metrics endpoint reads of the serving cache.
pub type CacheStatsFn = Arc<dyn Fn() -> CacheStats + Send + Sync>;

/// How often last-use times are written while serving.
const WRITE_LAST_USED_EVERY: Duration = Duration::from_secs(10);

/// The store as the server uses it: behind its cache, with a view of that
/// cache for the metrics endpoint, and the background work it runs (the
/// change feed, the last-use writer), which the server shuts down when it
/// stops.
pub struct Serving {
    pub store: Store,
    pub cache_stats: CacheStatsFn,
    pub background: Vec<Background>,
    /// The admin audit log, in the same database.
    pub audit: Audit,
}

impl Serving {
    /// Stops the background work and writes the pending last-use times.
    pub async fn shutdown(self) -> Result<()> {
        for work in self.background {
            work.shutdown().await.context("shutting the store down")?;
        }
        Ok(())
    }
}

/// Opens the configured store for serving: behind a cache wired to the
/// change feed, so CLI revocations apply within ~250 ms.
pub async fn open_serving(args: &StoreArgs) -> Result<Serving> {
    match &args.database_url {
        Some(url) => {
            let pg = PostgresStore::connect_in_schema(url, &args.database_schema)
                .await
                .context("PostgreSQL")?;
            let mut config = CacheConfig::default();
            if let Some(ttl) = args.cache_ttl {
                config = config.ttl(ttl);
            }
            let cached = CachedStore::with_config(pg.clone(), config);
            let listening = pg
                .listen(cached.invalidator(), Duration::from_secs(5))
                .await
                .context("LISTEN")?;
            let writing = pg.write_last_used_every(WRITE_LAST_USED_EVERY);
            let view = cached.clone();
            let audit = Audit::Postgres(pg.pool().clone(), args.database_schema.clone())
                .open()
                .await?;
            Ok(Serving {
                store: Arc::new(cached),
                cache_stats: Arc::new(move || view.stats()),
                // The writer last: its shutdown writes what is pending.
                background: vec![listening, writing],
                audit,
            })
        }
        None => {
            let sqlite = open_sqlite(args).await?;
            let cached = CachedStore::new(sqlite.clone());
            let watching = sqlite
                .watch_changes(cached.invalidator(), Duration::from_millis(250))
                .await
                .context("watching changes")?;
            let writing = sqlite.write_last_used_every(WRITE_LAST_USED_EVERY);
            let view = cached.clone();
            let audit = Audit::Sqlite(sqlite.pool().clone()).open().await?;
            Ok(Serving {
                store: Arc::new(cached),
                cache_stats: Arc::new(move || view.stats()),
                background: vec![watching, writing],
                audit,
            })
        }
    }
}

/// Opens the configured store, as the CLI commands use it.
pub async fn open_store(args: &StoreArgs) -> Result<Store> {
    match &args.database_url {
        Some(url) => {
            let pg = PostgresStore::connect_in_schema(url, &args.database_schema)
                .await
                .context("PostgreSQL")?;
            Ok(Arc::new(pg))
        }
        None => Ok(Arc::new(open_sqlite(args).await?)),
    }
}

/// The admin audit log of the configured store's database.
pub async fn open_audit(args: &StoreArgs) -> Result<Audit> {
    match &args.database_url {
        Some(url) => {
            let pg = PostgresStore::connect_in_schema(url, &args.database_schema)
                .await
                .context("PostgreSQL")?;
            Audit::Postgres(pg.pool().clone(), args.database_schema.clone())
                .open()
                .await
        }
        None => {
            Audit::Sqlite(open_sqlite(args).await?.pool().clone())
                .open()
                .await
        }
    }
}

/// The embedded store: a private file in the data directory.
async fn open_sqlite(args: &StoreArgs) -> Result<SqliteStore> {
    files::private_dir(&args.data_dir)?;
    let db = args.data_dir.join("tokens.db");
    files::private_file(&db)?;
    SqliteStore::open(&db)
        .await
        .context("opening the token store")
}

/// The manager every command mints and revokes through.
pub fn manager(store: Store) -> TokenManager<Store> {
    TokenManager::new(store, nuvlyx::live())
}
