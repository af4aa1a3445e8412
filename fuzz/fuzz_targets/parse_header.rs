//! Header parsing + format check on arbitrary bytes: never panics, and
//! anything accepted really is a well-formed token.
#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tower_pat::auth::bearer_token;

fuzz_target!(|data: &[u8]| {
    let format = nuvlyx::live().format().clone();
    // The raw bytes as a token, without the header layer.
    if let Ok(id) = format.parse_bytes(data) {
        assert_eq!(data.len(), format.token_len());
        assert!(data.starts_with(b"nvl_live_"));
        assert_eq!(&data[9..25], id.to_string().as_bytes());
    }
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(http::header::AUTHORIZATION, value);
    if let Ok(token) = bearer_token(&headers) {
        assert!(!token.is_empty());
        let _ = format.parse_bytes(token);
    }
});
