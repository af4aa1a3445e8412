//! Why a report was not acted on, and the JSON answers.

use http::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use http::{Response, StatusCode};

/// Why a report was not acted on.
#[derive(Debug)]
pub(crate) enum Refusal {
    Method,
    TooLarge,
    Unreadable,
    Unsigned,
    UnknownKey,
    BadSignature,
    Malformed,
    KeysUnavailable,
    StoreFailed,
}

impl Refusal {
    pub(crate) fn into_response(self) -> Response<String> {
        let (status, detail) = match self {
            Refusal::Method => (StatusCode::METHOD_NOT_ALLOWED, "leak reports are POSTed"),
            Refusal::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "the report is too large"),
            Refusal::Unreadable => (StatusCode::BAD_REQUEST, "the report could not be read"),
            Refusal::Unsigned => (
                StatusCode::UNAUTHORIZED,
                "the key identifier or signature header is missing or not valid",
            ),
            Refusal::UnknownKey => (StatusCode::UNAUTHORIZED, "unknown signing key"),
            Refusal::BadSignature => (StatusCode::UNAUTHORIZED, "the signature does not verify"),
            Refusal::Malformed => (
                StatusCode::BAD_REQUEST,
                "the report is not a JSON array of {token, type, url, source}",
            ),
            Refusal::KeysUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the scanner's keys could not be fetched; send the report again",
            ),
            Refusal::StoreFailed => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the token store failed; send the report again",
            ),
        };
        let mut res = json_response(status, serde_json::json!({ "error": detail }));
        if status == StatusCode::METHOD_NOT_ALLOWED {
            res.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("60"));
        }
        res
    }
}

pub(crate) fn json_response(status: StatusCode, body: impl serde::Serialize) -> Response<String> {
    let mut res = Response::new(serde_json::to_string(&body).unwrap_or_default());
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}
