//! `SqliteStore` (on a file) and `CachedStore<SqliteStore>` pass the
//! conformance suite; plus SQLite-specific behaviour.

#[path = "../../../tests/conformance/mod.rs"]
mod conformance;
#[path = "common/raw_sql.rs"]
mod raw_sql;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tower_pat::admin::{NewToken, TokenManager};

use tower_pat::store::TokenStore;
use tower_pat::store::{CacheConfig, CachedStore};
use tower_pat::token::TokenId;
use tower_pat_sqlx_store::SqliteStore;

static N: AtomicUsize = AtomicUsize::new(0);

fn temp_db() -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!(
        "tower-pat-test-{}-{}-{nanos}.db",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ))
}

async fn file_bytes(store: &SqliteStore) -> Vec<u8> {
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(store.pool())
        .await
        .unwrap();
    let (_, _, file): (i64, String, String) = sqlx::query_as("PRAGMA database_list")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend(std::fs::read(format!("{file}-wal")).unwrap_or_default());
    bytes
}

struct SqliteFile;

impl conformance::Harness for SqliteFile {
    type Store = SqliteStore;
    async fn make() -> Option<SqliteStore> {
        Some(SqliteStore::open(temp_db()).await.unwrap())
    }
    async fn dump(store: &SqliteStore) -> Vec<u8> {
        file_bytes(store).await
    }
    async fn flush(store: &SqliteStore) {
        store.flush_last_used().await.unwrap();
    }
    async fn corrupt_scopes(store: &SqliteStore, id: TokenId) -> bool {
        damage(
            store,
            "UPDATE tower_pat_tokens SET scopes = 'NOT A SCOPE' WHERE id = ?1",
            id,
        )
        .await
    }
    async fn corrupt_digest(store: &SqliteStore, id: TokenId) -> bool {
        damage(
            store,
            "UPDATE tower_pat_tokens SET digest = x'00' WHERE id = ?1",
            id,
        )
        .await
    }
}

/// Runs `sql` (`?1`: the token id) around the store, as damage would.
async fn damage(store: &SqliteStore, sql: &'static str, id: TokenId) -> bool {
    sqlx::query(sql)
        .bind(raw_sql::db_id(id))
        .execute(store.pool())
        .await
        .unwrap();
    true
}

tower_pat::conformance_tests!(SqliteFile);

mod cached {
    use super::*;

    pub struct CachedSqlite;

    impl conformance::Harness for CachedSqlite {
        type Store = CachedStore<SqliteStore>;
        async fn make() -> Option<Self::Store> {
            let inner = SqliteStore::open(temp_db()).await.unwrap();
            Some(CachedStore::with_config(inner, CacheConfig::default()))
        }
        async fn dump(store: &Self::Store) -> Vec<u8> {
            file_bytes(store.inner()).await
        }
        async fn flush(store: &Self::Store) {
            use tower_pat::store::{Change, Invalidate};
            store.inner().flush_last_used().await.unwrap();
            store.invalidator().invalidate(&Change::All);
        }
        /// Damaged under the cache, which is then told (as a change
        /// feed would): the error reaches the layer through the cache.
        async fn corrupt_scopes(store: &Self::Store, id: TokenId) -> bool {
            use tower_pat::store::{Change, Invalidate};
            let damaged = SqliteFile::corrupt_scopes(store.inner(), id).await;
            store.invalidator().invalidate(&Change::Token(id));
            damaged
        }
        async fn corrupt_digest(store: &Self::Store, id: TokenId) -> bool {
            use tower_pat::store::{Change, Invalidate};
            let damaged = SqliteFile::corrupt_digest(store.inner(), id).await;
            store.invalidator().invalidate(&Change::Token(id));
            damaged
        }
    }

    tower_pat::conformance_tests!(CachedSqlite);
}

#[tokio::test]
async fn reopening_a_migrated_database_is_a_noop_and_keeps_tokens() {
    let path = temp_db();
    let store = SqliteStore::open(&path).await.unwrap();
    let m = TokenManager::new(store.clone(), nuvlyx::live());
    let c = m
        .create(NewToken::new("t", "o", ["orders:read"]))
        .await
        .unwrap();
    drop(m);
    drop(store);
    let again = SqliteStore::open(&path).await.unwrap();
    let r = again.find(c.record.id).await.unwrap().unwrap();
    assert!(r.digest.verify(c.token.expose_secret()));
}

#[tokio::test]
async fn a_second_process_can_write_while_a_server_reads() {
    // Two independent pools on one file, as a CLI and a server would have.
    let path = temp_db();
    let server = SqliteStore::open(&path).await.unwrap();
    let cli = SqliteStore::open(&path).await.unwrap();
    let m = TokenManager::new(cli.clone(), nuvlyx::live());
    let reader = tokio::spawn({
        let server = server.clone();
        async move {
            for _ in 0..200 {
                server
                    .find(tower_pat::token::TokenId::from_bytes(1u64.to_be_bytes()))
                    .await
                    .unwrap();
            }
        }
    });
    let mut ids = Vec::new();
    for i in 0..50 {
        let c = m
            .create(NewToken::new(&format!("t{i}"), "o", ["orders:read"]))
            .await
            .unwrap();
        ids.push(c.record.id);
    }
    reader.await.unwrap();
    for id in ids {
        assert!(server.find(id).await.unwrap().is_some());
    }
}

#[tokio::test]
async fn database_triggers_forbid_unrevoking_or_deleting_a_revoked_token() {
    let store = SqliteStore::open(temp_db()).await.unwrap();
    let m = TokenManager::new(store.clone(), nuvlyx::live());
    let c = m
        .create(NewToken::new("t", "o", ["orders:read"]))
        .await
        .unwrap();
    m.revoke(c.record.id).await.unwrap();
    let id = i64::from_be_bytes(*c.record.id.as_bytes());
    let unrevoke = sqlx::query("UPDATE tower_pat_tokens SET revoked_at = NULL WHERE id = ?1")
        .bind(id)
        .execute(store.pool())
        .await;
    assert!(unrevoke.is_err());
    let delete = sqlx::query("DELETE FROM tower_pat_tokens WHERE id = ?1")
        .bind(id)
        .execute(store.pool())
        .await;
    assert!(delete.is_err());
    assert!(store
        .find(c.record.id)
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_some());
}

#[tokio::test]
async fn change_feed_reaches_another_process_cache() {
    let path = temp_db();
    let server_store = SqliteStore::open(&path).await.unwrap();
    let cache = CachedStore::new(server_store.clone());
    let _watching = server_store
        .watch_changes(cache.invalidator(), Duration::from_millis(50))
        .await
        .unwrap();
    let cli = SqliteStore::open(&path).await.unwrap();
    let m = TokenManager::new(cli, nuvlyx::live());
    let c = m
        .create(NewToken::new("t", "o", ["orders:read"]))
        .await
        .unwrap();
    assert!(cache
        .find(c.record.id)
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_none());
    m.revoke(c.record.id).await.unwrap();
    let started = std::time::Instant::now();
    loop {
        if cache
            .find(c.record.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "revocation not seen within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Revocation is irreversible against every write path the schema can
/// refuse: after each raw statement (refused or not), the revoked token
/// still answers 401 and its record still reads as revoked.
#[tokio::test]
async fn revocation_survives_raw_sql_write_paths() {
    const REINSERT: &str = "INSERT INTO tower_pat_tokens \
        (id, digest, owner, name, scopes, preview, created_at) \
        VALUES (?1, ?2, 'o', 'back', 'orders:read', 'p', 0)";
    // ?1: the token id; ?2: its digest.
    let attacks: &[&[&str]] = &[
        &["UPDATE tower_pat_tokens SET revoked_at = NULL WHERE id = ?1"],
        &["DELETE FROM tower_pat_tokens WHERE id = ?1", REINSERT],
        // REPLACE deletes the old row without firing delete triggers.
        &["INSERT OR REPLACE INTO tower_pat_tokens \
           (id, digest, owner, name, scopes, preview, created_at) \
           VALUES (?1, ?2, 'o', 'back', 'orders:read', 'p', 0)"],
        &["REPLACE INTO tower_pat_tokens \
           (id, digest, owner, name, scopes, preview, created_at) \
           VALUES (?1, ?2, 'o', 'back', 'orders:read', 'p', 0)"],
        &[
            "UPDATE tower_pat_tokens SET id = id + 1 WHERE id = ?1",
            REINSERT,
        ],
        &["DELETE FROM tower_pat_tokens", REINSERT],
        &["DELETE FROM tower_pat_revocations", REINSERT],
        &["UPDATE tower_pat_revocations SET id = id + 1", REINSERT],
        &["INSERT OR REPLACE INTO tower_pat_revocations (id, revoked_at) VALUES (?1, NULL)"],
        &[
            "UPDATE OR REPLACE tower_pat_tokens SET id = ?1 + 1 WHERE id = ?1",
            REINSERT,
        ],
    ];
    raw_sql::revocation_survives(
        attacks,
        || async { SqliteStore::open(temp_db()).await.unwrap() },
        |store, sql, id, digest| async move {
            let mut q = sqlx::query(sql).bind(id);
            if sql.contains("?2") {
                q = q.bind(digest);
            }
            // Refused or not: what matters is what the store says after.
            let _ = q.execute(store.pool()).await;
        },
    )
    .await;
}
