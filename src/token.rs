//! The token format: minting, offline format checks and the plaintext type.
//!
//! A token is `{prefix}_{environment}_{72 lowercase hex}`, for example
//! `nvl_live_…`. The 72 hex characters encode 36 bytes:
//!
//! | bytes  | content                                                   |
//! |--------|-----------------------------------------------------------|
//! | 0..8   | token id — not secret, the store's lookup key             |
//! | 8..32  | secret — 192 bits from the operating system's CSPRNG      |
//! | 32..36 | CRC-32 (IEEE) of bytes 0..32, big-endian                  |
//!
//! The checksum lets [`TokenFormat::parse`] reject typos and junk without a
//! store call, and lets secret scanners recognise a real token. Only the
//! [`TokenDigest`] (SHA-256 of the whole token) is stored.
//!
//! ```
//! use tower_pat::{TokenDigest, TokenFormat};
//!
//! let format = tower_pat::preset::nuvlyx_live().format().clone();
//! let minted = format.mint();
//! let token = minted.token.expose_secret();
//! assert!(token.starts_with("nvl_live_"));
//! assert_eq!(format.parse(token).unwrap(), minted.id);
//! assert!(minted.digest.verify(token));
//!
//! // A single changed character fails the checksum: no store is asked.
//! let mut typo = token.to_owned();
//! let last = typo.pop().unwrap();
//! typo.push(if last == '0' { '1' } else { '0' });
//! assert!(format.parse(&typo).is_err());
//! ```

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use zeroize::{Zeroize, Zeroizing};

use crate::TokenDigest;

const ID_LEN: usize = 8;
const SECRET_LEN: usize = 24;
const CRC_LEN: usize = 4;
const BODY_LEN: usize = ID_LEN + SECRET_LEN + CRC_LEN;
/// Number of hex characters after `{prefix}_{environment}_`.
pub(crate) const BODY_HEX_LEN: usize = BODY_LEN * 2;

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

/// Error parsing a [`TokenId`] from its 16-character hex form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a token id is 16 lowercase hex characters")]
pub struct ParseTokenIdError;

impl FromStr for TokenId {
    type Err = ParseTokenIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; ID_LEN];
        if s.len() != ID_LEN * 2 || !decode_hex(s.as_bytes(), &mut out) {
            return Err(ParseTokenIdError);
        }
        Ok(Self(out))
    }
}

/// The plaintext of a freshly minted token.
///
/// It exists once, at minting: show it to its owner and drop it. `Debug`
/// shows only the non-secret prefix; there is no `Display` and no
/// `PartialEq`; the memory is zeroized on drop.
pub struct PlaintextToken(Zeroizing<String>);

impl PlaintextToken {
    /// The token text, to hand to its owner exactly once.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// A non-secret preview (`nvl_live_a4f2…`): the prefix and the first
    /// four characters of the id, for listings and logs.
    pub fn preview(&self) -> String {
        preview_of(&self.0)
    }
}

pub(crate) fn preview_of(token: &str) -> String {
    let keep = token
        .rfind('_')
        .map_or(0, |i| i + 1)
        .saturating_add(4)
        .min(token.len());
    let head = token.get(..keep).unwrap_or("");
    format!("{head}…")
}

// `Zeroizing` wipes the text when the token is dropped.
impl zeroize::ZeroizeOnDrop for PlaintextToken {}

impl fmt::Debug for PlaintextToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlaintextToken({})", self.preview())
    }
}

/// A token straight out of [`TokenFormat::mint`].
#[derive(Debug)]
#[non_exhaustive]
pub struct MintedToken {
    /// The plaintext, shown once.
    pub token: PlaintextToken,
    /// Its non-secret id.
    pub id: TokenId,
    /// SHA-256 of the plaintext: what the store keeps.
    pub digest: TokenDigest,
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
            token: PlaintextToken(Zeroizing::new(text)),
            id: TokenId(id),
            digest,
        }
    }

    /// Checks a token's shape and checksum and returns its id. Makes no
    /// store call and does not allocate.
    pub fn parse(&self, token: &str) -> Result<TokenId, FormatError> {
        self.parse_bytes(token.as_bytes())
    }

    /// [`TokenFormat::parse`] over raw bytes (for example a header value).
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
        Ok(TokenId(id))
    }

    /// A regular expression (POSIX ERE / Rust `regex` syntax) matching
    /// exactly the tokens of this format, for secret scanners.
    pub fn regex(&self) -> String {
        format!(
            "{}_{}_[0-9a-f]{{{}}}",
            self.prefix,
            self.environment.as_str(),
            BODY_HEX_LEN
        )
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn encode_hex(src: &[u8], dst: &mut [u8]) {
    for (i, b) in src.iter().enumerate() {
        dst[2 * i] = HEX[usize::from(b >> 4)];
        dst[2 * i + 1] = HEX[usize::from(b & 0x0f)];
    }
}

/// Decodes lowercase hex without branching on the characters, so the time
/// taken does not depend on which digits a token holds; `false` if any
/// character is not `0-9a-f` (checked after the whole input is read).
/// Eight characters at a time as one 64-bit word, the rest one pair at a
/// time.
fn decode_hex(src: &[u8], dst: &mut [u8]) -> bool {
    if src.len() != dst.len() * 2 {
        return false;
    }
    let words = src.chunks_exact(8);
    let tail = words.remainder();
    let mut bad = 0u64;
    for (i, word) in words.enumerate() {
        let mut chars = [0u8; 8];
        chars.copy_from_slice(word);
        let (bytes, word_bad) = hex_word(u64::from_le_bytes(chars));
        dst[4 * i..4 * i + 4].copy_from_slice(&bytes);
        bad |= word_bad;
    }
    let done = (src.len() - tail.len()) / 2;
    for (i, pair) in tail.chunks_exact(2).enumerate() {
        let (h, hb) = hex_nibble(pair[0]);
        let (l, lb) = hex_nibble(pair[1]);
        dst[done + i] = (h << 4) | l;
        bad |= u64::from(hb | lb);
    }
    bad == 0
}

/// Eight hex characters (little-endian in `x`) to four bytes, and a
/// non-zero flag if any is not `0-9a-f`. Byte-wise range checks in one
/// word: for a byte below 0x80, `b + (0x80 - lo)` has its top bit set iff
/// `b >= lo`, and `b + (0x7f - hi)` has it clear iff `b <= hi`; neither
/// sum carries into the next byte. Bytes of 0x80 and above are flagged
/// first, so whatever their sums do, the word is refused.
#[inline(always)]
fn hex_word(x: u64) -> ([u8; 4], u64) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let at_least = |lo: u64| x.wrapping_add((0x80 - lo) * ONES) & HIGH;
    let at_most = |hi: u64| !x.wrapping_add((0x7f - hi) * ONES) & HIGH;
    let digit = at_least(0x30) & at_most(0x39);
    let letter = at_least(0x61) & at_most(0x66);
    let bad = (x & HIGH) | ((digit | letter) ^ HIGH);
    // '0'..'9' are 0x30..0x39 and 'a'..'f' are 0x61..0x66: the low four
    // bits, plus 9 when bit 6 is set (letters).
    let nibbles = (x & (0x0f * ONES)) + ((x >> 6) & ONES) * 9;
    // Byte 2j holds the high nibble of output byte j, byte 2j+1 the low.
    const EVEN: u64 = 0x00ff_00ff_00ff_00ff;
    let pairs = ((nibbles & EVEN) << 4) | ((nibbles >> 8) & EVEN);
    let out = [0, 16, 32, 48].map(|shift| (pairs >> shift) as u8);
    (out, bad)
}

/// (value, 0) for `0-9a-f`, (garbage, 1) otherwise; branch-free.
#[inline(always)]
fn hex_nibble(c: u8) -> (u8, u8) {
    let d = c.wrapping_sub(b'0');
    let l = c.wrapping_sub(b'a');
    // 0xff when d < 10 (resp. l < 6), computed without comparisons.
    let is_digit = ((u16::from(d).wrapping_sub(10) >> 8) & 1) as u8 * 0xff;
    let is_letter = ((u16::from(l).wrapping_sub(6) >> 8) & 1) as u8 * 0xff;
    let value = (d & is_digit) | (l.wrapping_add(10) & is_letter);
    (value & 0x0f, (!(is_digit | is_letter)) & 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> TokenFormat {
        crate::preset::nuvlyx_live().format().clone()
    }

    #[test]
    fn minted_token_has_documented_shape() {
        let m = live().mint();
        let t = m.token.expose_secret();
        assert_eq!(t.len(), 81);
        assert!(t.starts_with("nvl_live_"));
        assert!(t[9..].bytes().all(|b| HEX.contains(&b)));
        assert_eq!(live().parse(t), Ok(m.id));
    }

    #[test]
    fn test_token_is_rejected_by_live_format() {
        let m = crate::preset::nuvlyx_test().format().mint();
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
    fn plaintext_debug_shows_only_the_preview() {
        let m = live().mint();
        let shown = format!("{:?}", m.token);
        assert!(shown.starts_with("PlaintextToken(nvl_live_"));
        assert!(shown.len() < 40, "{shown}");
        assert!(!shown.contains(&m.token.expose_secret()[9..25]));
    }

    #[test]
    fn token_id_round_trips_through_text_and_integer() {
        let id = live().mint().id;
        assert_eq!(id.to_string().parse::<TokenId>(), Ok(id));
        assert_eq!(TokenId::from_bytes(*id.as_bytes()), id);
        assert!("xyz".parse::<TokenId>().is_err());
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

    /// Decoding one pair at a time with the checked nibble function.
    fn decode_hex_pairwise(src: &[u8]) -> Option<Vec<u8>> {
        src.chunks_exact(2)
            .map(|p| match (hex_nibble(p[0]), hex_nibble(p[1])) {
                ((h, 0), (l, 0)) => Some((h << 4) | l),
                _ => None,
            })
            .collect()
    }

    fn decode(src: &[u8]) -> Option<Vec<u8>> {
        let mut out = vec![0u8; src.len() / 2];
        decode_hex(src, &mut out).then_some(out)
    }

    #[test]
    fn word_decoding_matches_pairwise_decoding_for_every_byte_at_every_place() {
        let base = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef01234567";
        assert_eq!(base.len(), BODY_HEX_LEN);
        assert_eq!(decode(base), decode_hex_pairwise(base));
        for at in 0..base.len() {
            for b in 0..=255u8 {
                let mut s = *base;
                s[at] = b;
                assert_eq!(decode(&s), decode_hex_pairwise(&s), "byte {b:#x} at {at}");
            }
        }
        // Lengths with a pairwise tail, and odd lengths.
        for len in [0, 2, 6, 8, 10, 16, 18, 70] {
            assert_eq!(decode(&base[..len]), decode_hex_pairwise(&base[..len]));
        }
        let mut out = [0u8; 2];
        assert!(!decode_hex(b"abc", &mut out));
    }

    #[test]
    fn word_decoding_matches_pairwise_decoding_on_many_mixed_words() {
        // Several bad bytes at once, near the range edges, in one word.
        let edges = [
            0x00, 0x2f, 0x30, 0x39, 0x3a, 0x40, 0x41, 0x46, 0x60, 0x61, 0x66, 0x67, 0x7f, 0x80,
            0xb0, 0xe1, 0xff,
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..200_000 {
            let mut word = [0u8; 8];
            for b in &mut word {
                let r = next();
                *b = match round % 3 {
                    0 => edges[(r % edges.len() as u64) as usize],
                    1 => r as u8,
                    // Mostly valid: one byte in eight from the edges.
                    _ if r % 8 == 0 => edges[((r >> 8) % edges.len() as u64) as usize],
                    _ => HEX[((r >> 8) % 16) as usize],
                };
            }
            assert_eq!(decode(&word), decode_hex_pairwise(&word), "{word:x?}");
        }
    }

    #[test]
    fn hex_nibbles_match_the_obvious_definition() {
        for c in 0..=255u8 {
            let (v, bad) = hex_nibble(c);
            match c {
                b'0'..=b'9' => assert_eq!((v, bad), (c - b'0', 0)),
                b'a'..=b'f' => assert_eq!((v, bad), (c - b'a' + 10, 0)),
                _ => assert_eq!(bad, 1, "{c}"),
            }
        }
    }

    #[test]
    fn regex_describes_the_format() {
        assert_eq!(live().regex(), "nvl_live_[0-9a-f]{72}");
    }
}
