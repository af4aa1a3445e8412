//! The change-feed payload parser (a `NOTIFY` or Redis `PUBLISH` payload,
//! which anyone who reaches the channel may send) on arbitrary bytes:
//! never panics, and whatever it accepts as a change reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_pat::{
    store::{Change, OwnerId},
    token::TokenId,
};

// The crate's own parser, compiled as it is (it names only these three
// types from its parent module).
#[allow(dead_code)]
#[path = "../../src/store/feed_message.rs"]
mod feed_message;

use feed_message::{parse_message, Message};

fuzz_target!(|data: &[u8]| {
    let Ok(payload) = std::str::from_utf8(data) else {
        return;
    };
    match parse_message(payload) {
        Message::Change(Change::Token(id)) => {
            assert_eq!(payload, format!("token:{id}"));
            assert_eq!(payload[6..].parse::<TokenId>().ok(), Some(id));
        }
        Message::Change(Change::Owner(owner)) => {
            assert_eq!(payload, format!("owner:{}", owner.as_str()));
            assert!(OwnerId::new(owner.as_str()).is_ok());
        }
        Message::Change(Change::All) => assert!(payload == "all" || payload == "all:"),
        Message::Change(_) => unreachable!("no other change is read"),
        Message::Wake => {
            assert!(payload.starts_with('v') && payload.len() >= 2);
            assert!(payload[1..].bytes().all(|b| b.is_ascii_digit()));
        }
        Message::Garbled => {}
    }
});
