//! Reading a change-feed message (a `NOTIFY` or Redis `PUBLISH` payload).
//!
//! Two formats share the channels:
//!
//! - **format 1**, `token:<id>`, `owner:<owner>`, `all:` (also `all`): a
//!   change in the message itself. Written by tower-pat before feed format
//!   2, and still by `RedisAnnounced`;
//! - **format 2**, `v2` (any `v<digits>` of 2 and up): "changes were
//!   committed, read the change table". It carries nothing else, so it
//!   shows nothing to a listener and proves nothing.
//!
//! Anything else is garbled. This file is self-contained (it names only
//! `Change`, `OwnerId` and `TokenId` from its parent), so the fuzz target
//! `feed_message` compiles it as it is.

use super::{Change, OwnerId, TokenId};

/// The payload feed format 2 sends.
#[allow(dead_code)] // used by the PostgreSQL feed
pub(crate) const WAKE_PAYLOAD: &str = "v2";

/// The longest payload read: longer ones are garbled (an owner id is at
/// most 128 bytes).
const MAX_PAYLOAD: usize = 256;

/// What a change-feed payload says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Message {
    /// Format 1: this change.
    Change(Change),
    /// Format 2 or later: read the change table.
    Wake,
    /// Neither: ignored (with a rate-limited warning).
    Garbled,
}

/// Reads `payload`; never panics, whatever the bytes.
pub(crate) fn parse_message(payload: &str) -> Message {
    if payload.len() > MAX_PAYLOAD {
        return Message::Garbled;
    }
    if let Some(version) = payload.strip_prefix('v') {
        let newer = !version.is_empty()
            && version.len() <= 9
            && version.bytes().all(|b| b.is_ascii_digit())
            && version.parse::<u32>().is_ok_and(|v| v >= 2);
        return if newer {
            Message::Wake
        } else {
            Message::Garbled
        };
    }
    let change = match payload.split_once(':') {
        Some(("token", id)) => id.parse::<TokenId>().ok().map(Change::Token),
        Some(("owner", owner)) => OwnerId::new(owner).ok().map(Change::Owner),
        Some(("all", "")) => Some(Change::All),
        None if payload == "all" => Some(Change::All),
        _ => None,
    };
    change.map_or(Message::Garbled, Message::Change)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_and_garbage() {
        let id = TokenId::from_u64(0x0123_4567_89ab_cdef);
        assert_eq!(
            parse_message(&format!("token:{id}")),
            Message::Change(Change::Token(id))
        );
        assert_eq!(
            parse_message("owner:acme"),
            Message::Change(Change::Owner(OwnerId::new("acme").unwrap()))
        );
        assert_eq!(parse_message("all:"), Message::Change(Change::All));
        assert_eq!(parse_message("all"), Message::Change(Change::All));
        assert_eq!(parse_message(WAKE_PAYLOAD), Message::Wake);
        assert_eq!(parse_message("v17"), Message::Wake);
        for garbage in [
            "",
            "v",
            "v1",
            "v0",
            "v-2",
            "v2x",
            "v99999999999",
            "token:",
            "token:zz",
            "token:0123456789abcdef0",
            "owner:",
            "all:x",
            "ALL",
            "hello",
            ":",
            "\u{0}",
        ] {
            assert_eq!(parse_message(garbage), Message::Garbled, "{garbage:?}");
        }
        assert_eq!(parse_message(&"owner:a".repeat(100)), Message::Garbled);
    }
}
