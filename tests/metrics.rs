//! Counters through the `metrics` facade (feature `metrics`), read back
//! from a real recorder (`metrics-util`'s debugging recorder, installed for
//! the test's thread only).

mod common;

use std::collections::HashMap;
use std::time::SystemTime;

use common::{bearer, https, send, Fixture};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::{CompositeKey, MetricKind};
use tower_pat::store::{Lookup, TokenStore};
use tower_pat::token::TokenId;
use tower_pat::{AuthLayer, MemoryStore};

/// Runs `test` on a current-thread runtime with a recorder of its own,
/// and returns what was recorded.
fn recorded<F: std::future::Future<Output = ()>>(test: impl FnOnce() -> F) -> Snapshot {
    let recorder = DebuggingRecorder::new();
    let snapshotter: Snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(test())
    });
    Snapshot(
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| (key, value))
            .collect(),
    )
}

struct Snapshot(HashMap<CompositeKey, DebugValue>);

impl Snapshot {
    /// The value of counter `name` whose labels are exactly `labels`.
    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.find(MetricKind::Counter, name, labels)
            .map(|v| match v {
                DebugValue::Counter(n) => *n,
                other => panic!("{name} is not a counter: {other:?}"),
            })
            .unwrap_or(0)
    }

    fn histogram_len(&self, name: &str) -> usize {
        match self.find(MetricKind::Histogram, name, &[]) {
            Some(DebugValue::Histogram(values)) => values.len(),
            Some(other) => panic!("{name} is not a histogram: {other:?}"),
            None => 0,
        }
    }

    fn find(&self, kind: MetricKind, name: &str, labels: &[(&str, &str)]) -> Option<&DebugValue> {
        self.0
            .iter()
            .find(|(key, _)| {
                let k = key.key();
                key.kind() == kind
                    && k.name() == name
                    && k.labels().count() == labels.len()
                    && labels
                        .iter()
                        .all(|(n, v)| k.labels().any(|l| l.key() == *n && l.value() == *v))
            })
            .map(|(_, v)| v)
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.0.keys().map(|k| k.key().name().to_owned()).collect();
        names.sort();
        names.dedup();
        names
    }
}

#[test]
fn each_rejection_is_counted_once_by_its_reason_and_successes_are_not() {
    let snapshot = recorded(|| async {
        let f = Fixture::new();
        let (orders, _) = f.token(&["orders:read"]).await;
        let app = f.app();
        let missing = https("/orders").body(axum::body::Body::empty()).unwrap();
        assert_eq!(send(&app, missing).await.status(), 401);
        assert_eq!(send(&app, bearer("/orders", "nope")).await.status(), 401);
        let unknown = nuvlyx::live().format().mint().token;
        for _ in 0..3 {
            assert_eq!(
                send(&app, bearer("/orders", unknown.expose_secret()))
                    .await
                    .status(),
                401
            );
        }
        assert_eq!(send(&app, bearer("/wallet", &orders)).await.status(), 403);
        for _ in 0..5 {
            assert_eq!(send(&app, bearer("/orders", &orders)).await.status(), 200);
        }
    });
    let rejections = |reason| snapshot.counter("tower_pat_rejections_total", &[("reason", reason)]);
    assert_eq!(rejections("missing_credentials"), 1);
    assert_eq!(rejections("invalid_format"), 1);
    assert_eq!(rejections("unknown_token"), 3);
    assert_eq!(rejections("insufficient_scope"), 1);
    let total: u64 = snapshot
        .0
        .iter()
        .filter(|(k, _)| k.key().name() == "tower_pat_rejections_total")
        .map(|(_, v)| match v {
            DebugValue::Counter(n) => *n,
            _ => 0,
        })
        .sum();
    assert_eq!(
        total,
        6,
        "five successes counted nowhere: {:?}",
        snapshot.names()
    );
}

/// A store that answers after a yield, as a database would.
#[derive(Clone, Default)]
struct Remote(MemoryStore);

impl TokenStore for Remote {
    fn find(&self, id: TokenId) -> Lookup {
        let inner = self.0.clone();
        Lookup::pending(async move {
            tokio::task::yield_now().await;
            inner.find(id).await
        })
    }

    fn record_use(&self, id: TokenId, at: SystemTime) {
        self.0.record_use(id, at)
    }
}

#[test]
fn lookups_that_take_io_are_timed_and_answers_from_memory_are_not() {
    let snapshot = recorded(|| async {
        let remote = Remote::default();
        let admin = tower_pat::admin::TokenManager::new(remote.0.clone(), nuvlyx::live());
        let token = admin
            .create(tower_pat::admin::NewToken::new(
                "bot",
                "shop",
                ["orders:read"],
            ))
            .await
            .unwrap()
            .token;
        let app = common::app_with(AuthLayer::builder(remote.clone(), nuvlyx::live()));
        for _ in 0..4 {
            let res = send(&app, bearer("/orders", token.expose_secret())).await;
            assert_eq!(res.status(), 200);
        }
        // The same token through a store that answers from memory.
        let memory = common::app_with(AuthLayer::builder(remote.0.clone(), nuvlyx::live()));
        for _ in 0..3 {
            let res = send(&memory, bearer("/orders", token.expose_secret())).await;
            assert_eq!(res.status(), 200);
        }
    });
    assert_eq!(snapshot.histogram_len("tower_pat_store_lookup_seconds"), 4);
}

#[cfg(feature = "postgres")]
#[path = "common/pg.rs"]
#[allow(dead_code)]
mod pg;
#[cfg(feature = "postgres")]
#[path = "common/pg_witness.rs"]
#[allow(dead_code)]
mod pg_witness;

/// PostgreSQL (opt-in: `DATABASE_URL`, as the store tests): the feed's
/// health, the scans of the filter of known ids, the ids it refused, and
/// its false positives, each from a real event.
#[cfg(all(feature = "postgres", feature = "cache"))]
#[test]
fn the_postgres_feed_and_the_filter_of_known_ids_are_counted() {
    use std::time::Duration;
    use tower_pat::store::CachedStore;

    let Some(url) = pg::database_url() else {
        return;
    };
    let schema = format!("tp_metrics_{}", std::process::id());
    let snapshot = recorded(|| async move {
        let (store, admin) = pg::fresh_schema(&url, &schema).await;
        let tokens = tower_pat::admin::TokenManager::new(store.clone(), nuvlyx::live());
        let doomed = tokens
            .create(tower_pat::admin::NewToken::new(
                "doomed",
                "shop",
                ["orders:read"],
            ))
            .await
            .unwrap();
        let cache = CachedStore::new(store.clone());
        let _listening = store
            .listen(cache.invalidator(), Duration::from_millis(200))
            .await
            .unwrap();

        // Made-up ids: answered by the filter (at most a few pass it).
        let mut found = 0;
        for id in pg_witness::made_up_ids(200) {
            found += usize::from(store.find(id).await.unwrap().is_some());
        }
        assert_eq!(found, 0);

        // A row deleted around the store: the filter still holds its id,
        // so its lookup reaches the table and finds nothing.
        sqlx::query("DELETE FROM tower_pat_tokens WHERE name = 'doomed'")
            .execute(store.pool())
            .await
            .unwrap();
        assert!(store.find(doomed.record.id).await.unwrap().is_none());

        // The feed's connection dies; the listener reconnects.
        pg::kill_listeners(admin.pool(), &schema).await;
        // Back when a change made now reaches the cache.
        let fresh = tokens
            .create(tower_pat::admin::NewToken::new(
                "fresh",
                "shop",
                ["orders:read"],
            ))
            .await
            .unwrap();
        assert!(cache.find(fresh.record.id).await.unwrap().is_some());
        tokens.revoke(fresh.record.id).await.unwrap();
        pg::await_revoked(
            &cache,
            fresh.record.id,
            Duration::from_secs(10),
            "the feed did not come back",
        )
        .await;
        // The gauge is set when the subscription is back; give it a beat.
        tokio::time::sleep(Duration::from_millis(300)).await;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(admin.pool())
            .await
            .unwrap();
    });
    assert!(
        snapshot.counter("tower_pat_feed_losses_total", &[("channel", "postgres")]) >= 1,
        "{:?}",
        snapshot.names()
    );
    match snapshot.find(
        MetricKind::Gauge,
        "tower_pat_feed_up",
        &[("channel", "postgres")],
    ) {
        Some(DebugValue::Gauge(up)) => assert_eq!(up.into_inner(), 1.0),
        other => panic!("tower_pat_feed_up: {other:?}"),
    }
    assert!(snapshot.counter("tower_pat_filter_scans_total", &[("outcome", "ok")]) >= 1);
    let refused = snapshot.counter(
        "tower_pat_filter_unknown_ids_total",
        &[("answer", "refused")],
    );
    assert!(refused >= 190, "refused by the filter: {refused} of 200");
    assert!(snapshot.counter("tower_pat_filter_false_positives_total", &[]) >= 1);
}
