//! Secret-holding types: no `==`, no `Display`, redacted `Debug`, zeroized
//! on drop.

use tower_pat::admin::{NewToken, TokenManager};
use tower_pat::{token::PlaintextToken, MemoryStore};

#[test]
fn secrets_cannot_be_compared_or_displayed() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/compile_fail/*.rs");
}

#[test]
fn plaintext_is_zeroized_on_drop() {
    fn zeroizes_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    zeroizes_on_drop::<PlaintextToken>();
}

#[tokio::test]
async fn debug_of_every_type_carrying_a_token_is_redacted() {
    let minted = nuvlyx::live().format().mint();
    let secret = minted.token.expose_secret().to_owned();
    let m = TokenManager::new(MemoryStore::new(), nuvlyx::live());
    let created = m
        .create(NewToken::new("t", "o", ["orders:read"]))
        .await
        .unwrap();
    let created_secret = created.token.expose_secret().to_owned();
    let shown = [
        format!("{minted:?}"),
        format!("{:?}", minted.token),
        format!("{:?}", minted.digest),
        format!("{created:?}"),
        format!("{:?}", created.record),
        format!("{:#?}", created.record),
    ];
    for text in &shown {
        for s in [&secret, &created_secret] {
            for start in 10..=s.len() - 16 {
                assert!(!text.contains(&s[start..start + 16]), "secret in {text}");
            }
        }
        // Digest bytes are not printed either (as hex or as a byte list).
        assert!(!text.contains(&format!(
            "{:02x}{:02x}{:02x}",
            minted.digest.as_bytes()[0],
            minted.digest.as_bytes()[1],
            minted.digest.as_bytes()[2]
        )));
    }
    assert!(
        shown[1].contains("nvl_live_"),
        "the preview is shown: {}",
        shown[1]
    );
}
