use super::*;
use crate::{clock::ManualClock, store::MemoryStore, store::TokenStore};

fn manager() -> TokenManager<MemoryStore> {
    TokenManager::new(MemoryStore::new(), crate::testing::live())
}

#[tokio::test(flavor = "current_thread")]
async fn names_with_control_invisible_or_bidi_characters_are_refused() {
    let tokens = manager();
    for bad in [
        "order\u{202E}tob",
        "a\u{2066}b\u{2069}",
        "bell\u{7}",
        "new\nline",
        "zero\u{200B}width",
        "\u{FEFF}bom",
        "rlm\u{200F}",
        "alm\u{061C}",
    ] {
        let r = tokens
            .create(NewToken::new(bad, "o", ["orders:read"]))
            .await;
        assert!(matches!(r, Err(AdminError::InvalidName)), "{bad:?}");
    }
    assert!(
        tokens.list(None).await.unwrap().is_empty(),
        "nothing written"
    );
    for good in [
        "order bot",
        "Bestellungen – Bot",
        "注文ボット",
        "bot 🤖",
        "שלום",
    ] {
        tokens
            .create(NewToken::new(good, "o", ["orders:read"]))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_grace_too_long_for_the_clock_keeps_the_old_token_working() {
    let clock = ManualClock::new(std::time::SystemTime::now());
    let tokens = TokenManager::new(
        MemoryStore::new(),
        crate::testing::live().with_clock(clock.clone()),
    );
    let old = tokens
        .create(NewToken::new("t", "o", ["orders:read"]))
        .await
        .unwrap();
    tokens.rotate(old.record.id, Duration::MAX).await.unwrap();
    let after = tokens.store().find(old.record.id).await.unwrap().unwrap();
    assert_eq!(after.expires_at, None, "never ended at once");

    // With an expiry, a long grace never extends it.
    let expiring = tokens
        .create(NewToken::new("t2", "o", ["orders:read"]).expires_in(Duration::from_secs(3600)))
        .await
        .unwrap();
    tokens
        .rotate(expiring.record.id, Duration::from_secs(u64::MAX / 2))
        .await
        .unwrap();
    let after = tokens
        .store()
        .find(expiring.record.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.expires_at, expiring.record.expires_at);
}
