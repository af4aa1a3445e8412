//! The conformance suite's store-contract checks: concurrency, nothing in
//! clear at rest, the `TokenAdmin` rules, and corrupt records.

use std::time::Duration;

use super::{app, setup, status, suite_config, Harness};
use crate::admin::NewToken;
use crate::clock::Clock;
use crate::store::{RevocationReason, StoreErrorKind, TokenAdmin, TokenRecord, TokenStore};

#[doc(hidden)]
pub async fn concurrent_minting_and_revoking<H: Harness>() {
    let Some((_, _, m)) = setup::<H>().await else {
        return;
    };
    let mut tasks = Vec::new();
    for i in 0..100 {
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            let c = m
                .create(NewToken::new(&format!("t{i}"), "store-a", ["orders:read"]))
                .await
                .unwrap();
            assert!(m.revoke(c.record.id).await.unwrap());
            c.record.id
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100);
    let listed = m.list(Some("store-a")).await.unwrap();
    assert_eq!(listed.len(), 100);
    assert!(listed.iter().all(|r| r.revoked_at.is_some()));
}

#[doc(hidden)]
pub async fn nothing_in_clear_at_rest<H: Harness>() {
    let Some((store, _, m)) = setup::<H>().await else {
        return;
    };
    let mut tokens = Vec::new();
    for i in 0..5 {
        let c = m
            .create(NewToken::new(&format!("t{i}"), "store-a", ["orders:read"]))
            .await
            .unwrap();
        tokens.push(c.token.expose_secret().to_owned());
    }
    m.revoke_token(&tokens[0]).await.unwrap();
    let dump = H::dump(&store).await;
    assert!(dump.len() > 100, "the dump must contain the rows");
    let text = String::from_utf8_lossy(&dump);
    for t in &tokens {
        // Windows holding at least one secret character (the id is public).
        let first_secret = t.len() - 56;
        for start in first_secret - 15..=t.len() - 16 {
            let w = &t[start..start + 16];
            assert!(!text.contains(w), "found {w} at rest");
        }
    }
}

/// The [`TokenAdmin`] rules the layer and the manager rely on.
#[doc(hidden)]
pub async fn admin_contract<H: Harness>() {
    let Some((store, clock, m)) = setup::<H>().await else {
        return;
    };
    let first = m
        .create(
            NewToken::new("first", "store-a", ["orders:read"]).expires_in(Duration::from_secs(600)),
        )
        .await
        .unwrap();
    clock.advance(Duration::from_secs(1));
    let second = m
        .create(NewToken::new("second", "store-a", ["orders:read"]))
        .await
        .unwrap();
    // Newest first.
    let listed = store.list(None).await.unwrap();
    let ids: Vec<_> = listed.iter().map(|r| r.id).collect();
    assert_eq!(
        ids,
        [second.record.id, first.record.id],
        "list is newest first"
    );
    // An existing id is a conflict, and the stored record is unchanged.
    let mut again = TokenRecord::new(
        first.record.id,
        first.record.digest,
        "store-b".parse().unwrap(),
        "replacement",
        first.record.scopes.clone(),
        clock.now(),
    );
    again.expires_at = None;
    assert_eq!(
        store.insert(again).await.unwrap_err().kind(),
        StoreErrorKind::Conflict
    );
    let kept = store.find(first.record.id).await.unwrap().unwrap();
    assert_eq!((&*kept.name, kept.owner.as_str()), ("first", "store-a"));
    // cap_expiry shortens, never extends, and sets an expiry where none was.
    let expiry = first.record.expires_at.unwrap();
    store
        .cap_expiry(first.record.id, expiry + Duration::from_secs(3600))
        .await
        .unwrap();
    let r = store.find(first.record.id).await.unwrap().unwrap();
    assert_eq!(r.expires_at, Some(expiry), "cap_expiry must not extend");
    store
        .cap_expiry(first.record.id, expiry - Duration::from_secs(60))
        .await
        .unwrap();
    let r = store.find(first.record.id).await.unwrap().unwrap();
    assert_eq!(r.expires_at, Some(expiry - Duration::from_secs(60)));
    let cap = clock.now() + Duration::from_secs(30);
    store.cap_expiry(second.record.id, cap).await.unwrap();
    let r = store.find(second.record.id).await.unwrap().unwrap();
    assert_eq!(r.expires_at, Some(cap));
    // find fills in owner_suspended, in both directions.
    let owner = first.record.owner.clone();
    store.set_owner_suspended(&owner, true).await.unwrap();
    assert!(
        store
            .find(first.record.id)
            .await
            .unwrap()
            .unwrap()
            .owner_suspended
    );
    assert!(store.is_owner_suspended(&owner).await.unwrap());
    store.set_owner_suspended(&owner, false).await.unwrap();
    assert!(
        !store
            .find(first.record.id)
            .await
            .unwrap()
            .unwrap()
            .owner_suspended
    );
    // Unknown ids: nothing found, and changing one is NotFound.
    let unknown = suite_config().format().mint().id;
    assert!(store.find(unknown).await.unwrap().is_none());
    assert_eq!(
        store
            .revoke(unknown, clock.now(), &RevocationReason::Manual)
            .await
            .unwrap_err()
            .kind(),
        StoreErrorKind::NotFound
    );
    assert_eq!(
        store
            .cap_expiry(unknown, clock.now())
            .await
            .unwrap_err()
            .kind(),
        StoreErrorKind::NotFound
    );
}

#[doc(hidden)]
pub async fn a_corrupt_record_answers_503_only_to_the_holder_of_the_secret<H: Harness>() {
    let Some((store, _clock, m)) = setup::<H>().await else {
        return;
    };
    let scopes_broken = m
        .create(NewToken::new("a", "o", ["orders:read"]))
        .await
        .unwrap();
    let digest_broken = m
        .create(NewToken::new("b", "o", ["orders:read"]))
        .await
        .unwrap();
    if !H::corrupt_scopes(&store, scopes_broken.record.id).await {
        eprintln!("skipped: this store's records cannot be damaged from outside");
        return;
    }
    let app = app(&store, suite_config());
    // Read back: a store error (the layer fails closed), never a panic.
    assert_eq!(
        store
            .find(scopes_broken.record.id)
            .await
            .unwrap_err()
            .kind(),
        StoreErrorKind::Corrupt
    );
    // The holder of the secret learns that something is wrong (503); a
    // caller with the id and a wrong secret gets the ordinary 401, so a
    // broken record is no oracle for guessing.
    let token = scopes_broken.token.expose_secret();
    assert_eq!(status(&app, token).await, 503);
    assert_eq!(status(&app, &wrong_secret(token)).await, 401);
    if H::corrupt_digest(&store, digest_broken.record.id).await {
        assert_eq!(
            store
                .find(digest_broken.record.id)
                .await
                .unwrap_err()
                .kind(),
            StoreErrorKind::Corrupt
        );
        // Nothing to check a secret against: 401 to everyone.
        let token = digest_broken.token.expose_secret();
        assert_eq!(status(&app, token).await, 401);
        assert_eq!(status(&app, &wrong_secret(token)).await, 401);
    }
    // The other records are unaffected.
    let fine = m
        .create(NewToken::new("c", "o", ["orders:read"]))
        .await
        .unwrap();
    assert_eq!(status(&app, fine.token.expose_secret()).await, 200);
}

/// `token` with the same id, another secret and a valid checksum: what a
/// caller who knows the id (ids are not secret) can send. For tests of a
/// store's own failure modes, not part of the API.
#[doc(hidden)]
pub fn wrong_secret(token: &str) -> String {
    // The last 72 characters are the hex of id (8 bytes), secret (24) and
    // CRC-32 (4) of the two.
    let (head, body) = token.split_at(token.len() - 72);
    let mut raw: Vec<u8> = (0..36)
        .map(|i| u8::from_str_radix(&body[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    raw[8..32].iter_mut().for_each(|b| *b ^= 0x5a);
    let crc = crc32fast::hash(&raw[..32]).to_be_bytes();
    raw[32..].copy_from_slice(&crc);
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    format!("{head}{hex}")
}
