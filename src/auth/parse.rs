//! `Authorization: Bearer <token68>` parsing (RFC 9110 §11, RFC 6750 §2.1).

use http::header::AUTHORIZATION;
use http::HeaderMap;

use crate::response::{MalformedReason, RejectionKind};

/// Extracts the bearer token from request headers, as the layer does.
///
/// Exactly one `Authorization` header; scheme `Bearer` in any case; one or
/// more spaces; a non-empty `token68`; trailing spaces and tabs are
/// tolerated (optional whitespace around field values). Never panics. The
/// token is not checked against any format: pass it to
/// [`crate::TokenFormat::parse_bytes`] for that.
///
/// ```
/// use http::HeaderMap;
/// use tower_pat::{bearer_token, RejectionKind};
///
/// let mut headers = HeaderMap::new();
/// assert_eq!(bearer_token(&headers), Err(RejectionKind::MissingCredentials));
/// headers.insert("authorization", "bearer abc".parse().unwrap());
/// assert_eq!(bearer_token(&headers), Ok(&b"abc"[..]));
/// ```
pub fn bearer_token(headers: &HeaderMap) -> Result<&[u8], RejectionKind> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(RejectionKind::MissingCredentials)?;
    if values.next().is_some() {
        return Err(malformed(MalformedReason::MultipleHeaders));
    }
    let bytes = value.as_bytes();
    if !none_flagged(bytes, not_visible) {
        return Err(malformed(MalformedReason::OpaqueBytes));
    }
    let bytes = trim_ows(bytes);
    let (scheme, rest) = match bytes.iter().position(|&b| b == b' ') {
        Some(i) => bytes.split_at(i),
        None => (bytes, &b""[..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(malformed(MalformedReason::WrongScheme));
    }
    let token = trim_ows(rest);
    if token.is_empty() {
        return Err(malformed(MalformedReason::EmptyToken));
    }
    if !rest.starts_with(b" ") || !is_token68(token) {
        return Err(malformed(MalformedReason::NotToken68));
    }
    Ok(token)
}

fn malformed(r: MalformedReason) -> RejectionKind {
    RejectionKind::Malformed(r)
}

fn trim_ows(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

/// Byte classes computed with comparisons and bit operations only: the
/// scan reads every byte, takes the same path whatever the bytes are, and
/// compiles to vector instructions.
#[inline(always)]
fn not_visible(b: u8) -> u8 {
    let graphic = b.wrapping_sub(0x21) < 0x5e;
    u8::from(!(graphic | (b == b' ') | (b == b'\t')))
}

#[inline(always)]
fn not_token68(b: u8) -> u8 {
    let digit = b.wrapping_sub(b'0') < 10;
    let alpha = (b | 0x20).wrapping_sub(b'a') < 26;
    let symbol = (b == b'-') | (b == b'.') | (b == b'_') | (b == b'~') | (b == b'+') | (b == b'/');
    u8::from(!(digit | alpha | symbol))
}

/// Whether no byte is flagged by `bad`; reads every byte.
#[inline(always)]
fn none_flagged(bytes: &[u8], bad: impl Fn(u8) -> u8) -> bool {
    bytes.iter().fold(0u8, |acc, &b| acc | bad(b)) == 0
}

/// `token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`
fn is_token68(t: &[u8]) -> bool {
    let body_end = t.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    body_end > 0 && none_flagged(&t[..body_end], not_token68)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn parse(v: &[u8]) -> Result<Vec<u8>, RejectionKind> {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        bearer_token(&h).map(<[u8]>::to_vec)
    }

    #[test]
    fn scheme_is_case_insensitive_and_spaces_may_repeat() {
        for v in [
            &b"Bearer abc"[..],
            b"bearer abc",
            b"BEARER abc",
            b"BeArEr    abc",
            b"Bearer abc  ",
        ] {
            assert_eq!(
                parse(v),
                Ok(b"abc".to_vec()),
                "{:?}",
                String::from_utf8_lossy(v)
            );
        }
    }

    #[test]
    fn other_schemes_and_empty_tokens_are_malformed() {
        use MalformedReason::*;
        let cases: &[(&[u8], MalformedReason)] = &[
            (b"Basic dXNlcjpwYXNz", WrongScheme),
            (b"Bearer", EmptyToken),
            (b"Bearer    ", EmptyToken),
            (b"Bearerabc", WrongScheme),
            (b"Bearer\tabc", WrongScheme),
            (b"Bearer a b", NotToken68),
            (b"Bearer a,b", NotToken68),
            (b"Bearer ===", NotToken68),
            (b"Bearer a=b", NotToken68),
            (b"Bearer \xff\xfe", OpaqueBytes),
        ];
        for (v, want) in cases {
            assert_eq!(
                parse(v),
                Err(RejectionKind::Malformed(*want)),
                "{:?}",
                String::from_utf8_lossy(v)
            );
        }
        assert_eq!(parse(b"Bearer abc=="), Ok(b"abc==".to_vec()));
    }

    #[test]
    fn byte_classes_match_their_definitions() {
        for b in 0..=255u8 {
            let visible = b == b' ' || b == b'\t' || b.is_ascii_graphic();
            assert_eq!(not_visible(b) == 0, visible, "{b}");
            let token68 =
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
            assert_eq!(not_token68(b) == 0, token68, "{b}");
        }
    }

    #[test]
    fn two_authorization_headers_are_refused() {
        let mut h = HeaderMap::new();
        h.append(AUTHORIZATION, HeaderValue::from_static("Bearer a"));
        h.append(AUTHORIZATION, HeaderValue::from_static("Bearer a"));
        assert_eq!(
            bearer_token(&h),
            Err(RejectionKind::Malformed(MalformedReason::MultipleHeaders))
        );
    }

    #[test]
    fn no_header_is_missing_credentials() {
        assert_eq!(
            bearer_token(&HeaderMap::new()),
            Err(RejectionKind::MissingCredentials)
        );
    }
}
