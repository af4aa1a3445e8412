//! The PostgreSQL store's counters (feature `metrics`, with tower-pat's
//! own), read back from a real recorder. Opt-in, as the store tests:
//! `DATABASE_URL`.

#[path = "common/pg.rs"]
#[allow(dead_code)]
mod pg;
#[path = "common/pg_witness.rs"]
#[allow(dead_code)]
mod pg_witness;
#[path = "../../../tests/common/recorder.rs"]
mod recorder;

use metrics_util::debugging::DebugValue;
use metrics_util::MetricKind;
use recorder::recorded;
use tower_pat::store::TokenStore;

/// PostgreSQL (opt-in: `DATABASE_URL`, as the store tests): the feed's
/// health, the scans of the filter of known ids, the ids it refused, and
/// its false positives, each from a real event.
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
