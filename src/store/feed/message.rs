//! [`Message`]: reading a change-feed message (a `NOTIFY` or Redis
//! `PUBLISH` payload).

use crate::store::{Change, OwnerId};
use crate::token::TokenId;

/// The longest payload read: longer ones are garbled (an owner id is at
/// most 128 bytes).
const MAX_PAYLOAD: usize = 256;

/// What a change-feed message says. Two formats share the channels:
///
/// - **format 1**, `token:<id>`, `owner:<owner>`, `all:` (also `all`): a
///   change in the message itself, as [`Change`]'s `Display` writes it;
/// - **format 2**, `v2` (any `v<digits>` of 2 and up): "changes were
///   committed, read the change table". It carries nothing else, so it
///   shows nothing to a listener and proves nothing.
///
/// Anything else is garbled: [`Message::parse`] answers `None`, and the
/// listener of [`ChangeFeed::listen`](super::ChangeFeed::listen) ignores
/// it with a rate-limited warning.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// Format 1: this change. Anyone who can send on the channel can send
    /// one: believe it only if that is acceptable (see SECURITY.md).
    Change(Change),
    /// Format 2 or later: read the change table.
    Wake,
}

impl Message {
    /// The payload of format 2.
    pub const WAKE: &'static str = "v2";

    /// Reads `payload`; `None` for a garbled one. Never panics, whatever
    /// the bytes.
    pub fn parse(payload: &str) -> Option<Self> {
        if payload.len() > MAX_PAYLOAD {
            return None;
        }
        if let Some(version) = payload.strip_prefix('v') {
            let newer = !version.is_empty()
                && version.len() <= 9
                && version.bytes().all(|b| b.is_ascii_digit())
                && version.parse::<u32>().is_ok_and(|v| v >= 2);
            return newer.then_some(Message::Wake);
        }
        let change = match payload.split_once(':') {
            Some(("token", id)) => id.parse::<TokenId>().ok().map(Change::Token),
            Some(("owner", owner)) => OwnerId::new(owner).ok().map(Change::Owner),
            Some(("all", "")) => Some(Change::All),
            None if payload == "all" => Some(Change::All),
            _ => None,
        };
        change.map(Message::Change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_and_garbage() {
        let id = TokenId::from_u64(0x0123_4567_89ab_cdef);
        let owner = OwnerId::new("acme").unwrap();
        for change in [Change::Token(id), Change::Owner(owner), Change::All] {
            assert_eq!(
                Message::parse(&change.to_string()),
                Some(Message::Change(change))
            );
        }
        assert_eq!(Message::parse("all"), Some(Message::Change(Change::All)));
        assert_eq!(Message::parse(Message::WAKE), Some(Message::Wake));
        assert_eq!(Message::parse("v17"), Some(Message::Wake));
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
            assert_eq!(Message::parse(garbage), None, "{garbage:?}");
        }
        assert_eq!(Message::parse(&"owner:a".repeat(100)), None);
    }
}
