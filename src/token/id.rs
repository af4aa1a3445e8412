//! [`TokenId`]: the non-secret part of a token, the store's key.

use std::fmt;
use std::str::FromStr;

use super::hex::{decode_hex, encode_hex};
use super::{FormatError, ID_LEN};

/// The non-secret id embedded in every token (8 bytes, shown as 16 hex
/// characters). Stores are keyed by it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId([u8; ID_LEN]);

impl TokenId {
    /// Wraps raw id bytes.
    pub const fn from_bytes(bytes: [u8; ID_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw id bytes.
    pub const fn as_bytes(&self) -> &[u8; ID_LEN] {
        &self.0
    }

    /// The id of the big-endian bytes of `v` (tests).
    #[cfg(test)]
    pub(crate) const fn from_u64(v: u64) -> Self {
        Self(v.to_be_bytes())
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; ID_LEN * 2];
        encode_hex(&self.0, &mut buf);
        // Hex digits are ASCII.
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenId({self})")
    }
}

/// A token id from its 16-character lowercase hex form (as `Display`
/// writes it): [`FormatError::WrongLength`] or [`FormatError::NotHex`]
/// otherwise.
impl FromStr for TokenId {
    type Err = FormatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; ID_LEN];
        if s.len() != ID_LEN * 2 {
            return Err(FormatError::WrongLength);
        }
        if !decode_hex(s.as_bytes(), &mut out) {
            return Err(FormatError::NotHex);
        }
        Ok(Self(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> crate::token::TokenFormat {
        crate::testing::live().format().clone()
    }

    #[test]
    fn token_id_round_trips_through_text_and_integer() {
        let id = live().mint().id;
        assert_eq!(id.to_string().parse::<TokenId>(), Ok(id));
        assert_eq!(TokenId::from_bytes(*id.as_bytes()), id);
        assert!("xyz".parse::<TokenId>().is_err());
    }
}
