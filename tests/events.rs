//! Lifecycle events: what the manager and the layer report, once each,
//! with ids and metadata only.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::{Request, Response, StatusCode};
use tower::{service_fn, Layer, ServiceExt};
use tower_pat::admin::{NewToken, TokenManager};
use tower_pat::events::Event;
use tower_pat::RevocationReason;
use tower_pat::{preset, AuthLayer, Clock, EmptyBody, ManualClock, MemoryStore};

/// A sink that keeps what it receives.
fn recorder() -> (
    impl Fn(&Event) + Clone + Send + Sync + 'static,
    Arc<Mutex<Vec<Event>>>,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let seen = seen.clone();
        move |e: &Event| seen.lock().unwrap().push(e.clone())
    };
    (sink, seen)
}

/// A manager on a manual clock whose events are recorded.
fn recorded_manager() -> (
    TokenManager<MemoryStore>,
    ManualClock,
    Arc<Mutex<Vec<Event>>>,
) {
    let clock = ManualClock::new(SystemTime::now());
    let (sink, seen) = recorder();
    let tokens = TokenManager::new(
        MemoryStore::new(),
        preset::nuvlyx_live().with_clock(clock.clone()),
    )
    .events(sink);
    (tokens, clock, seen)
}

/// [`take`], keeping a copy in `all`.
fn kept(seen: &Mutex<Vec<Event>>, all: &mut Vec<Event>) -> Vec<Event> {
    let taken = take(seen);
    all.extend(taken.iter().cloned());
    taken
}

fn take(seen: &Mutex<Vec<Event>>) -> Vec<Event> {
    std::mem::take(&mut *seen.lock().unwrap())
}

#[tokio::test]
async fn every_change_through_the_manager_is_reported_once_without_secrets() {
    let (tokens, clock, seen) = recorded_manager();
    // Every event this test sees, for the secret check at the end.
    let mut all = Vec::new();

    let created = tokens
        .create(NewToken::new("bot", "shop", ["orders:read"]).expires_in(Duration::from_secs(3600)))
        .await
        .unwrap();
    let secret = created.token.expose_secret().to_owned();
    let id = created.record.id;
    assert_eq!(
        kept(&seen, &mut all),
        [Event::TokenCreated {
            id,
            owner: "shop".parse().unwrap(),
            name: "bot".into(),
            scopes: created.record.scopes.clone(),
            expires_at: Some(clock.now() + Duration::from_secs(3600)),
        }]
    );

    let rotated = tokens.rotate(id, Duration::from_secs(600)).await.unwrap();
    let events = kept(&seen, &mut all);
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(matches!(&events[0], Event::TokenCreated { id, .. } if *id == rotated.record.id));
    assert_eq!(
        events[1],
        Event::TokenRotated {
            old: id,
            new: rotated.record.id,
            owner: "shop".parse().unwrap(),
            old_ends_at: Some(clock.now() + Duration::from_secs(600)),
        }
    );

    assert!(tokens.revoke(id).await.unwrap());
    assert!(!tokens.revoke(id).await.unwrap(), "already revoked");
    assert_eq!(
        kept(&seen, &mut all),
        [Event::TokenRevoked {
            id,
            reason: RevocationReason::Manual
        }],
        "a second revocation changes nothing and reports nothing"
    );

    tokens.suspend_owner("shop").await.unwrap();
    tokens.reinstate_owner("shop").await.unwrap();
    let events = kept(&seen, &mut all);
    assert_eq!(
        events.iter().map(Event::name).collect::<Vec<_>>(),
        ["owner.suspended", "owner.reinstated"]
    );

    // Failed changes report nothing.
    assert!(tokens
        .create(NewToken::new("x", "shop", ["order:read"]))
        .await
        .is_err());
    assert!(kept(&seen, &mut all).is_empty());

    // No event, printed in full, holds any part of the secret.
    let tokens2 = TokenManager::new(MemoryStore::new(), preset::nuvlyx_live());
    let printed = format!("{tokens2:?}");
    assert!(printed.contains("EventSink"));
    assert_eq!(all.len(), 6, "{all:?}");
    let shown = format!("{all:?} {:?}", Event::TokenExposed { id });
    for start in 25..=secret.len() - 16 {
        let window = &secret[start..start + 16];
        assert!(!shown.contains(window), "{window} in {shown}");
    }
}

#[tokio::test]
async fn expiring_soon_is_reported_once_per_token_and_threshold() {
    let day = Duration::from_secs(24 * 3600);
    let (tokens, clock, seen) = recorded_manager();
    let mint = |name: &'static str, lifetime: Option<Duration>| {
        let tokens = tokens.clone();
        async move {
            let mut req = NewToken::new(name, "shop", ["orders:read"]);
            if let Some(l) = lifetime {
                req = req.expires_in(l);
            }
            tokens.create(req).await.unwrap().record.id
        }
    };
    let in_ten_days = mint("a", Some(day * 10)).await;
    let in_two_days = mint("b", Some(day * 2)).await;
    let in_half_a_day = mint("c", Some(day / 2)).await;
    let _never = mint("d", None).await;
    let revoked = mint("e", Some(day / 2)).await;
    tokens.revoke(revoked).await.unwrap();
    take(&seen);

    let thresholds = [day * 7, day];
    let reported = |events: Vec<Event>| {
        let mut v: Vec<_> = events
            .into_iter()
            .map(|e| match e {
                Event::TokenExpiringSoon { id, within, .. } => (id, within),
                other => panic!("{other:?}"),
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(tokens.report_expiring(&thresholds).await.unwrap(), 3);
    let mut want = vec![
        (in_two_days, day * 7),
        (in_half_a_day, day * 7),
        (in_half_a_day, day),
    ];
    want.sort();
    assert_eq!(reported(take(&seen)), want);

    // Scanning again reports nothing new, however often.
    for _ in 0..3 {
        assert_eq!(tokens.report_expiring(&thresholds).await.unwrap(), 0);
    }
    assert!(take(&seen).is_empty());

    // Four days on: "a" has six days left, "b" and "c" have expired.
    clock.advance(day * 4);
    assert_eq!(tokens.report_expiring(&thresholds).await.unwrap(), 1);
    assert_eq!(reported(take(&seen)), [(in_ten_days, day * 7)]);
    // Five more: one day left for "a".
    clock.advance(day * 5);
    assert_eq!(tokens.report_expiring(&thresholds).await.unwrap(), 1);
    assert_eq!(reported(take(&seen)), [(in_ten_days, day)]);
    // A clone of the manager shares what was reported.
    assert_eq!(
        tokens.clone().report_expiring(&thresholds).await.unwrap(),
        0
    );
}

#[tokio::test]
async fn a_token_over_plain_http_is_reported_as_exposed() {
    let (sink, seen) = recorder();
    let store = MemoryStore::new();
    let minted = TokenManager::new(store.clone(), preset::nuvlyx_live())
        .create(NewToken::new("bot", "shop", ["orders:read"]))
        .await
        .unwrap();
    let svc = AuthLayer::new(store, preset::nuvlyx_live())
        .events(sink)
        .responder(EmptyBody)
        .layer(service_fn(|_: Request<()>| async {
            Ok::<_, std::convert::Infallible>(Response::new(()))
        }));
    let plain = |auth: &str| {
        Request::get("/orders")
            .header("authorization", auth)
            .body(())
            .unwrap()
    };
    let bearer = format!("Bearer {}", minted.token.expose_secret());
    let res = svc.clone().oneshot(plain(&bearer)).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        take(&seen),
        [Event::TokenExposed {
            id: minted.record.id
        }]
    );
    // Junk over plain HTTP is refused the same way, and is no token.
    let res = svc.oneshot(plain("Bearer nvl_live_junk")).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(take(&seen).is_empty());
}
