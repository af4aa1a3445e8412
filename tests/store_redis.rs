//! `RedisChannel` against a real Redis server: changes announced by one
//! instance reach another instance's cache; a killed or silent
//! subscription is detected, and the cache flushed once it is back.
//!
//! Opt-in: set `REDIS_URL` (for example `redis://127.0.0.1:6379`);
//! without it the tests say `skipped`, unless `TOWER_PAT_REQUIRE_DB` is set
//! (as in `.ci/run`), where they fail.

mod conformance;
#[cfg(feature = "postgres")]
#[path = "common/pg_witness.rs"]
mod pg_witness;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tower_pat::admin::{NewToken, TokenManager};
use tower_pat::{
    preset, CachedStore, MemoryStore, RedisAnnounced, RedisChannel, RevocationReason, TokenAdmin,
    TokenId, TokenStore,
};

static N: AtomicUsize = AtomicUsize::new(0);
/// The tests kill and pause Redis clients: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn url() -> Option<String> {
    std::env::var("REDIS_URL")
        .ok()
        .filter(|u| u.starts_with("redis://"))
}

fn require_redis() -> bool {
    if url().is_some() {
        return true;
    }
    assert!(
        std::env::var_os("TOWER_PAT_REQUIRE_DB").is_none(),
        "REDIS_URL is required"
    );
    eprintln!("skipped: REDIS_URL not set");
    false
}

/// A channel of its own for each test.
fn channel() -> RedisChannel {
    let name = format!(
        "tower_pat_test_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    RedisChannel::open(&url().unwrap(), &name).unwrap()
}

struct Announced;

impl conformance::Harness for Announced {
    type Store = RedisAnnounced<MemoryStore>;
    async fn make() -> Option<Self::Store> {
        url()?;
        Some(channel().announcing(MemoryStore::new()))
    }
    async fn dump(store: &Self::Store) -> Vec<u8> {
        format!("{:?}", store.list(None).await.unwrap()).into_bytes()
    }
    async fn flush(_: &Self::Store) {}
}

tower_pat::conformance_tests!(Announced);

/// Two instances over one shared store: `writer` announces on the
/// channel; `reader` is a cache listening to it.
struct Instances {
    shared: MemoryStore,
    writer: TokenManager<RedisAnnounced<MemoryStore>>,
    reader: CachedStore<MemoryStore>,
    _channel: RedisChannel,
}

async fn instances(heartbeat: Duration) -> Instances {
    let shared = MemoryStore::new();
    let channel = channel();
    let reader = CachedStore::new(shared.clone());
    channel
        .listen(reader.invalidator(), heartbeat)
        .await
        .unwrap();
    let writer = TokenManager::new(channel.announcing(shared.clone()), preset::nuvlyx_live());
    Instances {
        shared,
        writer,
        reader,
        _channel: channel,
    }
}

impl Instances {
    async fn token(&self) -> TokenId {
        let created = self
            .writer
            .create(NewToken::new("bot", "shop", ["orders:read"]))
            .await
            .unwrap();
        // Let the creation's own announcement arrive before the reader
        // caches the record.
        tokio::time::sleep(Duration::from_millis(100)).await;
        created.record.id
    }

    async fn reader_sees_revoked(&self, id: TokenId) -> bool {
        self.reader
            .find(id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    }

    /// Revokes `id` in the shared store without any announcement (a change
    /// whose message was lost).
    async fn revoke_unannounced(&self, id: TokenId) {
        self.shared
            .revoke(id, SystemTime::now(), &RevocationReason::Manual)
            .await
            .unwrap();
    }

    /// Waits until the reader sees `id` revoked; returns how long it took.
    async fn wait_until_revoked(&self, id: TokenId, limit: Duration) -> Duration {
        let started = Instant::now();
        while !self.reader_sees_revoked(id).await {
            assert!(started.elapsed() < limit, "not seen within {limit:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        started.elapsed()
    }
}

async fn redis_admin() -> redis::aio::MultiplexedConnection {
    redis::Client::open(url().unwrap())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// `CLIENT KILL TYPE pubsub`: closes every subscription (the tests run one
/// at a time), asserting ours was among them.
async fn kill_subscriptions() {
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut redis_admin().await)
        .await
        .unwrap();
    assert!(killed >= 1, "our subscription was killed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_on_one_instance_reaches_the_others_cache() {
    if !require_redis() {
        return;
    }
    let _one = SERIAL.lock().await;
    let i = instances(Duration::from_secs(1)).await;
    let (announced, control) = (i.token().await, i.token().await);
    assert!(!i.reader_sees_revoked(announced).await, "cached live");
    assert!(!i.reader_sees_revoked(control).await, "cached live");

    // Control: a change nobody announces stays unseen by the cache.
    i.revoke_unannounced(control).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !i.reader_sees_revoked(control).await,
        "the cache is stale without the channel"
    );

    // Through the announcing store: seen at once.
    i.writer.revoke(announced).await.unwrap();
    let took = i
        .wait_until_revoked(announced, Duration::from_secs(1))
        .await;
    eprintln!("revocation seen by the other instance after {took:?}");
    // Suspensions travel too.
    let owner = "shop".parse().unwrap();
    let live = i.token().await;
    assert!(!i.reader.find(live).await.unwrap().unwrap().owner_suspended);
    i.writer.suspend_owner("shop").await.unwrap();
    let started = Instant::now();
    while !i.reader.find(live).await.unwrap().unwrap().owner_suspended {
        assert!(started.elapsed() < Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(i.shared.is_owner_suspended(&owner).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_subscription_is_detected_and_the_cache_flushed_when_it_is_back() {
    if !require_redis() {
        return;
    }
    let _one = SERIAL.lock().await;
    let i = instances(Duration::from_millis(200)).await;
    let id = i.token().await;
    assert!(!i.reader_sees_revoked(id).await);
    // A change whose message is lost, then the connection killed.
    i.revoke_unannounced(id).await;
    assert!(!i.reader_sees_revoked(id).await, "stale until the flush");
    kill_subscriptions().await;
    let took = i.wait_until_revoked(id, Duration::from_secs(3)).await;
    eprintln!("flushed {took:?} after the subscription was killed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_subscription_is_caught_by_the_heartbeat() {
    if !require_redis() {
        return;
    }
    let _one = SERIAL.lock().await;
    let heartbeat = Duration::from_millis(200);
    let i = instances(heartbeat).await;
    let id = i.token().await;
    assert!(!i.reader_sees_revoked(id).await);
    i.revoke_unannounced(id).await;
    assert!(!i.reader_sees_revoked(id).await, "stale until the flush");
    // Redis stops answering for a second (the connection stays open, and
    // says nothing): only the heartbeat can notice.
    let paused: String = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1000)
        .arg("ALL")
        .query_async(&mut redis_admin().await)
        .await
        .unwrap();
    assert_eq!(paused, "OK");
    let took = i.wait_until_revoked(id, Duration::from_secs(5)).await;
    eprintln!("flushed {took:?} after Redis went silent for 1 s (heartbeat {heartbeat:?})");
    assert!(
        took >= Duration::from_millis(900),
        "not before Redis answered again"
    );
}

/// PostgreSQL behind a pooler that breaks `LISTEN`: the changes travel over
/// Redis, and the store's filter of known ids is kept current by them.
#[cfg(feature = "postgres")]
mod postgres_over_redis {
    use super::*;
    use crate::pg_witness::{answered_without_the_table, lock_tokens, made_up_ids};
    use tower_pat::PostgresStore;

    fn pg_url() -> String {
        std::env::var("DATABASE_URL")
            .ok()
            .filter(|u| u.starts_with("postgres"))
            .expect("DATABASE_URL (PostgreSQL) is required with REDIS_URL for these tests")
    }

    async fn store(schema: &str) -> PostgresStore {
        PostgresStore::connect_in_schema(&pg_url(), schema)
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_filter_of_known_ids_follows_the_redis_channel() {
        if !require_redis() {
            return;
        }
        let _one = SERIAL.lock().await;
        let schema = format!(
            "tp_redis_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let writer_store = store(&schema).await;
        let reader_store = store(&schema).await;
        let channel = channel();
        let cache = CachedStore::new(reader_store.clone());
        reader_store
            .listen_on(&channel, cache.invalidator(), Duration::from_millis(200))
            .await
            .unwrap();
        assert!(reader_store.known_ids_stats().is_some(), "no filter");
        let writer = TokenManager::new(
            channel.announcing(writer_store.clone()),
            preset::nuvlyx_live(),
        );

        // A token created through the announcing store is found by the
        // reader once the message has arrived.
        let c = writer
            .create(NewToken::new("t", "shop", ["orders:read"]))
            .await
            .unwrap();
        let started = Instant::now();
        while cache.find(c.record.id).await.unwrap().is_none() {
            assert!(started.elapsed() < Duration::from_secs(1), "never found");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }

        // Made-up ids are answered without the table; a real one waits.
        let tx = lock_tokens(writer_store.pool()).await;
        assert!(
            tokio::time::timeout(Duration::from_millis(300), reader_store.find(c.record.id))
                .await
                .is_err(),
            "the lock does not hold lookups back"
        );
        let mut asked = 0;
        for id in made_up_ids(200) {
            if !answered_without_the_table(&reader_store, id).await {
                asked += 1;
            }
        }
        assert!(
            asked <= 2,
            "{asked} of 200 made-up ids reached the database"
        );

        // The subscription is killed: no filter until it is back and a
        // scan has finished (the scan waits on the lock).
        kill_subscriptions().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            reader_store.known_ids_stats().is_none(),
            "a filter while the channel was down"
        );
        assert!(
            !answered_without_the_table(&reader_store, made_up_ids(1)[0]).await,
            "with the channel down, a made-up id was refused without asking the database"
        );
        drop(tx);
        let started = Instant::now();
        while reader_store.known_ids_stats().is_none() {
            assert!(started.elapsed() < Duration::from_secs(5), "no new scan");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(writer_store.pool())
            .await
            .unwrap();
    }
}
