//! Counters through the `metrics` facade (feature `metrics`), read back
//! from a real recorder (`metrics-util`'s debugging recorder, installed for
//! the test's thread only).

mod common;
#[path = "common/recorder.rs"]
mod recorder;

use std::time::SystemTime;

use common::{bearer, https, send, Fixture};
use metrics_util::debugging::DebugValue;
use recorder::recorded;
use tower_pat::store::{Lookup, TokenStore};
use tower_pat::token::TokenId;
use tower_pat::{AuthLayer, MemoryStore};

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

    fn record_use(&self, id: TokenId, at: SystemTime, from: Option<std::net::IpAddr>) {
        self.0.record_use(id, at, from)
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
