//! Background work the host owns: every task a store starts runs under a
//! `Background` handle and stops with it; shutting the last-use writer down
//! writes what is pending. (PostgreSQL and Redis parts are opt-in, as the
//! store tests: `DATABASE_URL`, `REDIS_URL`.)

#[path = "common/pg.rs"]
#[allow(dead_code)]
mod pg;
#[path = "common/pg_witness.rs"]
#[allow(dead_code)]
mod pg_witness;
#[path = "common/tasks.rs"]
mod tasks;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::sync::atomic::Ordering;

use tasks::{alive, dropped, settles_at, witness};
use tower_pat::admin::{NewToken, TokenManager};
use tower_pat::store::{Background, CachedStore, TokenStore};
use tower_pat::token::TokenId;
use tower_pat_sqlx_store::SqliteStore;

/// A time the stores keep exactly (whole microseconds).
fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

async fn sqlite_with_token() -> (SqliteStore, TokenId) {
    let store = SqliteStore::in_memory().await.unwrap();
    let id = TokenManager::new(store.clone(), nuvlyx::live())
        .create(NewToken::new("bot", "shop", ["orders:read"]))
        .await
        .unwrap()
        .record
        .id;
    (store, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_the_writer_down_writes_the_pending_last_use_times() {
    let (store, id) = sqlite_with_token().await;
    // A period far longer than the test: only the shutdown can write.
    let writer = store.write_last_used_every(Duration::from_secs(3600));
    store.record_use(id, at(1_800_000_000), None);
    assert_eq!(store.find(id).await.unwrap().unwrap().last_used_at, None);
    writer.shutdown().await.unwrap();
    assert_eq!(
        store.find(id).await.unwrap().unwrap().last_used_at,
        Some(at(1_800_000_000))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_writes_every_period_and_dropping_it_stops_writing() {
    let (store, id) = sqlite_with_token().await;
    let writer = store.write_last_used_every(Duration::from_millis(50));
    store.record_use(id, at(1_800_000_000), None);
    let started = Instant::now();
    while store
        .find(id)
        .await
        .unwrap()
        .unwrap()
        .last_used_at
        .is_none()
    {
        assert!(started.elapsed() < Duration::from_secs(2), "never written");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(writer);
    store.record_use(id, at(1_800_000_100), None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        store.find(id).await.unwrap().unwrap().last_used_at,
        Some(at(1_800_000_000)),
        "a dropped writer wrote again"
    );
    // The time is still pending, for an explicit flush.
    store.flush_last_used().await.unwrap();
    assert_eq!(
        store.find(id).await.unwrap().unwrap().last_used_at,
        Some(at(1_800_000_100))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_tasks_stop_with_their_handles() {
    let (store, _) = sqlite_with_token().await;
    let before = alive();
    let writer = store.write_last_used_every(Duration::from_secs(1));
    drop(writer);
    settles_at(before, "the last-use writer").await;

    let cache = CachedStore::new(store.clone());
    let (target, gone) = witness(&cache);
    let watching: Background = store
        .watch_changes(target, Duration::from_millis(20))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !gone.load(Ordering::SeqCst),
        "watching while the handle lives"
    );
    drop(watching);
    dropped(&gone, "watch_changes").await;
    settles_at(before, "watch_changes").await;
}

/// PostgreSQL: the listener's three tasks (LISTEN, reader, scanner) stop
/// with the handle, its connection leaves the server, and lookups stop
/// trusting the filter nothing keeps current; the writer's shutdown
/// writes the pending times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tasks_stop_with_their_handles_and_the_filter_with_them() {
    let Some(url) = pg::database_url() else {
        return;
    };
    let schema = format!("tp_background_{}", std::process::id());
    let (store, admin) = pg::fresh_schema(&url, &schema).await;
    let id = TokenManager::new(store.clone(), nuvlyx::live())
        .create(NewToken::new("bot", "shop", ["orders:read"]))
        .await
        .unwrap()
        .record
        .id;

    let writer = store.write_last_used_every(Duration::from_secs(3600));
    store.record_use(id, at(1_800_000_000), None);
    writer.shutdown().await.unwrap();
    assert_eq!(
        store.find(id).await.unwrap().unwrap().last_used_at,
        Some(at(1_800_000_000))
    );

    let listening_backends = || pg::listening_backends(admin.pool(), &schema);
    let cache = CachedStore::new(store.clone());
    let (target, gone) = witness(&cache);
    let before = alive();
    let listening = store.listen(target, Duration::from_secs(5)).await.unwrap();
    assert_eq!(listening_backends().await, 1);
    // While listening, a made-up id is answered by the filter: it does not
    // wait for a locked table.
    let forged = pg_witness::made_up_ids(1)[0];
    {
        let _lock = pg_witness::lock_tokens(store.pool()).await;
        assert!(pg_witness::answered_without_the_table(&store, forged).await);
    }

    assert!(
        !gone.load(Ordering::SeqCst),
        "following while the handle lives"
    );
    drop(listening);
    dropped(&gone, "the change-table reader").await;
    settles_at(before, "PostgresStore::listen").await;
    let started = Instant::now();
    while listening_backends().await != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the LISTEN connection outlived its handle"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Nothing keeps the filter current any more: the same id now asks the
    // table, at once (it waits for the lock, and for nothing else).
    let lock = pg_witness::lock_tokens(store.pool()).await;
    let lookup = tokio::spawn({
        let store = store.clone();
        async move { store.find(forged).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!lookup.is_finished(), "answered without the table");
    drop(lock);
    let answer = tokio::time::timeout(Duration::from_secs(1), lookup)
        .await
        .expect("the lookup waited for something else than the table");
    assert!(answer.unwrap().unwrap().is_none());
    assert!(store.find(id).await.unwrap().is_some());
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(admin.pool())
        .await
        .unwrap();
}
