//! `Authorization: Bearer <token68>` parsing (RFC 9110 §11, RFC 6750 §2.1).

use http::header::AUTHORIZATION;
use http::HeaderMap;

use crate::response::{MalformedReason, RejectionKind};
use crate::{token::FormatError, token::TokenFormat, token::TokenId};

/// What the layer reads from the headers: the token and its id, or why
/// the request is refused. The same answer as [`bearer_token`] followed by
/// [`TokenFormat::parse_bytes`] (property-tested below), faster for the
/// common case.
///
/// The common case is exactly one `Authorization` header of the form
/// `Bearer <token>` (scheme in any case, one space). A token of the layer's
/// format is made of `a-z`, `0-9` and `_`, so the byte-class scans of
/// [`bearer_token`] cannot fail on it: a token that parses, or fails only
/// its checksum, is answered at once.
/// Anything else goes through [`bearer_token`], which names the failure,
/// and is parsed once (the parse already made is reused when
/// [`bearer_token`] yields the same bytes).
#[inline]
pub(crate) fn token_and_id<'h>(
    headers: &'h HeaderMap,
    format: &TokenFormat,
) -> Result<(&'h [u8], TokenId), RejectionKind> {
    let value = authorization(headers)?;
    let early = canonical_bearer(value).map(|t| (t, format.parse_bytes(t)));
    match early {
        Some((token, Ok(id))) => return Ok((token, id)),
        // Only the checksum failed: prefix, environment and hex body all
        // passed, so the token is `a-z0-9_` and the scans cannot fail.
        Some((_, Err(FormatError::BadChecksum))) => {
            return Err(RejectionKind::InvalidFormat(FormatError::BadChecksum))
        }
        _ => {}
    }
    let token = bearer_in(value)?;
    let parsed = match early {
        Some((t, parsed)) if std::ptr::eq(t, token) => parsed,
        _ => format.parse_bytes(token),
    };
    match parsed {
        Ok(id) => Ok((token, id)),
        Err(e) => Err(RejectionKind::InvalidFormat(e)),
    }
}

/// The bytes after `Bearer ` when the header value has that shape; no
/// check of those bytes.
fn canonical_bearer(bytes: &[u8]) -> Option<&[u8]> {
    let ok = bytes.len() > 7 && bytes[..6].eq_ignore_ascii_case(b"bearer") && bytes[6] == b' ';
    ok.then(|| &bytes[7..])
}

/// Extracts the bearer token from request headers, as the layer does.
///
/// Exactly one `Authorization` header; scheme `Bearer` in any case; one or
/// more spaces; a non-empty `token68`; trailing spaces and tabs are
/// tolerated (optional whitespace around field values). Never panics. The
/// token is not checked against any format: pass it to
/// [`crate::token::TokenFormat::parse_bytes`] for that.
///
/// ```
/// use http::HeaderMap;
/// use tower_pat::{auth::bearer_token, response::RejectionKind};
///
/// let mut headers = HeaderMap::new();
/// assert_eq!(bearer_token(&headers), Err(RejectionKind::MissingCredentials));
/// headers.insert("authorization", "bearer abc".parse().unwrap());
/// assert_eq!(bearer_token(&headers), Ok(&b"abc"[..]));
/// ```
pub fn bearer_token(headers: &HeaderMap) -> Result<&[u8], RejectionKind> {
    bearer_in(authorization(headers)?)
}

/// The one `Authorization` header value.
fn authorization(headers: &HeaderMap) -> Result<&[u8], RejectionKind> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(RejectionKind::MissingCredentials)?;
    if values.next().is_some() {
        return Err(malformed(MalformedReason::MultipleHeaders));
    }
    Ok(value.as_bytes())
}

/// [`bearer_token`] on the one header value.
fn bearer_in(bytes: &[u8]) -> Result<&[u8], RejectionKind> {
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
    use proptest::prelude::*;

    fn headers(values: &[Vec<u8>]) -> Option<HeaderMap> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_bytes(v).ok()?);
        }
        Some(h)
    }

    /// Header values near the valid form: a scheme variant, separators, a
    /// real token with edits, and arbitrary bytes around it.
    fn near_valid() -> impl Strategy<Value = Vec<u8>> {
        let token = crate::testing::live()
            .format()
            .clone()
            .mint()
            .token
            .expose_secret()
            .to_owned();
        let scheme = prop_oneof![
            Just(b"Bearer".to_vec()),
            Just(b"bEaReR".to_vec()),
            Just(b"Basic".to_vec()),
            prop::collection::vec(any::<u8>(), 0..8),
        ];
        let sep = prop_oneof![
            Just(b" ".to_vec()),
            Just(b"  ".to_vec()),
            Just(b"\t".to_vec()),
            Just(b"".to_vec()),
            prop::collection::vec(prop::sample::select(vec![b' ', b'\t', b'=', b',']), 0..4),
        ];
        let edit = (0..token.len() + 1, any::<u8>(), 0..5u8).prop_map(move |(at, byte, how)| {
            let mut t = token.clone().into_bytes();
            match how {
                0 => {}
                1 if at < t.len() => t[at] = byte,
                // Another hex digit: a checksum failure when in the body.
                4 if at < t.len() => t[at] = b"0123456789abcdef"[usize::from(byte % 16)],
                2 => t.insert(at, byte),
                _ => t.truncate(at),
            }
            t
        });
        let tail = prop_oneof![
            Just(Vec::new()),
            Just(b" ".to_vec()),
            Just(b"=".to_vec()),
            prop::collection::vec(any::<u8>(), 0..3),
        ];
        (scheme, sep, edit, tail).prop_map(|(a, b, c, d)| [a, b, c, d].concat())
    }

    fn general_path<'h>(
        h: &'h HeaderMap,
        format: &TokenFormat,
    ) -> Result<(&'h [u8], TokenId), RejectionKind> {
        let token = bearer_token(h)?;
        let id = format
            .parse_bytes(token)
            .map_err(RejectionKind::InvalidFormat)?;
        Ok((token, id))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn the_layer_reads_headers_exactly_as_the_general_path(
            values in prop::collection::vec(near_valid(), 1..3),
        ) {
            let Some(h) = headers(&values) else { return Ok(()) };
            let format = crate::testing::live().format().clone();
            prop_assert_eq!(token_and_id(&h, &format), general_path(&h, &format));
        }
    }

    #[test]
    fn the_canonical_form_is_read_in_one_step() {
        let format = crate::testing::live().format().clone();
        let token = format.mint().token;
        let id = format.parse(token.expose_secret()).unwrap();
        for scheme in ["Bearer", "bearer", "BEARER"] {
            let v = format!("{scheme} {}", token.expose_secret()).into_bytes();
            let h = headers(&[v]).unwrap();
            assert!(canonical_bearer(authorization(&h).unwrap()).is_some());
            assert_eq!(token_and_id(&h, &format).map(|(_, i)| i), Ok(id));
        }
        let h = headers(&[format!("Bearer {}", token.expose_secret()).into_bytes()]).unwrap();
        let other = crate::testing::test().format().clone();
        assert_eq!(
            token_and_id(&h, &other).map(|(_, i)| i),
            general_path(&h, &other).map(|(_, i)| i)
        );
        assert!(token_and_id(&h, &other).is_err());
    }

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
