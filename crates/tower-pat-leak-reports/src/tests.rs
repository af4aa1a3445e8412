use super::*;

#[test]
fn only_plain_web_addresses_are_kept() {
    assert!(keepable_url("https://github.com/o/r/blob/abc/f.txt"));
    assert!(!keepable_url("javascript:alert(1)"));
    assert!(!keepable_url("https://x/\u{1b}[2J"));
    assert!(!keepable_url(&format!("https://x/{}", "a".repeat(3000))));
}

#[test]
fn a_key_document_that_is_not_p256_is_refused() {
    assert!(matches!(
        ScannerKey::from_github_document("[]"),
        Err(KeyError::Document(_))
    ));
    assert!(matches!(
        ScannerKey::from_github_document(
            r#"{"public_keys":[{"key_identifier":"k","key":"nope","is_current":true}]}"#
        ),
        Err(KeyError::NotP256(id)) if id == "k"
    ));
}
