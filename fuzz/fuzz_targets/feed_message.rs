//! The change-feed payload parser (a `NOTIFY` or Redis `PUBLISH` payload,
//! which anyone who reaches the channel may send) on arbitrary bytes:
//! never panics, and whatever it accepts as a change reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_pat::store::feed::Message;
use tower_pat::store::{Change, OwnerId};
use tower_pat::token::TokenId;

fuzz_target!(|data: &[u8]| {
    let Ok(payload) = std::str::from_utf8(data) else {
        return;
    };
    let Some(message) = Message::parse(payload) else {
        return;
    };
    // What is read writes back the same (format 1 is `Change`'s Display).
    if let Message::Change(change) = &message {
        if payload != "all" {
            assert_eq!(change.to_string(), payload);
        }
    }
    match message {
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
        _ => unreachable!("no other message is read"),
    }
});
