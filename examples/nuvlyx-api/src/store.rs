//! Opening the configured token store: the embedded SQLite file, or a
//! shared PostgreSQL database.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tower_pat::admin::TokenManager;
use tower_pat::{
    store::CacheConfig, store::CacheStats, store::CachedStore, store::PostgresStore,
    store::SqliteStore, store::TokenAdmin,
};

use crate::cli::StoreArgs;
use crate::files;

/// Any of the token stores, as the commands use it.
pub type Store = Arc<dyn TokenAdmin>;

/// What the metrics endpoint reads of the serving cache.
pub type CacheStatsFn = Arc<dyn Fn() -> CacheStats + Send + Sync>;

/// Opens the configured store for serving, behind its cache, with a view of
/// that cache for the metrics endpoint.
pub async fn open_serving(args: &StoreArgs) -> Result<(Store, CacheStatsFn)> {
    let (store, stats) = open(args, true).await?;
    Ok((store, stats.expect("a serving store has a cache")))
}

/// Opens the configured store. For serving, the store sits behind a cache
/// wired to the change feed, so CLI revocations apply within ~250 ms.
pub async fn open_store(args: &StoreArgs, serving: bool) -> Result<Store> {
    Ok(open(args, serving).await?.0)
}

async fn open(args: &StoreArgs, serving: bool) -> Result<(Store, Option<CacheStatsFn>)> {
    match &args.database_url {
        Some(url) => {
            let pg = PostgresStore::connect_in_schema(url, &args.database_schema)
                .await
                .context("PostgreSQL")?;
            if !serving {
                return Ok((Arc::new(pg), None));
            }
            let mut config = CacheConfig::default();
            if let Some(ttl) = args.cache_ttl {
                config = config.ttl(ttl);
            }
            let cached = CachedStore::with_config(pg.clone(), config);
            pg.listen(cached.invalidator(), Duration::from_secs(5))
                .await
                .context("LISTEN")?;
            let view = cached.clone();
            Ok((Arc::new(cached), Some(Arc::new(move || view.stats()))))
        }
        None => {
            files::private_dir(&args.data_dir)?;
            let db = args.data_dir.join("tokens.db");
            files::private_file(&db)?;
            let sqlite = SqliteStore::open(&db)
                .await
                .context("opening the token store")?;
            if !serving {
                return Ok((Arc::new(sqlite), None));
            }
            let cached = CachedStore::new(sqlite.clone());
            sqlite
                .watch_changes(cached.invalidator(), Duration::from_millis(250))
                .await
                .context("watching changes")?;
            let view = cached.clone();
            Ok((Arc::new(cached), Some(Arc::new(move || view.stats()))))
        }
    }
}

/// The manager every command mints and revokes through.
pub fn manager(store: Store) -> TokenManager<Store> {
    TokenManager::new(store, nuvlyx::live())
}
