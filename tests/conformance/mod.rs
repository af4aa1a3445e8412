//! The conformance suite (`tower_pat::test_kit`), and helpers the store
//! tests share.
#![allow(dead_code, unreachable_pub)]

#[allow(unused_imports)]
pub use tower_pat::test_kit::{status_now, Harness};

/// The same id and a valid checksum, another secret: a forged token for a
/// known id.
#[allow(unused_imports)]
pub use tower_pat::test_kit::wrong_secret as forge_secret;
