//! `RedisChannel` against a real Redis server: changes announced by one
//! instance reach another instance's cache; a killed or silent
//! subscription is detected, and the cache flushed once it is back.
//!
//! Opt-in: set `REDIS_URL` (for example `redis://127.0.0.1:6379`);
//! without it the tests say `skipped`, unless `TOWER_PAT_REQUIRE_DB` is set
//! (as in `.ci/run`), where they fail.

#[path = "../../../tests/conformance/mod.rs"]
mod conformance;
#[path = "../../tower-pat-sqlx-store/tests/common/pg_witness.rs"]
mod pg_witness;
#[path = "../../tower-pat-sqlx-store/tests/common/tasks.rs"]
mod tasks;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tasks::{alive, dropped, settles_at, witness};
use tower_pat::admin::{NewToken, TokenManager};
use tower_pat::store::{CachedStore, RevocationReason, TokenAdmin, TokenStore};
use tower_pat::{token::TokenId, MemoryStore};
use tower_pat_redis::{RedisAnnounced, RedisChannel};

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
    _listening: tower_pat::store::Background,
}

async fn instances(heartbeat: Duration) -> Instances {
    let shared = MemoryStore::new();
    let channel = channel();
    let reader = CachedStore::new(shared.clone());
    let listening = channel
        .listen(reader.invalidator(), heartbeat)
        .await
        .unwrap();
    let writer = TokenManager::new(channel.announcing(shared.clone()), nuvlyx::live());
    Instances {
        shared,
        writer,
        reader,
        _channel: channel,
        _listening: listening,
    }
}

impl Instances {
    async fn token(&self) -> TokenId {
        let created = self
            .writer
            .create(NewToken::new(
                &format!("bot {}", N.fetch_add(1, Ordering::SeqCst)),
                "shop",
                ["orders:read"],
            ))
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

/// `RedisChannel::listen` believes changes of feed format 1 from whoever
/// may publish (see SECURITY.md: Redis must require credentials), but
/// nothing else: garbled messages and format-2 wake-ups flush nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbled_messages_are_ignored() {
    if !require_redis() {
        return;
    }
    let _one = SERIAL.lock().await;
    let name = format!(
        "tower_pat_test_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let shared = MemoryStore::new();
    let channel = RedisChannel::open(&url().unwrap(), &name).unwrap();
    let reader = CachedStore::new(shared.clone());
    let _listening = channel
        .listen(reader.invalidator(), Duration::from_secs(5))
        .await
        .unwrap();
    let writer = TokenManager::new(shared.clone(), nuvlyx::live());
    let c = writer
        .create(NewToken::new("bot", "shop", ["orders:read"]))
        .await
        .unwrap();
    assert!(reader.find(c.record.id).await.unwrap().is_some());
    assert_eq!(reader.stats().entries, 1);
    let mut publisher = redis_admin().await;
    let publish = |payload: String| redis::cmd("PUBLISH").arg(&name).arg(payload).clone();
    for i in 0..300 {
        let payload = match i % 5 {
            0 => "garbage".to_owned(),
            1 => "v2".to_owned(),
            2 => "token:xyz".to_owned(),
            3 => "all:now".to_owned(),
            _ => "\u{0}".repeat(600),
        };
        let _: i64 = publish(payload).query_async(&mut publisher).await.unwrap();
    }
    // The control: a real change does reach the cache.
    let _: i64 = publish("all:".to_owned())
        .query_async(&mut publisher)
        .await
        .unwrap();
    let started = Instant::now();
    while reader.stats().entries == 1 {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the control flush never came"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Messages arrive in order: had a garbled one flushed the cache, the
    // entry would have gone before the control. Check the order held by
    // caching again and sending garbage only.
    assert!(reader.find(c.record.id).await.unwrap().is_some());
    for _ in 0..100 {
        let _: i64 = publish("garbage".to_owned())
            .query_async(&mut publisher)
            .await
            .unwrap();
    }
    let _: i64 = publish(format!("token:{}", TokenId::from_bytes([0; 8])))
        .query_async(&mut publisher)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        reader.stats().entries,
        1,
        "a garbled message flushed the cache"
    );
}

/// PostgreSQL behind a pooler that breaks `LISTEN`: the changes travel over
/// Redis, and the store's filter of known ids is kept current by them.
mod postgres_over_redis {
    use super::*;
    use crate::pg_witness::{answered_without_the_table, lock_tokens, made_up_ids};
    use tower_pat_sqlx_store::PostgresStore;

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

    /// Issue #21 over Redis: every message on the channel only asks for a
    /// read of the change table. Any Redis client can publish here (this
    /// server has no ACL), so the test is the one that matters behind
    /// PgBouncer: a flood of every kind of message changes no filter,
    /// starts no scan and costs no lookup; a fresh token works at once;
    /// a killed subscription leaves the filter in place.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn messages_on_the_redis_channel_only_ask_for_a_read() {
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
        let name = format!("{schema}_channel");
        let channel = RedisChannel::open(&url().unwrap(), &name).unwrap();
        let cache = CachedStore::new(reader_store.clone());
        let _listening = reader_store
            .listen_on(
                channel.feed(),
                cache.invalidator(),
                Duration::from_millis(200),
            )
            .await
            .unwrap();
        let writer = TokenManager::new(channel.announcing(writer_store.clone()), nuvlyx::live());
        let c = writer
            .create(NewToken::new("t", "shop", ["orders:read"]))
            .await
            .unwrap();
        assert!(
            cache.find(c.record.id).await.unwrap().is_some(),
            "a fresh token is unknown to the other instance"
        );
        let (ids_before, _) = reader_store.known_ids_stats().expect("no filter");
        let (scans_before, _) = reader_store.follower_stats().unwrap();

        // Anyone who reaches Redis, with every kind of message.
        let mut outsider = redis_admin().await;
        let forged = made_up_ids(100);
        for i in 0..1000 {
            let payload = match i % 6 {
                0 => "garbage".to_owned(),
                1 => "all".to_owned(),
                2 => format!("token:{}", forged[i % 100]),
                3 => "owner:shop".to_owned(),
                4 => "v2".to_owned(),
                _ => "x".repeat(5000),
            };
            let _: i64 = redis::cmd("PUBLISH")
                .arg(&name)
                .arg(payload)
                .query_async(&mut outsider)
                .await
                .unwrap();
            if i % 50 == 0 {
                assert!(cache.find(c.record.id).await.unwrap().is_some());
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            reader_store.known_ids_stats().map(|s| s.0),
            Some(ids_before),
            "the messages changed the filter"
        );
        assert_eq!(
            reader_store.follower_stats().unwrap().0,
            scans_before,
            "the messages started a scan"
        );
        let tx = lock_tokens(writer_store.pool()).await;
        let mut asked = 0;
        for id in &forged {
            if !answered_without_the_table(&reader_store, *id).await {
                asked += 1;
            }
        }
        drop(tx);
        assert!(
            asked <= 1,
            "{asked} of 100 announced forged ids reached the table"
        );

        // The subscription is killed: the filter stays, fresh tokens pass.
        kill_subscriptions().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(reader_store.known_ids_stats().is_some());
        let d = writer
            .create(NewToken::new("u", "shop", ["orders:read"]))
            .await
            .unwrap();
        assert!(cache.find(d.record.id).await.unwrap().is_some());
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(writer_store.pool())
            .await
            .unwrap();
    }
}

/// Redis: the listener's task stops with its handle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_listener_stops_with_its_handle() {
    let Some(url) = std::env::var("REDIS_URL").ok() else {
        assert!(
            std::env::var_os("TOWER_PAT_REQUIRE_DB").is_none(),
            "REDIS_URL is required"
        );
        eprintln!("skipped: REDIS_URL not set");
        return;
    };
    let channel =
        RedisChannel::open(&url, &format!("tower_pat_bg_{}", std::process::id())).unwrap();
    let cache = CachedStore::new(MemoryStore::new());
    let (target, gone) = witness(&cache);
    let before = alive();
    let listening = channel
        .listen(target, Duration::from_millis(200))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !gone.load(Ordering::SeqCst),
        "listening while the handle lives"
    );
    drop(listening);
    dropped(&gone, "RedisChannel::listen").await;
    settles_at(before, "RedisChannel::listen").await;
}
