//! Responders: how a [`Rejection`] becomes a response.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response, StatusCode};

use super::Rejection;
use crate::scope::ScopeSet;

/// RFC 9457 problem details, as the default responder writes them.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    /// `type` member.
    pub(crate) type_uri: &'static str,
    /// `title` member.
    pub(crate) title: &'static str,
    /// `status` member.
    pub(crate) status: StatusCode,
    /// `detail` member: helps a legitimate client, never an attacker.
    pub(crate) detail: String,
    /// Extension member `error`: the OAuth error code, if any.
    pub(crate) error: Option<&'static str>,
    /// Extension member `required_scopes`, for insufficient scope.
    pub(crate) required_scopes: Option<ScopeSet>,
}

impl Problem {
    /// The JSON document.
    pub(crate) fn to_json(&self) -> String {
        let mut out = String::with_capacity(256);
        out.push_str("{\"type\":");
        push_json_str(&mut out, self.type_uri);
        out.push_str(",\"title\":");
        push_json_str(&mut out, self.title);
        out.push_str(",\"status\":");
        out.push_str(&self.status.as_u16().to_string());
        out.push_str(",\"detail\":");
        push_json_str(&mut out, &self.detail);
        if let Some(e) = self.error {
            out.push_str(",\"error\":");
            push_json_str(&mut out, e);
        }
        if let Some(s) = &self.required_scopes {
            out.push_str(",\"required_scopes\":[");
            for (i, scope) in s.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_str(&mut out, scope.as_str());
            }
            out.push(']');
        }
        out.push('}');
        out
    }
}

fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Builds the response for a rejection. Implemented by the default
/// [`ProblemDetails`], by [`EmptyBody`], and by any
/// `Fn(&Rejection) -> Response<B>` closure.
///
/// The layer adds the [`Rejection`] to the response extensions itself, so a
/// responder cannot forget it.
pub trait Responder<B>: Clone + Send + Sync + 'static {
    /// Builds the response.
    fn respond(&self, rejection: &Rejection) -> Response<B>;
}

impl<B, F> Responder<B> for F
where
    F: Fn(&Rejection) -> Response<B> + Clone + Send + Sync + 'static,
{
    fn respond(&self, rejection: &Rejection) -> Response<B> {
        self(rejection)
    }
}

/// The default responder: `application/problem+json` bodies (RFC 9457).
/// Works with any body type that can be built from [`Bytes`] (axum's
/// `Body`, `http_body_util::Full<Bytes>`, …).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProblemDetails;

impl<B: From<Bytes>> Responder<B> for ProblemDetails {
    fn respond(&self, rejection: &Rejection) -> Response<B> {
        let body = Bytes::from(rejection.problem().to_json());
        let mut res = rejection.response(B::from(body));
        res.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        res
    }
}

/// A responder for body types that are only `Default`: status and headers,
/// empty body.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmptyBody;

impl<B: Default> Responder<B> for EmptyBody {
    fn respond(&self, rejection: &Rejection) -> Response<B> {
        rejection.response(B::default())
    }
}
