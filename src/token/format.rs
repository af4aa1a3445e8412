//! [`TokenFormat`]: the layout of a token, minting, and the offline check.

use std::borrow::Cow;

use zeroize::{Zeroize, Zeroizing};

use super::hex::{decode_hex, encode_hex};
use super::{MintedToken, PlaintextToken, TokenId, BODY_HEX_LEN, BODY_LEN, ID_LEN, SECRET_LEN};
use crate::token::TokenDigest;

/// Which environment a token belongs to; a layer accepts only its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Environment {
    /// Production tokens (`…_live_…`).
    Live,
    /// Test-mode tokens (`…_test_…`).
    Test,
}

impl Environment {
    /// The marker as it appears in a token.
    pub const fn as_str(self) -> &'static str {
        match self {
            Environment::Live => "live",
            Environment::Test => "test",
        }
    }
}

/// Why a string is not a well-formed token. Detected offline, before any
/// store call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The token does not start with the configured `{prefix}_`.
    #[error("the token does not start with the expected prefix")]
    WrongPrefix,
    /// A token for another environment (a test token on a live layer).
    #[error("the token belongs to another environment")]
    WrongEnvironment,
    /// The part after the environment is not 72 characters long.
    #[error("the token has the wrong length")]
    WrongLength,
    /// The body has characters other than `0-9a-f`.
    #[error("the token body is not lowercase hexadecimal")]
    NotHex,
    /// The CRC-32 does not match: a typo or a made-up token.
    #[error("the token checksum does not match")]
    BadChecksum,
}

/// The token layout a layer accepts and a minter produces: prefix and
/// environment. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFormat {
    prefix: Cow<'static, str>,
    environment: Environment,
}

/// Error building a [`TokenFormat`] with an unusable prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a token prefix is 1 to 16 characters of a-z and 0-9")]
pub struct InvalidPrefix;

impl TokenFormat {
    /// A format with a custom prefix (1–16 characters of `a-z0-9`).
    pub fn new(
        prefix: impl Into<Cow<'static, str>>,
        environment: Environment,
    ) -> Result<Self, InvalidPrefix> {
        let prefix = prefix.into();
        let ok = (1..=16).contains(&prefix.len())
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !ok {
            return Err(InvalidPrefix);
        }
        Ok(Self {
            prefix,
            environment,
        })
    }

    /// The prefix, without the trailing underscore.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The environment this format accepts and mints.
    pub fn environment(&self) -> Environment {
        self.environment
    }

    /// Total length of a token in this format.
    pub fn token_len(&self) -> usize {
        self.prefix.len() + 1 + self.environment.as_str().len() + 1 + BODY_HEX_LEN
    }

    /// Mints a new token from the operating system's CSPRNG.
    ///
    /// # Panics
    ///
    /// If the operating system cannot provide random bytes; continuing with
    /// weak randomness would be worse.
    pub fn mint(&self) -> MintedToken {
        let mut raw = Zeroizing::new([0u8; BODY_LEN]);
        getrandom::fill(&mut raw[..ID_LEN + SECRET_LEN])
            .expect("the operating system CSPRNG failed; refusing to mint a token");
        let crc = crc32fast::hash(&raw[..ID_LEN + SECRET_LEN]);
        raw[ID_LEN + SECRET_LEN..].copy_from_slice(&crc.to_be_bytes());

        let mut text = String::with_capacity(self.token_len());
        text.push_str(&self.prefix);
        text.push('_');
        text.push_str(self.environment.as_str());
        text.push('_');
        let mut hex = Zeroizing::new([0u8; BODY_HEX_LEN]);
        encode_hex(&raw[..], &mut hex[..]);
        // Hex digits are ASCII.
        text.push_str(std::str::from_utf8(&hex[..]).expect("hex is ascii"));

        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&raw[..ID_LEN]);
        let digest = TokenDigest::of(&text);
        MintedToken {
            token: PlaintextToken::new(text),
            id: TokenId::from_bytes(id),
            digest,
        }
    }

    /// Checks a token's shape and checksum and returns its id. Makes no
    /// store call and does not allocate.
    pub fn parse(&self, token: &str) -> Result<TokenId, FormatError> {
        self.parse_bytes(token.as_bytes())
    }

    /// [`TokenFormat::parse`] over raw bytes (for example a header value).
    #[inline]
    pub fn parse_bytes(&self, token: &[u8]) -> Result<TokenId, FormatError> {
        let rest = token
            .strip_prefix(self.prefix.as_bytes())
            .and_then(|r| r.strip_prefix(b"_"))
            .ok_or(FormatError::WrongPrefix)?;
        let body = match rest.strip_prefix(self.environment.as_str().as_bytes()) {
            Some(r) => r.strip_prefix(b"_").ok_or(FormatError::WrongPrefix)?,
            None => {
                let other_env = [Environment::Live, Environment::Test]
                    .iter()
                    .any(|e| rest.starts_with(e.as_str().as_bytes()));
                return Err(if other_env {
                    FormatError::WrongEnvironment
                } else {
                    FormatError::WrongPrefix
                });
            }
        };
        if body.len() != BODY_HEX_LEN {
            return Err(FormatError::WrongLength);
        }
        let mut raw = [0u8; BODY_LEN];
        if !decode_hex(body, &mut raw) {
            return Err(FormatError::NotHex);
        }
        let (payload, crc) = raw.split_at(ID_LEN + SECRET_LEN);
        let expected = crc32fast::hash(payload).to_be_bytes();
        let ok = crc == expected;
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&raw[..ID_LEN]);
        raw.zeroize();
        if !ok {
            return Err(FormatError::BadChecksum);
        }
        Ok(TokenId::from_bytes(id))
    }

    /// The regular expression a secret scanner registers for this format
    /// (`\bnvl_live_[0-9a-f]{72}\b`; Rust `regex`, RE2, PCRE and
    /// Hyperscan syntax): the prefix, then exactly the hex body, standing
    /// alone (a longer run of hex, or a letter before the prefix, does
    /// not match). Scanners may then run [`TokenFormat::parse`]'s checksum
    /// to drop near misses. `SECURITY.md` says how to enrol with GitHub's
    /// secret scanning.
    pub fn scanner_pattern(&self) -> String {
        format!(
            "\\b{}_{}_[0-9a-f]{{{}}}\\b",
            self.prefix,
            self.environment.as_str(),
            BODY_HEX_LEN
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> TokenFormat {
        crate::testing::live().format().clone()
    }

    #[test]
    fn minted_token_has_documented_shape() {
        let m = live().mint();
        let t = m.token.expose_secret();
        assert_eq!(t.len(), 81);
        assert!(t.starts_with("nvl_live_"));
        assert!(t[9..].bytes().all(|b| b"0123456789abcdef".contains(&b)));
        assert_eq!(live().parse(t), Ok(m.id));
    }

    #[test]
    fn test_token_is_rejected_by_live_format() {
        let m = crate::testing::test().format().mint();
        assert_eq!(
            live().parse(m.token.expose_secret()),
            Err(FormatError::WrongEnvironment)
        );
    }

    #[test]
    fn wrong_prefix_length_hex_and_checksum_are_told_apart() {
        let m = live().mint();
        let t = m.token.expose_secret();
        assert_eq!(
            live().parse(&t.replacen("nvl", "abc", 1)),
            Err(FormatError::WrongPrefix)
        );
        assert_eq!(live().parse(&t[..80]), Err(FormatError::WrongLength));
        assert_eq!(
            live().parse(&format!("{t}0")),
            Err(FormatError::WrongLength)
        );
        assert_eq!(
            live().parse(&t.to_ascii_uppercase().replacen("NVL_LIVE", "nvl_live", 1)),
            Err(FormatError::NotHex)
        );
        let mut flipped = t.as_bytes().to_vec();
        flipped[20] = if flipped[20] == b'0' { b'1' } else { b'0' };
        assert_eq!(live().parse_bytes(&flipped), Err(FormatError::BadChecksum));
        assert_eq!(live().parse(""), Err(FormatError::WrongPrefix));
        assert_eq!(live().parse("nvl_"), Err(FormatError::WrongPrefix));
        assert_eq!(live().parse("nvl_live"), Err(FormatError::WrongPrefix));
        assert_eq!(live().parse("nvl_livex"), Err(FormatError::WrongPrefix));
    }

    #[test]
    fn custom_prefix_is_validated() {
        assert!(TokenFormat::new("acme", Environment::Live).is_ok());
        assert!(TokenFormat::new("", Environment::Live).is_err());
        assert!(TokenFormat::new("Acme", Environment::Live).is_err());
        assert!(TokenFormat::new("a_b", Environment::Live).is_err());
        let f = TokenFormat::new("acme", Environment::Test).unwrap();
        let m = f.mint();
        assert!(m.token.expose_secret().starts_with("acme_test_"));
        assert_eq!(f.parse(m.token.expose_secret()), Ok(m.id));
    }

    #[test]
    fn only_lowercase_hex_is_a_token_body() {
        let token = live().mint().token;
        let t = token.expose_secret();
        assert_eq!(live().parse(t).map(|_| ()), Ok(()));
        for at in 9..t.len() {
            for c in [b'A', b'F', b'g', b'G', b'/', b':', b'`', b' ', 0x80, 0xff] {
                let mut bytes = t.as_bytes().to_vec();
                bytes[at] = c;
                assert_eq!(
                    live().parse_bytes(&bytes),
                    Err(FormatError::NotHex),
                    "{c:#x} at {at}"
                );
            }
        }
        assert_eq!(
            "0123456789ABCDEF".parse::<TokenId>(),
            Err(FormatError::NotHex)
        );
        assert_eq!(
            "0123456789abcde".parse::<TokenId>(),
            Err(FormatError::WrongLength)
        );
        assert_eq!(
            "0123456789abcdef0".parse::<TokenId>(),
            Err(FormatError::WrongLength)
        );
    }

    #[test]
    fn scanner_pattern_describes_the_format() {
        assert_eq!(live().scanner_pattern(), r"\bnvl_live_[0-9a-f]{72}\b");
    }
}
