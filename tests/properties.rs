//! Property tests of the token format.

mod common;

use std::collections::HashSet;

use common::*;
use http::StatusCode;
use proptest::prelude::*;
use tower_pat::{token::FormatError, TokenFormat};

fn live() -> TokenFormat {
    nuvlyx::live().format().clone()
}

#[test]
fn hundred_thousand_minted_tokens_are_distinct_and_match_the_scanner_pattern() {
    let re = regex::Regex::new(&format!("^{}$", live().scanner_pattern())).unwrap();
    assert_eq!(live().scanner_pattern(), r"\bnvl_live_[0-9a-f]{72}\b");
    let mut seen = HashSet::with_capacity(100_000);
    let mut ids = HashSet::with_capacity(100_000);
    for _ in 0..100_000 {
        let m = live().mint();
        let t = m.token.expose_secret();
        assert!(re.is_match(t), "{t}");
        assert!(ids.insert(m.id));
        assert!(seen.insert(t.to_owned()));
    }
}

#[test]
fn the_scanner_pattern_finds_tokens_in_text_and_only_whole_ones() {
    let re = regex::Regex::new(&live().scanner_pattern()).unwrap();
    let m = live().mint();
    let t = m.token.expose_secret();
    for text in [
        format!("NVL_TOKEN={t}\n"),
        format!("\"token\": \"{t}\","),
        format!("Authorization: Bearer {t}"),
        t.to_owned(),
    ] {
        let found: Vec<_> = re.find_iter(&text).map(|f| f.as_str()).collect();
        assert_eq!(found, [t], "{text}");
    }
    for near in [
        format!("x{t}"),                     // glued to a word
        format!("{t}0"),                     // a longer hex run
        t[..t.len() - 1].to_owned(),         // one short
        t.replace("nvl_live_", "nvl_test_"), // another environment
    ] {
        assert!(!re.is_match(&near), "{near}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn minted_tokens_parse_and_verify(_seed in any::<u64>()) {
        let m = live().mint();
        let t = m.token.expose_secret();
        prop_assert_eq!(live().parse(t), Ok(m.id));
        prop_assert!(m.digest.verify(t));
    }

    #[test]
    fn parsing_never_panics_on_arbitrary_strings(s in ".{0,200}") {
        let _ = live().parse(&s);
        let _ = nuvlyx::test().format().parse(&s);
    }

    #[test]
    fn parsing_never_panics_on_nvl_shaped_strings(s in "nvl_(live|test)_[0-9a-fA-F_]{0,80}") {
        let _ = live().parse(&s);
    }
}

/// Every single-character substitution, every truncation and every
/// one-character extension of a valid token is rejected offline.
#[test]
fn every_mutation_of_a_token_is_rejected_offline() {
    let printable: Vec<char> = (0x20u8..0x7f).map(char::from).collect();
    for _ in 0..20 {
        let t = live().mint().token.expose_secret().to_owned();
        let bytes = t.as_bytes();
        for i in 0..bytes.len() {
            for &c in &printable {
                if c as u8 == bytes[i] {
                    continue;
                }
                let mut m = t.clone().into_bytes();
                m[i] = c as u8;
                let m = String::from_utf8(m).unwrap();
                assert!(
                    live().parse(&m).is_err(),
                    "substitution at {i} by {c:?} accepted"
                );
            }
        }
        for len in 0..t.len() {
            assert!(
                live().parse(&t[..len]).is_err(),
                "truncation to {len} accepted"
            );
        }
        for &c in &printable {
            assert_eq!(
                live().parse(&format!("{t}{c}")),
                Err(FormatError::WrongLength)
            );
            assert!(live().parse(&format!("{c}{t}")).is_err());
        }
    }
}

/// The same mutations sent through the layer make zero store calls.
#[tokio::test]
async fn mutated_tokens_through_the_layer_make_no_store_call() {
    let f = Fixture::new();
    let (t, _) = f.token(&["orders:read"]).await;
    let app = f.app();
    let hex = "0123456789abcdef";
    let body_start = "nvl_live_".len();
    for i in body_start..t.len() {
        for c in hex.chars() {
            if t.as_bytes()[i] == c as u8 {
                continue;
            }
            let mut m = t.clone().into_bytes();
            m[i] = c as u8;
            let m = String::from_utf8(m).unwrap();
            assert_eq!(
                send(&app, bearer("/orders", &m)).await.status(),
                StatusCode::UNAUTHORIZED
            );
        }
    }
    assert_eq!(
        f.store.finds(),
        0,
        "a single-character typo reached the store"
    );
    assert_eq!(
        send(&app, bearer("/orders", &t)).await.status(),
        StatusCode::OK
    );
    assert_eq!(f.store.finds(), 1);
}
