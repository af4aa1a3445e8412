//! The conformance suite's lifecycle checks: create, find, list, revoke,
//! rotate, suspend, expire, last use.

use std::time::Duration;

use http::StatusCode;

use super::{app, setup, status, suite_config, Harness};
use crate::admin::{AdminError, CreatedToken, NewToken};
use crate::clock::Clock;
use crate::store::{RevocationReason, StoreErrorKind, TokenAdmin, TokenRecord, TokenStore};

#[doc(hidden)]
pub async fn create_find_list<H: Harness>() {
    let Some((store, clock, m)) = setup::<H>().await else {
        return;
    };
    let c = m
        .create(
            NewToken::new("order bot", "store-a", ["orders:read", "wallet:read"])
                .expires_in(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    m.create(NewToken::new("other", "store-b", ["orders:read"]))
        .await
        .unwrap();
    let found = store.find(c.record.id).await.unwrap().expect("record");
    assert!(found.digest.verify(c.token.expose_secret()));
    assert_eq!(&*found.name, "order bot");
    assert_eq!(found.owner.as_str(), "store-a");
    assert_eq!(found.scopes.to_space_separated(), "orders:read wallet:read");
    assert_eq!(found.created_at, clock.now());
    assert_eq!(
        found.expires_at,
        Some(clock.now() + Duration::from_secs(3600))
    );
    assert!(found.revoked_at.is_none() && !found.owner_suspended);

    let listed = m.list(Some("store-a")).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, c.record.id);
    assert!(listed[0].preview.starts_with("kit_live_") && listed[0].preview.ends_with('…'));
    assert!(!format!("{listed:?}").contains(&c.token.expose_secret()[20..40]));
    assert_eq!(m.list(None).await.unwrap().len(), 2);
    assert_eq!(
        status(
            &app(&store, suite_config().with_clock(clock.clone())),
            c.token.expose_secret()
        )
        .await,
        StatusCode::OK
    );
}

#[doc(hidden)]
pub async fn revocation_is_permanent<H: Harness>() {
    let Some((store, clock, m)) = setup::<H>().await else {
        return;
    };
    let c = m
        .create(NewToken::new("t", "store-a", ["orders:read"]))
        .await
        .unwrap();
    let app = app(&store, suite_config().with_clock(clock.clone()));
    assert_eq!(status(&app, c.token.expose_secret()).await, StatusCode::OK);
    assert!(m.revoke(c.record.id).await.unwrap());
    assert!(
        !m.revoke(c.record.id).await.unwrap(),
        "revoking twice is harmless"
    );
    assert_eq!(
        status(&app, c.token.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
    // No insert can bring it back: the id exists.
    let again = TokenRecord::new(
        c.record.id,
        c.record.digest,
        c.record.owner.clone(),
        "t",
        c.record.scopes.clone(),
        clock.now(),
    );
    assert_eq!(
        store.insert(again).await.unwrap_err().kind(),
        StoreErrorKind::Conflict
    );
    assert_eq!(
        status(&app, c.token.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
    let r = store.find(c.record.id).await.unwrap().unwrap();
    assert!(r.revoked_at.is_some());
    assert_eq!(r.revoked_reason, Some(RevocationReason::Manual));
    // The reason (and a leak's address) is kept, and a second revocation
    // changes neither it nor the time.
    let leaked = m
        .create(NewToken::new("leaked", "store-a", ["orders:read"]))
        .await
        .unwrap();
    let url = "https://example.com/acme/bot/blob/1f2e/config.yml";
    let because = RevocationReason::Leaked {
        url: Some(url.to_owned()),
    };
    assert!(store
        .revoke(leaked.record.id, clock.now(), &because)
        .await
        .unwrap());
    let first = store.find(leaked.record.id).await.unwrap().unwrap();
    clock.advance(Duration::from_secs(5));
    assert!(!store
        .revoke(leaked.record.id, clock.now(), &RevocationReason::Manual)
        .await
        .unwrap());
    let kept = store.find(leaked.record.id).await.unwrap().unwrap();
    assert_eq!(kept.revoked_reason, Some(because));
    assert_eq!(
        kept.revoked_reason.as_ref().and_then(|r| r.url()),
        Some(url)
    );
    assert_eq!(kept.revoked_at, first.revoked_at, "the first time stays");
    let listed = store.list(None).await.unwrap();
    let in_list = listed.iter().find(|r| r.id == leaked.record.id).unwrap();
    assert_eq!(
        in_list.revoked_reason, kept.revoked_reason,
        "list shows it too"
    );
    // Revoking by the full token works too, and unknown ids are errors.
    let d = m
        .create(NewToken::new("t2", "store-a", ["orders:read"]))
        .await
        .unwrap();
    assert!(m.revoke_token(d.token.expose_secret()).await.unwrap());
    let unknown = suite_config().format().mint();
    assert!(matches!(
        m.revoke(unknown.id).await,
        Err(AdminError::UnknownToken(_))
    ));
}

#[doc(hidden)]
pub async fn rotation_keeps_the_old_token_for_the_grace_only<H: Harness>() {
    let Some((store, clock, m)) = setup::<H>().await else {
        return;
    };
    let app = app(&store, suite_config().with_clock(clock.clone()));
    let old = m
        .create(NewToken::new("bot", "store-a", ["orders:read"]))
        .await
        .unwrap();
    let new = m
        .rotate(old.record.id, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(&*new.record.name, "bot");
    assert_eq!(new.record.owner, old.record.owner);
    assert_eq!(new.record.scopes, old.record.scopes);
    assert_ne!(new.record.id, old.record.id);
    assert_eq!(
        status(&app, old.token.expose_secret()).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&app, new.token.expose_secret()).await,
        StatusCode::OK
    );
    clock.advance(Duration::from_secs(600));
    assert_eq!(
        status(&app, old.token.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&app, new.token.expose_secret()).await,
        StatusCode::OK
    );
    // No grace: the old token is revoked at once, and the record says why.
    let newer = m.rotate(new.record.id, Duration::ZERO).await.unwrap();
    assert_eq!(
        status(&app, new.token.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&app, newer.token.expose_secret()).await,
        StatusCode::OK
    );
    let ended = store.find(new.record.id).await.unwrap().unwrap();
    assert_eq!(
        ended.revoked_reason,
        Some(RevocationReason::RotationGraceEnded)
    );
}

#[doc(hidden)]
pub async fn one_live_token_per_name_and_rotations_keep_their_link<H: Harness>() {
    let Some((store, clock, m)) = setup::<H>().await else {
        return;
    };
    let new = |name: &str, owner: &str| NewToken::new(name, owner, ["orders:read"]);
    let name_in_use =
        |r: Result<CreatedToken, AdminError>| matches!(r, Err(AdminError::NameInUse { .. }));
    let a = m.create(new("ci", "store-a")).await.unwrap();
    assert!(name_in_use(m.create(new("ci", "store-a")).await));
    // The store refuses it too, whoever inserts.
    let format = suite_config();
    let minted = format.format().mint();
    let mut twin = TokenRecord::new(
        minted.id,
        minted.digest,
        a.record.owner.clone(),
        "ci",
        a.record.scopes.clone(),
        clock.now(),
    );
    assert_eq!(
        store.insert(twin.clone()).await.unwrap_err().kind(),
        StoreErrorKind::NameInUse
    );
    // Revoked or expired already: it holds no name.
    twin.revoked_at = Some(clock.now());
    twin.revoked_reason = Some(RevocationReason::Manual);
    store.insert(twin).await.unwrap();
    // Another owner, another name: free.
    m.create(new("ci", "store-b")).await.unwrap();
    m.create(new("ci 2", "store-a")).await.unwrap();

    // A rotation's successor shares the name, and says whom it replaced.
    let b = m
        .rotate(a.record.id, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(b.record.rotated_from, Some(a.record.id));
    let stored = store.find(b.record.id).await.unwrap().unwrap();
    assert_eq!(stored.rotated_from, Some(a.record.id));
    let listed = store.list(Some(&a.record.owner)).await.unwrap();
    let link = |id| listed.iter().find(|r| r.id == id).unwrap().rotated_from;
    assert_eq!(link(b.record.id), Some(a.record.id));
    assert_eq!(link(a.record.id), None);
    // A third token while both hold the name: refused; rotating the
    // successor while the first is still in its grace: allowed.
    assert!(name_in_use(m.create(new("ci", "store-a")).await));
    let c = m
        .rotate(b.record.id, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(c.record.rotated_from, Some(b.record.id));
    clock.advance(Duration::from_secs(601));
    assert!(
        name_in_use(m.create(new("ci", "store-a")).await),
        "c holds it"
    );
    m.revoke(c.record.id).await.unwrap();
    m.create(new("ci", "store-a")).await.unwrap();
    // An expired token frees its name.
    m.create(new("short", "store-a").expires_in(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(name_in_use(m.create(new("short", "store-a")).await));
    clock.advance(Duration::from_secs(10));
    m.create(new("short", "store-a")).await.unwrap();

    // Concurrent creations with one name: exactly one wins.
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let m = m.clone();
            tokio::spawn(async move {
                m.create(NewToken::new("race", "store-a", ["orders:read"]))
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(AdminError::NameInUse { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won, 1, "one live token named race");
}

#[doc(hidden)]
pub async fn rotation_never_extends_the_original_expiry<H: Harness>() {
    let Some((store, clock, m)) = setup::<H>().await else {
        return;
    };
    let old = m
        .create(
            NewToken::new("bot", "store-a", ["orders:read"]).expires_in(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    m.rotate(old.record.id, Duration::from_secs(3600))
        .await
        .unwrap();
    let r = store.find(old.record.id).await.unwrap().unwrap();
    assert_eq!(r.expires_at, Some(clock.now() + Duration::from_secs(60)));
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        status(
            &app(&store, suite_config().with_clock(clock.clone())),
            old.token.expose_secret()
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
}

#[doc(hidden)]
pub async fn suspension_disables_all_owner_tokens_until_reinstated<H: Harness>() {
    let Some((store, clock, m)) = setup::<H>().await else {
        return;
    };
    let app = app(&store, suite_config().with_clock(clock.clone()));
    let a1 = m
        .create(NewToken::new("a1", "store-a", ["orders:read"]))
        .await
        .unwrap();
    let a2 = m
        .create(NewToken::new("a2", "store-a", ["orders:read"]))
        .await
        .unwrap();
    let b = m
        .create(NewToken::new("b", "store-b", ["orders:read"]))
        .await
        .unwrap();
    m.suspend_owner("store-a").await.unwrap();
    assert!(store.is_owner_suspended(&a1.record.owner).await.unwrap());
    for t in [&a1, &a2] {
        assert_eq!(
            status(&app, t.token.expose_secret()).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(status(&app, b.token.expose_secret()).await, StatusCode::OK);
    m.reinstate_owner("store-a").await.unwrap();
    for t in [&a1, &a2] {
        assert_eq!(status(&app, t.token.expose_secret()).await, StatusCode::OK);
    }
}

#[doc(hidden)]
pub async fn expiry_follows_the_injected_clock<H: Harness>() {
    let Some((store, clock, m)) = setup::<H>().await else {
        return;
    };
    let app = app(&store, suite_config().with_clock(clock.clone()));
    let c = m
        .create(NewToken::new("t", "store-a", ["orders:read"]).expires_in(Duration::from_secs(30)))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(29));
    assert_eq!(status(&app, c.token.expose_secret()).await, StatusCode::OK);
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        status(&app, c.token.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
}

#[doc(hidden)]
pub async fn last_use_is_recorded_off_the_request_path<H: Harness>() {
    let Some((store, clock, m)) = setup::<H>().await else {
        return;
    };
    let c = m
        .create(NewToken::new("t", "store-a", ["orders:read"]))
        .await
        .unwrap();
    assert_eq!(
        status(
            &app(&store, suite_config().with_clock(clock.clone())),
            c.token.expose_secret()
        )
        .await,
        StatusCode::OK
    );
    H::flush(&store).await;
    let r = store.find(c.record.id).await.unwrap().unwrap();
    assert_eq!(r.last_used_at, Some(clock.now()));
}
