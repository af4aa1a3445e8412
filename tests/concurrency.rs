//! 10,000 concurrent requests with mixed valid and invalid tokens: every
//! answer is the right one, none is lost.

mod common;

use std::time::SystemTime;

use common::*;
use http::StatusCode;
use tower_pat::store::{RevocationReason, TokenAdmin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_mixed_requests_are_all_answered_correctly() {
    let f = Fixture::new();
    let (reader, _) = f.token(&["orders:read"]).await;
    let (wallet, _) = f.token(&["wallet:read"]).await;
    let (revoked, rid) = f.token(&["orders:read"]).await;
    f.store
        .inner
        .revoke(rid, SystemTime::now(), &RevocationReason::Manual)
        .await
        .unwrap();
    let unknown = nuvlyx::live()
        .format()
        .clone()
        .mint()
        .token
        .expose_secret()
        .to_owned();
    let cases = [
        (reader.clone(), StatusCode::OK),
        (wallet, StatusCode::FORBIDDEN),
        (revoked, StatusCode::UNAUTHORIZED),
        (unknown, StatusCode::UNAUTHORIZED),
        (format!("{reader}0"), StatusCode::UNAUTHORIZED),
        (String::from("garbage"), StatusCode::UNAUTHORIZED),
    ];
    let app = f.app();
    let mut tasks = Vec::with_capacity(10_000);
    for i in 0..10_000 {
        let (token, want) = cases[i % cases.len()].clone();
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let res = send(&app, bearer("/orders", &token)).await;
            (i, res.status(), want)
        }));
    }
    let mut answered = 0;
    for t in tasks {
        let (i, got, want) = t.await.unwrap();
        assert_eq!(got, want, "request {i}");
        answered += 1;
    }
    assert_eq!(answered, 10_000);
}
