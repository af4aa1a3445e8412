//! The conformance suite's checks of per-token limits: kept, returned,
//! enforced, narrowed only, kept by rotation; client addresses forgotten.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http::header::AUTHORIZATION;
use http::{Request, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use super::{setup, suite_config, Harness, Ok200};
use crate::admin::{AdminError, NewToken};
use crate::auth::AuthLayer;
use crate::clock::Clock;
use crate::limit::{IpAllowlist, RateLimit};
use crate::response::EmptyBody;
use crate::store::{StoreErrorKind, TokenAdmin, TokenStore};
use crate::transport::{PeerAddr, TlsConnection};

fn list(s: &str) -> IpAllowlist {
    s.parse().expect("a valid allowlist")
}

#[doc(hidden)]
pub async fn limits_are_kept_enforced_and_only_narrowed<H: Harness>() {
    let Some((store, clock, m)) = setup::<H>().await else {
        return;
    };
    let budget: RateLimit = "2/min".parse().unwrap();
    let office = list("203.0.113.0/24, 2001:db8::/32");
    let limited = m
        .create(
            NewToken::new("limited", "store-a", ["orders:read"])
                .rate_limit(budget)
                .allowed_ips(office.clone()),
        )
        .await
        .unwrap();
    let free = m
        .create(NewToken::new("free", "store-a", ["orders:read"]))
        .await
        .unwrap();
    // Stored and returned, by lookup and by listing.
    // The store itself refuses a widening, whoever asks.
    let refused = store
        .set_limits(limited.record.id, None, Some(list("0.0.0.0/0")))
        .await;
    assert_eq!(refused.unwrap_err().kind(), StoreErrorKind::Conflict);
    let refused = store.set_limits(limited.record.id, None, None).await;
    assert_eq!(refused.unwrap_err().kind(), StoreErrorKind::Conflict);
    let found = store
        .find(limited.record.id)
        .await
        .unwrap()
        .expect("record");
    assert_eq!(found.rate_limit, Some(budget));
    assert_eq!(found.allowed_ips.as_ref(), Some(&office));
    let listed = m.list(Some("store-a")).await.unwrap();
    let row = listed.iter().find(|r| r.id == limited.record.id).unwrap();
    assert_eq!(
        (row.rate_limit, row.allowed_ips.as_ref()),
        (Some(budget), Some(&office))
    );
    let other = listed.iter().find(|r| r.id == free.record.id).unwrap();
    assert_eq!((other.rate_limit, other.allowed_ips.as_ref()), (None, None));

    // Enforced: from inside the list, twice, then 429; from outside, 403.
    let auth = AuthLayer::builder(store.clone(), suite_config().with_clock(clock.clone()))
        .responder(EmptyBody)
        .build();
    let mut app = auth.layer(Ok200);
    let mut call = |token: &str, peer: &str| {
        let req = Request::get("/orders")
            .extension(TlsConnection)
            .extension(PeerAddr(SocketAddr::new(peer.parse().unwrap(), 443)))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .body(())
            .unwrap();
        app.call(req)
    };
    let secret = limited.token.expose_secret();
    let statuses = [
        call(secret, "198.51.100.1").await.unwrap().status(),
        call(secret, "203.0.113.9").await.unwrap().status(),
        call(secret, "2001:db8::7").await.unwrap().status(),
        call(secret, "203.0.113.9").await.unwrap().status(),
    ];
    assert_eq!(
        statuses,
        [
            StatusCode::FORBIDDEN,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "outside the list, inside it twice (IPv4 and IPv6), then over the budget"
    );
    for _ in 0..3 {
        let res = call(free.token.expose_secret(), "198.51.100.1")
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "a token without limits");
    }

    // Narrowed, never widened; the budget changes either way.
    let narrower = list("203.0.113.0/25");
    m.set_limits(
        limited.record.id,
        Some("10/min".parse().unwrap()),
        Some(narrower.clone()),
    )
    .await
    .unwrap();
    for wider in [
        Some(list("203.0.113.0/24")),
        Some(list("203.0.113.0/25, 10.0.0.0/8")),
        None,
    ] {
        let refused = m.set_limits(limited.record.id, None, wider.clone()).await;
        assert!(
            matches!(refused, Err(AdminError::AllowlistWidened)),
            "{wider:?}: {refused:?}"
        );
    }
    let found = store
        .find(limited.record.id)
        .await
        .unwrap()
        .expect("record");
    assert_eq!(found.rate_limit, Some("10/min".parse().unwrap()));
    assert_eq!(found.allowed_ips.as_ref(), Some(&narrower));
    assert_eq!(
        call(secret, "203.0.113.200").await.unwrap().status(),
        StatusCode::FORBIDDEN,
        "the narrowed list is enforced at once"
    );

    // A rotation keeps them.
    let rotated = m
        .rotate(limited.record.id, Duration::from_secs(60))
        .await
        .unwrap();
    let successor = store
        .find(rotated.record.id)
        .await
        .unwrap()
        .expect("record");
    assert_eq!(successor.rate_limit, Some("10/min".parse().unwrap()));
    assert_eq!(successor.allowed_ips.as_ref(), Some(&narrower));
}

#[doc(hidden)]
pub async fn client_addresses_are_forgotten_after_30_days<H: Harness>() {
    let Some((store, clock, m)) = setup::<H>().await else {
        return;
    };
    let old = m
        .create(NewToken::new("old", "store-a", ["orders:read"]))
        .await
        .unwrap();
    let new = m
        .create(NewToken::new("new", "store-a", ["orders:read"]))
        .await
        .unwrap();
    let ip: IpAddr = "203.0.113.7".parse().unwrap();
    let now = clock.now();
    store.record_use(
        old.record.id,
        now - Duration::from_secs(31 * 86_400),
        Some(ip),
    );
    store.record_use(new.record.id, now, Some(ip));
    H::flush(&store).await;
    let listed = m.list(Some("store-a")).await.unwrap();
    let row = |id| listed.iter().find(|r| r.id == id).unwrap();
    assert_eq!(row(old.record.id).last_used_from, None, "kept past 30 days");
    // A store may keep no addresses at all; one that keeps them keeps the
    // right one.
    assert!(row(new.record.id).last_used_from.is_none_or(|a| a == ip));
}
