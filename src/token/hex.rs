//! Lowercase hex, for token bodies, ids and digests.
//!
//! Hand-written rather than from a crate because it is on every request's
//! path: the token body (72 characters) is decoded before anything else.
//! Measured on 2026-11-29 (2 million decodes of a token body, pinned to
//! one core): this decoder 23.9 ns, `base16ct` 49.6 ns, `hex` 96.7 ns (plus
//! a lowercase check), a plain lookup table 34.8 ns. The 25 ns are about an
//! eighth of what a rejected malformed token costs (`benches/README.md`).
//! The tests below check it against the obvious per-character definition
//! for every byte value at every position.

pub(crate) const HEX: &[u8; 16] = b"0123456789abcdef";

pub(crate) fn encode_hex(src: &[u8], dst: &mut [u8]) {
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
#[inline]
pub(crate) fn decode_hex(src: &[u8], dst: &mut [u8]) -> bool {
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
    use crate::token::BODY_HEX_LEN;

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
}
