//! The conformance suite (`tower_pat::test_kit`), and helpers the store
//! tests share.
#![allow(dead_code, unreachable_pub)]

#[allow(unused_imports)]
pub use tower_pat::test_kit::{status_now, Harness};

/// The same id and a valid checksum, another secret: a forged token for a
/// known id.
pub fn forge_secret(token: &str) -> String {
    let (head, body) = token.split_at(token.len() - 72);
    let mut raw: Vec<u8> = (0..36)
        .map(|i| u8::from_str_radix(&body[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    raw[8..32].iter_mut().for_each(|b| *b ^= 0x5a);
    let crc = crc32fast::hash(&raw[..32]).to_be_bytes();
    raw[32..].copy_from_slice(&crc);
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    format!("{head}{hex}")
}
