//! [`TokenDigest`]: the SHA-256 digest of a token, the only form in which a
//! token is kept at rest.
//!
//! A digest is compared with [`subtle::ConstantTimeEq`] over two fixed
//! 32-byte arrays, so the comparison does the same work whether the first or
//! the last byte differs. The type deliberately has no `PartialEq`, so `==`
//! cannot be used by accident:
//!
//! ```
//! use subtle::ConstantTimeEq;
//! use tower_pat::token::TokenDigest;
//!
//! let a = TokenDigest::of("nvl_live_example");
//! let b = TokenDigest::of("nvl_live_example");
//! assert!(bool::from(a.ct_eq(&b)));
//! assert!(!bool::from(a.ct_eq(&TokenDigest::of("nvl_live_other"))));
//! ```

use std::fmt;

use sha2::{Digest as _, Sha256};
use subtle::{Choice, ConstantTimeEq};

/// Length of a [`TokenDigest`] in bytes.
pub(crate) const DIGEST_LEN: usize = 32;

/// SHA-256 digest of a whole token (prefix included).
///
/// No `PartialEq`: compare with [`ConstantTimeEq::ct_eq`] or
/// [`TokenDigest::verify`]. `Debug` never prints the bytes.
#[derive(Clone, Copy)]
pub struct TokenDigest([u8; DIGEST_LEN]);

impl TokenDigest {
    /// Hashes a token with SHA-256.
    pub fn of(token: impl AsRef<[u8]>) -> Self {
        Self(Sha256::digest(token.as_ref()).into())
    }

    /// Wraps digest bytes read back from a store.
    pub const fn from_bytes(bytes: [u8; DIGEST_LEN]) -> Self {
        Self(bytes)
    }

    /// Wraps digest bytes read back from a store, checking the length.
    ///
    /// Returns `None` unless `bytes` is exactly 32 bytes long (a
    /// corrupted database row, say).
    pub fn try_from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; DIGEST_LEN]>::try_from(bytes).ok().map(Self)
    }

    /// The raw digest bytes, for writing to a store.
    pub const fn as_bytes(&self) -> &[u8; DIGEST_LEN] {
        &self.0
    }

    /// The digest as 64 lowercase hex characters, for a store that keeps
    /// text (a JSON file, a text column).
    ///
    /// ```
    /// use tower_pat::token::TokenDigest;
    ///
    /// let d = TokenDigest::of("abc");
    /// let hex = d.to_hex();
    /// assert!(hex.starts_with("ba7816bf"));
    /// assert!(TokenDigest::from_hex(&hex).unwrap().verify("abc"));
    /// ```
    pub fn to_hex(&self) -> String {
        let mut hex = [0u8; DIGEST_LEN * 2];
        crate::token::hex::encode_hex(&self.0, &mut hex);
        hex.iter().map(|&b| char::from(b)).collect()
    }

    /// Reads a digest written as 64 hex characters (either case: SQLite's
    /// `hex()` writes uppercase). `None` for anything else, such as a
    /// corrupted row.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let mut lower = [0u8; DIGEST_LEN * 2];
        if hex.len() != lower.len() {
            return None;
        }
        lower.copy_from_slice(hex.as_bytes());
        lower.make_ascii_lowercase();
        let mut bytes = [0u8; DIGEST_LEN];
        crate::token::hex::decode_hex(&lower, &mut bytes).then_some(Self(bytes))
    }

    /// Constant-time check that `self` is the digest of `token`.
    pub fn verify(&self, token: impl AsRef<[u8]>) -> bool {
        Self::of(token).ct_eq(self).into()
    }

    /// A fixed digest that no real token has in practice, used to keep the
    /// amount of work the same when a token id is unknown.
    pub(crate) const DUMMY: Self = Self([0x5a; DIGEST_LEN]);
}

impl ConstantTimeEq for TokenDigest {
    #[inline]
    fn ct_eq(&self, other: &Self) -> Choice {
        // XOR and OR over four 64-bit lanes take the same time whatever the
        // values; `subtle` turns the folded difference into a `Choice`
        // without a data-dependent branch. Four lanes instead of `subtle`'s
        // 32 byte-wise steps (each behind an optimisation barrier).
        let lane = |d: &[u8; DIGEST_LEN], i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&d[i * 8..i * 8 + 8]);
            u64::from_ne_bytes(b)
        };
        let diff =
            (0..DIGEST_LEN / 8).fold(0u64, |acc, i| acc | (lane(&self.0, i) ^ lane(&other.0, i)));
        diff.ct_eq(&0)
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenDigest(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_what_is_not_a_digest() {
        let d = TokenDigest::of("nvl_live_example");
        let hex = d.to_hex();
        assert_eq!(hex.len(), 64);
        assert!(hex.bytes().all(|b| b"0123456789abcdef".contains(&b)));
        let back = TokenDigest::from_hex(&hex).unwrap();
        assert!(bool::from(back.ct_eq(&d)));
        let upper = TokenDigest::from_hex(&hex.to_uppercase()).unwrap();
        assert!(bool::from(upper.ct_eq(&d)));
        for bad in [
            &hex[..62],
            &format!("{hex}00"),
            &hex.replacen('a', "g", 1),
            "",
        ] {
            assert!(TokenDigest::from_hex(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn digest_is_sha256_of_the_token() {
        // SHA-256("abc"), FIPS 180-2 test vector.
        let d = TokenDigest::of("abc");
        assert_eq!(
            d.as_bytes()[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "SHA-256 test vector prefix"
        );
    }

    #[test]
    fn debug_is_redacted() {
        let d = TokenDigest::of("secret");
        let shown = format!("{d:?}");
        assert_eq!(shown, "TokenDigest(<redacted>)");
    }

    #[test]
    fn try_from_slice_rejects_wrong_lengths() {
        assert!(TokenDigest::try_from_slice(&[0; 31]).is_none());
        assert!(TokenDigest::try_from_slice(&[0; 33]).is_none());
        assert!(TokenDigest::try_from_slice(&[0; 32]).is_some());
    }

    #[test]
    fn verify_detects_first_and_last_byte_differences() {
        let d = TokenDigest::of("token");
        let mut first = *d.as_bytes();
        first[0] ^= 1;
        let mut last = *d.as_bytes();
        last[31] ^= 1;
        assert!(!bool::from(d.ct_eq(&TokenDigest::from_bytes(first))));
        assert!(!bool::from(d.ct_eq(&TokenDigest::from_bytes(last))));
        assert!(d.verify("token"));
    }

    #[test]
    fn every_single_bit_difference_is_seen() {
        let d = TokenDigest::of("token");
        assert!(bool::from(d.ct_eq(&TokenDigest::from_bytes(*d.as_bytes()))));
        for byte in 0..DIGEST_LEN {
            for bit in 0..8 {
                let mut other = *d.as_bytes();
                other[byte] ^= 1 << bit;
                let other = TokenDigest::from_bytes(other);
                assert!(!bool::from(d.ct_eq(&other)), "byte {byte} bit {bit}");
                assert!(!bool::from(other.ct_eq(&d)), "byte {byte} bit {bit}");
            }
        }
    }
}
