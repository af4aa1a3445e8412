//! `CachedStore`: bounded, single-flight, revocation-safe (feature `cache`).

mod conformance;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::Notify;
use tower_pat::admin::{NewToken, TokenManager};
use tower_pat::store::{CacheConfig, CachedStore, Change, Invalidate, RevocationReason};
use tower_pat::{
    store::{Lookup, StoreError, TokenAdmin, TokenRecord, TokenStore},
    token::TokenId,
    MemoryStore,
};

struct CachedMemory;

impl conformance::Harness for CachedMemory {
    type Store = CachedStore<MemoryStore>;
    async fn make() -> Option<Self::Store> {
        Some(CachedStore::new(MemoryStore::new()))
    }
    async fn dump(store: &Self::Store) -> Vec<u8> {
        format!("{:?}", store.list(None).await.unwrap()).into_bytes()
    }
    async fn flush(store: &Self::Store) {
        // Last use is written to the inner store; drop cached copies to read it.
        store.invalidator().invalidate(&Change::All);
    }
}

tower_pat::conformance_tests!(CachedMemory);

/// Counts calls; optionally holds each `find` at a gate after reading.
#[derive(Clone, Default)]
struct Probe {
    inner: MemoryStore,
    finds: Arc<AtomicUsize>,
    uses: Arc<AtomicUsize>,
    delay: Option<Duration>,
    gate: Option<(Arc<Notify>, Arc<Notify>)>,
}

impl TokenStore for Probe {
    fn find(&self, id: TokenId) -> Lookup {
        self.finds.fetch_add(1, Ordering::SeqCst);
        let this = self.clone();
        Lookup::pending(async move {
            let read = this.inner.find(id).await;
            if let Some(d) = this.delay {
                tokio::time::sleep(d).await;
            }
            if let Some((reached, release)) = &this.gate {
                reached.notify_one();
                release.notified().await;
            }
            read
        })
    }

    fn record_use(&self, id: TokenId, at: SystemTime, from: Option<std::net::IpAddr>) {
        self.uses.fetch_add(1, Ordering::SeqCst);
        self.inner.record_use(id, at, from);
    }
}

#[async_trait]
impl TokenAdmin for Probe {
    async fn insert(&self, r: TokenRecord) -> Result<(), StoreError> {
        self.inner.insert(r).await
    }
    async fn list(
        &self,
        o: Option<&tower_pat::store::OwnerId>,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        self.inner.list(o).await
    }
    async fn revoke(
        &self,
        id: TokenId,
        at: SystemTime,
        reason: &RevocationReason,
    ) -> Result<bool, StoreError> {
        self.inner.revoke(id, at, reason).await
    }
    async fn cap_expiry(&self, id: TokenId, at: SystemTime) -> Result<(), StoreError> {
        self.inner.cap_expiry(id, at).await
    }
    async fn set_limits(
        &self,
        id: TokenId,
        rate: Option<tower_pat::limit::RateLimit>,
        ips: Option<tower_pat::limit::IpAllowlist>,
    ) -> Result<(), StoreError> {
        self.inner.set_limits(id, rate, ips).await
    }
    async fn set_owner_suspended(
        &self,
        o: &tower_pat::store::OwnerId,
        s: bool,
    ) -> Result<(), StoreError> {
        self.inner.set_owner_suspended(o, s).await
    }
    async fn is_owner_suspended(&self, o: &tower_pat::store::OwnerId) -> Result<bool, StoreError> {
        self.inner.is_owner_suspended(o).await
    }
}

async fn mint(store: &MemoryStore) -> TokenId {
    TokenManager::new(store.clone(), nuvlyx::live())
        .create(NewToken::new("t", "o", ["orders:read"]))
        .await
        .unwrap()
        .record
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_cold_requests_make_one_store_call() {
    let probe = Probe {
        delay: Some(Duration::from_millis(50)),
        ..Probe::default()
    };
    let id = mint(&probe.inner).await;
    let cache = CachedStore::new(probe.clone());
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let cache = cache.clone();
        tasks.push(tokio::spawn(async move {
            cache.find(id).await.unwrap().is_some()
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap());
    }
    assert_eq!(probe.finds.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_hits_do_not_reach_the_store_and_unknown_ids_are_cached_negatively() {
    let probe = Probe::default();
    let id = mint(&probe.inner).await;
    let cache = CachedStore::new(probe.clone());
    for _ in 0..10 {
        cache.find(id).await.unwrap().unwrap();
    }
    let unknown = nuvlyx::live().format().mint().id;
    for _ in 0..10 {
        assert!(cache.find(unknown).await.unwrap().is_none());
    }
    assert_eq!(probe.finds.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_through_the_cache_is_refused_immediately() {
    let probe = Probe::default();
    let id = mint(&probe.inner).await;
    let cache = CachedStore::new(probe.clone());
    assert!(cache.find(id).await.unwrap().unwrap().revoked_at.is_none());
    cache
        .revoke(id, SystemTime::now(), &RevocationReason::Manual)
        .await
        .unwrap();
    assert!(cache.find(id).await.unwrap().unwrap().revoked_at.is_some());
    cache
        .set_owner_suspended(&"o".parse().unwrap(), true)
        .await
        .unwrap();
    assert!(cache.find(id).await.unwrap().unwrap().owner_suspended);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_in_flight_during_revocation_cannot_resurrect_the_token() {
    let reached = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let probe = Probe {
        gate: Some((reached.clone(), release.clone())),
        ..Probe::default()
    };
    let id = mint(&probe.inner).await;
    let cache = CachedStore::new(probe.clone());

    // 1. A cold lookup reads the live record and is held before returning.
    let racing = tokio::spawn({
        let cache = cache.clone();
        async move { cache.find(id).await.unwrap().unwrap() }
    });
    reached.notified().await;
    // 2. Meanwhile the token is revoked through the cache.
    cache
        .revoke(id, SystemTime::now(), &RevocationReason::Manual)
        .await
        .unwrap();
    // 3. The held lookup completes with the stale (live) record it read...
    release.notify_one();
    // ...the re-read it triggers passes the gate too.
    let releaser = tokio::spawn({
        let (reached, release) = (reached.clone(), release.clone());
        async move {
            loop {
                reached.notified().await;
                release.notify_one();
            }
        }
    });
    let seen = racing.await.unwrap();
    assert!(
        seen.revoked_at.is_some(),
        "the racing lookup returned the pre-revocation record"
    );
    // 4. And nothing stale was left in the cache.
    assert!(cache.find(id).await.unwrap().unwrap().revoked_at.is_some());
    releaser.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_invalidation_drops_entries() {
    let probe = Probe::default();
    let id = mint(&probe.inner).await;
    let cache = CachedStore::new(probe.clone());
    cache.find(id).await.unwrap();
    // Revoked behind the cache's back (another process), then announced.
    probe
        .inner
        .revoke(id, SystemTime::now(), &RevocationReason::Manual)
        .await
        .unwrap();
    assert!(
        cache.find(id).await.unwrap().unwrap().revoked_at.is_none(),
        "still cached"
    );
    cache.invalidator().invalidate(&Change::Token(id));
    assert!(cache.find(id).await.unwrap().unwrap().revoked_at.is_some());
    probe
        .inner
        .set_owner_suspended(&"o".parse().unwrap(), true)
        .await
        .unwrap();
    cache.invalidator().invalidate(&Change::All);
    assert!(cache.find(id).await.unwrap().unwrap().owner_suspended);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_expire_after_the_ttl() {
    let probe = Probe::default();
    let id = mint(&probe.inner).await;
    let cache = CachedStore::with_config(
        probe.clone(),
        CacheConfig::default().ttl(Duration::from_millis(200)),
    );
    cache.find(id).await.unwrap();
    probe
        .inner
        .revoke(id, SystemTime::now(), &RevocationReason::Manual)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(cache.find(id).await.unwrap().unwrap().revoked_at.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_ids_stays_within_the_negative_bound() {
    let probe = Probe::default();
    let cache = CachedStore::with_config(
        probe.clone(),
        CacheConfig::default().max_negative_entries(1_000),
    );
    for _ in 0..20_000 {
        let id = TokenId::from_bytes(rand_u64().to_be_bytes());
        assert!(cache.find(id).await.unwrap().is_none());
    }
    let negative = cache.stats().negative_entries;
    assert!(negative <= 1_000, "negative entries: {negative}");
}

fn rand_u64() -> u64 {
    u64::from_be_bytes(*nuvlyx::live().format().mint().id.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_use_is_noted_in_the_cached_record_so_the_layer_hints_once() {
    use tower::{service_fn, Layer, ServiceExt};
    let probe = Probe::default();
    let admin = TokenManager::new(probe.inner.clone(), nuvlyx::live());
    let created = admin
        .create(NewToken::new("t", "o", ["orders:read"]))
        .await
        .unwrap();
    let cache = CachedStore::new(probe.clone());
    let layer = tower_pat::AuthLayer::builder(cache.clone(), nuvlyx::live())
        .responder(tower_pat::response::EmptyBody)
        .build();
    let svc = layer.layer(service_fn(|_: http::Request<()>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(()))
    }));
    for _ in 0..20 {
        let req = http::Request::get("/orders")
            .extension(tower_pat::transport::TlsConnection)
            .header(
                "authorization",
                format!("Bearer {}", created.token.expose_secret()),
            )
            .body(())
            .unwrap();
        let res = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), http::StatusCode::OK);
    }
    assert_eq!(probe.uses.load(Ordering::SeqCst), 1);
    assert_eq!(probe.finds.load(Ordering::SeqCst), 1);
    let cached = answered_at_once(cache.find(created.record.id)).unwrap();
    assert!(cached.unwrap().unwrap().last_used_at.is_some());
    assert_eq!(
        probe.finds.load(Ordering::SeqCst),
        1,
        "served from the cache"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noting_a_use_after_an_outside_revocation_cannot_serve_the_old_record() {
    let probe = Probe::default();
    let id = mint(&probe.inner).await;
    let cache = CachedStore::new(probe.clone());
    assert!(cache.find(id).await.unwrap().unwrap().revoked_at.is_none());
    // Another process revokes; its change feed reaches the cache; then a
    // request that had already passed records its use.
    probe
        .inner
        .revoke(id, SystemTime::now(), &RevocationReason::Manual)
        .await
        .unwrap();
    cache.invalidator().invalidate(&Change::Token(id));
    cache.record_use(id, SystemTime::now(), None);
    let finds = probe.finds.load(Ordering::SeqCst);
    let found = cache.find(id).await.unwrap().unwrap();
    assert!(
        found.revoked_at.is_some(),
        "the stale entry must not be served"
    );
    assert_eq!(probe.finds.load(Ordering::SeqCst), finds + 1, "read again");
}

/// The lookup's answer if it is ready without waiting (from the cache), or
/// `None` if it would have to wait for the store.
fn answered_at_once(lookup: Lookup) -> Option<Result<Option<Arc<TokenRecord>>, StoreError>> {
    use std::future::Future;
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(lookup).poll(&mut cx) {
        std::task::Poll::Ready(answer) => Some(answer),
        std::task::Poll::Pending => None,
    }
}

/// `stats()` counts what the store behind saw: every miss is one `find`
/// there (or joins one), every hit is none; a revocation empties the entry.
#[tokio::test]
async fn stats_count_hits_misses_and_entries_as_the_store_behind_sees_them() {
    let probe = Probe::default();
    let id = mint(&probe.inner).await;
    let unknown = TokenId::from_bytes(rand_u64().to_be_bytes());
    let cache = CachedStore::new(probe.clone());
    let empty = cache.stats();
    assert_eq!(
        (
            empty.hits,
            empty.misses,
            empty.entries,
            empty.negative_entries
        ),
        (0, 0, 0, 0)
    );

    for _ in 0..5 {
        assert!(cache.find(id).await.unwrap().is_some());
        assert!(cache.find(unknown).await.unwrap().is_none());
    }
    let s = cache.stats();
    assert_eq!((s.hits, s.misses), (8, 2));
    assert_eq!((s.entries, s.negative_entries), (1, 1));
    assert_eq!(probe.finds.load(Ordering::SeqCst) as u64, s.misses);

    cache
        .revoke(id, SystemTime::now(), &RevocationReason::Manual)
        .await
        .unwrap();
    assert!(cache.find(id).await.unwrap().unwrap().revoked_at.is_some());
    let s = cache.stats();
    assert_eq!((s.hits, s.misses), (8, 3), "a revoked entry is asked again");
    assert_eq!(probe.finds.load(Ordering::SeqCst) as u64, s.misses);
}
