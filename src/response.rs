//! Rejections: what the client is told, and what the host application learns.
//!
//! Every refusal is a response, never a service error. The precise reason is
//! a [`Rejection`], handed to the responder, put in the response extensions
//! when the layer is built with `AuthLayer::attach_rejections`, and told in
//! a `tracing` event with the `tracing` feature. The client sees only what
//! RFC 6750 and RFC 9457 prescribe:
//!
//! | case | status | `WWW-Authenticate` |
//! |---|---|---|
//! | no credentials | 401 | `Bearer realm="…"` |
//! | malformed, unknown, wrong secret, revoked, expired, owner suspended | 401 | `Bearer realm="…", error="invalid_token"` (byte-identical responses) |
//! | valid token, missing scope | 403 | `Bearer realm="…", error="insufficient_scope", scope="…"` |
//! | plain HTTP | 403 | — |
//! | store failing or timing out | 503 + `Retry-After` | — |
//!
//! Bodies are `application/problem+json` with the default [`ProblemDetails`]
//! responder. To answer in your own shape, pass any
//! `Fn(&Rejection) -> Response<B>` as the responder; [`Rejection::response`]
//! keeps the status and headers right for you:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use http::{Request, Response, StatusCode};
//! use tower::{service_fn, Layer, ServiceExt};
//! use tower_pat::transport::TlsConnection;
//! use tower_pat::{AuthLayer, MemoryStore, Rejection, RejectionKind};
//!
//! let layer = AuthLayer::new(MemoryStore::new())
//!     .attach_rejections()
//!     .responder(|r: &Rejection| {
//!         let body = format!(r#"{{"ok":false,"code":{}}}"#, r.status().as_u16());
//!         r.response(body)
//!     });
//! let svc = layer.layer(service_fn(|_: Request<()>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(String::from("orders")))
//! }));
//!
//! let req = Request::get("/orders")
//!     .extension(TlsConnection) // set by the TLS listener
//!     .header("authorization", "Bearer nvl_live_not-a-real-token")
//!     .body(())
//!     .unwrap();
//! let res = svc.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="api", error="invalid_token""#);
//! assert_eq!(res.body(), r#"{"ok":false,"code":401}"#);
//! // The precise reason stays on the server side.
//! let reason = res.extensions().get::<Rejection>().unwrap().kind();
//! assert!(matches!(reason, RejectionKind::InvalidFormat(_)));
//! # }
//! ```

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::store::StoreErrorKind;
use crate::{FormatError, ScopeSet, TokenId};

/// Why the `Authorization` header could not be read as bearer credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MalformedReason {
    /// More than one `Authorization` header.
    MultipleHeaders,
    /// The header holds bytes outside visible ASCII and space.
    OpaqueBytes,
    /// A scheme other than `Bearer` (for example `Basic`).
    WrongScheme,
    /// `Bearer` with no token after it.
    EmptyToken,
    /// The token has characters outside the RFC 6750 `token68` set, or
    /// spaces inside it.
    NotToken68,
}

/// The precise reason for a rejection. Never sent to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectionKind {
    /// No `Authorization` header.
    MissingCredentials,
    /// The header is not valid bearer credentials.
    Malformed(MalformedReason),
    /// The token fails the offline format check (no store call was made).
    InvalidFormat(FormatError),
    /// The store has no token with this id.
    UnknownToken,
    /// The id is known but the secret does not match its digest.
    SecretMismatch,
    /// The token was revoked.
    Revoked,
    /// The token expired.
    Expired,
    /// The token's owner is suspended.
    OwnerSuspended,
    /// The token lacks a scope the route requires.
    InsufficientScope,
    /// The request did not come over HTTPS.
    InsecureTransport,
    /// The store failed, timed out or panicked.
    StoreUnavailable(StoreErrorKind),
    /// A scope check ran on a request that no auth layer had
    /// authenticated: a wiring mistake, refused to fail closed.
    NotAuthenticated,
}

impl RejectionKind {
    /// Short stable name for logs and metrics (`revoked`, `expired`, …).
    pub fn as_str(&self) -> &'static str {
        match self {
            RejectionKind::MissingCredentials => "missing_credentials",
            RejectionKind::Malformed(_) => "malformed_header",
            RejectionKind::InvalidFormat(_) => "invalid_format",
            RejectionKind::UnknownToken => "unknown_token",
            RejectionKind::SecretMismatch => "secret_mismatch",
            RejectionKind::Revoked => "revoked",
            RejectionKind::Expired => "expired",
            RejectionKind::OwnerSuspended => "owner_suspended",
            RejectionKind::InsufficientScope => "insufficient_scope",
            RejectionKind::InsecureTransport => "insecure_transport",
            RejectionKind::StoreUnavailable(_) => "store_unavailable",
            RejectionKind::NotAuthenticated => "not_authenticated",
        }
    }
}

/// Whether a route needs all of its scopes or any one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeMatch {
    /// Every listed scope is required.
    All,
    /// One of the listed scopes is enough.
    Any,
}

/// The realm used unless `AuthLayer::realm` sets another.
pub(crate) const DEFAULT_REALM: &str = "api";

/// The realm of the challenges, with the two fixed `WWW-Authenticate`
/// values built once.
#[derive(Debug)]
pub(crate) struct Realm {
    name: Box<str>,
    /// Whether rejection responses carry the [`Rejection`] in their
    /// extensions (`AuthLayer::attach_rejections`).
    pub(crate) attach: bool,
    /// `WWW-Authenticate` and `Cache-Control` of the two 401 answers,
    /// ready to copy: copying a map is cheaper than building one.
    missing: HeaderMap,
    invalid: HeaderMap,
    /// How many WARN/ERROR lines rejections may still write (see
    /// `crate::trace`).
    pub(crate) log: crate::trace::LogBudgets,
}

impl Realm {
    /// The realm named `name`, which must be validated already (visible
    /// ASCII, no quote or backslash), with rejections attached to
    /// responses or not.
    ///
    /// Realms are interned for the life of the process: a layer is built
    /// with one realm name from a handful, and requests then carry a plain
    /// reference instead of counting references to a shared one. Each
    /// distinct name is allocated once.
    pub(crate) fn new(name: &str, attach: bool) -> &'static Self {
        static REALMS: std::sync::Mutex<Vec<&'static Realm>> = std::sync::Mutex::new(Vec::new());
        let mut realms = REALMS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(r) = realms
            .iter()
            .find(|r| &*r.name == name && r.attach == attach)
        {
            return r;
        }
        // Leaked like the realm itself, so copies of these values share
        // static bytes instead of counting references.
        let header = |text: String| {
            let text: &'static str = Box::leak(text.into_boxed_str());
            HeaderValue::from_str(text)
                .map(|_| HeaderValue::from_static(text))
                .unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
        };
        let headers = |challenge: String| {
            let mut h = HeaderMap::with_capacity(2);
            h.insert(WWW_AUTHENTICATE, header(challenge));
            h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h
        };
        let realm: &'static Realm = Box::leak(Box::new(Self {
            name: name.into(),
            attach,
            missing: headers(format!("Bearer realm=\"{name}\"")),
            invalid: headers(format!("Bearer realm=\"{name}\", error=\"invalid_token\"")),
            log: crate::trace::LogBudgets::new(),
        }));
        realms.push(realm);
        realm
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

/// A refused request: the reason and everything needed to answer it.
///
/// Responders receive it; with `AuthLayer::attach_rejections`, it is also
/// in the extensions of every rejection response the crate produces.
#[derive(Clone)]
pub struct Rejection {
    kind: RejectionKind,
    realm: &'static Realm,
    token_id: Option<TokenId>,
    required: Option<(ScopeSet, ScopeMatch)>,
    retry_after: Option<Duration>,
}

impl fmt::Debug for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejection")
            .field("kind", &self.kind)
            .field("token_id", &self.token_id)
            .field("required", &self.required)
            .finish_non_exhaustive()
    }
}

impl Rejection {
    pub(crate) fn new(kind: RejectionKind, realm: &'static Realm) -> Self {
        Self {
            kind,
            realm,
            token_id: None,
            required: None,
            retry_after: None,
        }
    }

    pub(crate) fn with_token_id(mut self, id: Option<TokenId>) -> Self {
        self.token_id = id;
        self
    }

    pub(crate) fn with_required(mut self, scopes: ScopeSet, mode: ScopeMatch) -> Self {
        self.required = Some((scopes, mode));
        self
    }

    pub(crate) fn with_retry_after(mut self, d: Duration) -> Self {
        self.retry_after = Some(d);
        self
    }

    /// Whether the layer attaches this rejection to its response.
    pub(crate) fn attached(&self) -> bool {
        self.realm.attach
    }

    /// The log budgets of the realm that refused.
    pub(crate) fn log(&self) -> &crate::trace::LogBudgets {
        &self.realm.log
    }

    /// The precise reason.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// The id of the token involved, when one was well-formed. Never the
    /// secret.
    pub fn token_id(&self) -> Option<TokenId> {
        self.token_id
    }

    /// The scopes the route requires, for [`RejectionKind::InsufficientScope`].
    pub fn required_scopes(&self) -> Option<(&ScopeSet, ScopeMatch)> {
        self.required.as_ref().map(|(s, m)| (s, *m))
    }

    /// The realm of the `WWW-Authenticate` challenge.
    pub fn realm(&self) -> &str {
        self.realm.name()
    }

    /// The prepared headers of the fixed 401 answers (no credentials, or an
    /// invalid token), for the kinds answered with one of them.
    fn fixed_headers(&self) -> Option<&'static HeaderMap> {
        match self.kind {
            RejectionKind::MissingCredentials | RejectionKind::NotAuthenticated => {
                Some(&self.realm.missing)
            }
            RejectionKind::InsufficientScope
            | RejectionKind::InsecureTransport
            | RejectionKind::StoreUnavailable(_) => None,
            _ => Some(&self.realm.invalid),
        }
    }

    /// The status code to answer with.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            RejectionKind::InsufficientScope | RejectionKind::InsecureTransport => {
                StatusCode::FORBIDDEN
            }
            RejectionKind::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The OAuth error code (`invalid_token`, `insufficient_scope`), if the
    /// answer carries one. `None` for missing credentials.
    pub fn error_code(&self) -> Option<&'static str> {
        match self.kind {
            RejectionKind::MissingCredentials | RejectionKind::NotAuthenticated => None,
            RejectionKind::InsufficientScope => Some("insufficient_scope"),
            RejectionKind::InsecureTransport => Some("https_required"),
            RejectionKind::StoreUnavailable(_) => Some("temporarily_unavailable"),
            _ => Some("invalid_token"),
        }
    }

    /// The `WWW-Authenticate` challenge, for 401 and insufficient-scope 403.
    pub fn www_authenticate(&self) -> Option<HeaderValue> {
        if let Some(fixed) = self.fixed_headers() {
            return fixed.get(WWW_AUTHENTICATE).cloned();
        }
        if self.kind != RejectionKind::InsufficientScope {
            return None;
        }
        let scope = self
            .required
            .as_ref()
            .map(|(s, _)| s.to_space_separated())
            .unwrap_or_default();
        let realm = self.realm.name();
        let text =
            format!("Bearer realm=\"{realm}\", error=\"insufficient_scope\", scope=\"{scope}\"");
        // The realm is validated when the layer is built and scopes are
        // visible ASCII by construction.
        HeaderValue::from_str(&text).ok()
    }

    /// The problem details (RFC 9457) for this rejection.
    pub fn problem(&self) -> Problem {
        let (type_uri, title, detail): (&'static str, &'static str, String) = match self.kind {
            RejectionKind::MissingCredentials | RejectionKind::NotAuthenticated => (
                "https://www.rfc-editor.org/rfc/rfc6750#section-3",
                "Authentication required",
                "Send a token in the Authorization header: `Authorization: Bearer <token>`."
                    .into(),
            ),
            RejectionKind::InsufficientScope => {
                let (scopes, mode) = self
                    .required
                    .as_ref()
                    .map(|(s, m)| (s.to_space_separated(), *m))
                    .unwrap_or((String::new(), ScopeMatch::All));
                let detail = match mode {
                    ScopeMatch::All => format!("This token lacks a required scope; required: {scopes}."),
                    ScopeMatch::Any => format!("This token needs one of these scopes: {scopes}."),
                };
                ("https://www.rfc-editor.org/rfc/rfc6750#section-3.1", "Insufficient scope", detail)
            }
            RejectionKind::InsecureTransport => (
                "https://www.rfc-editor.org/rfc/rfc6750#section-5.3",
                "HTTPS required",
                "This API accepts requests over HTTPS only. If a token was sent over plain HTTP, revoke it."
                    .into(),
            ),
            RejectionKind::StoreUnavailable(_) => (
                "about:blank",
                "Service Unavailable",
                "Authentication is temporarily unavailable; retry later.".into(),
            ),
            _ => (
                "https://www.rfc-editor.org/rfc/rfc6750#section-3.1",
                "Invalid token",
                "The token is malformed, unknown, revoked or expired, or its owner is suspended."
                    .into(),
            ),
        };
        Problem {
            type_uri,
            title,
            status: self.status(),
            detail,
            error: self.error_code(),
            required_scopes: match self.kind {
                RejectionKind::InsufficientScope => self.required.as_ref().map(|(s, _)| s.clone()),
                _ => None,
            },
        }
    }

    /// A response with this rejection's status and headers
    /// (`WWW-Authenticate`, `Retry-After`, `Cache-Control: no-store`) and
    /// the given body. The content type is left to the caller.
    pub fn response<B>(&self, body: B) -> Response<B> {
        let mut res = Response::new(body);
        *res.status_mut() = self.status();
        let h = res.headers_mut();
        if let (Some(fixed), None) = (self.fixed_headers(), self.retry_after) {
            *h = fixed.clone();
            return res;
        }
        if let Some(v) = self.www_authenticate() {
            h.insert(WWW_AUTHENTICATE, v);
        }
        if let Some(d) = self.retry_after {
            h.insert(RETRY_AFTER, HeaderValue::from(d.as_secs().max(1)));
        }
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}

/// RFC 9457 problem details, as the default responder writes them.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Problem {
    /// `type` member.
    pub type_uri: &'static str,
    /// `title` member.
    pub title: &'static str,
    /// `status` member.
    pub status: StatusCode,
    /// `detail` member: helps a legitimate client, never an attacker.
    pub detail: String,
    /// Extension member `error`: the OAuth error code, if any.
    pub error: Option<&'static str>,
    /// Extension member `required_scopes`, for insufficient scope.
    pub required_scopes: Option<ScopeSet>,
}

impl Problem {
    /// The JSON document.
    pub fn to_json(&self) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The headers `response` must produce, built field by field.
    fn expected_headers(r: &Rejection) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = r.www_authenticate() {
            h.insert(WWW_AUTHENTICATE, v);
        }
        if let Some(d) = r.retry_after {
            h.insert(RETRY_AFTER, HeaderValue::from(d.as_secs().max(1)));
        }
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h
    }

    #[test]
    fn copied_header_templates_equal_headers_built_one_by_one() {
        use crate::store::StoreErrorKind as S;
        let kinds = [
            RejectionKind::MissingCredentials,
            RejectionKind::Malformed(MalformedReason::WrongScheme),
            RejectionKind::InvalidFormat(FormatError::BadChecksum),
            RejectionKind::UnknownToken,
            RejectionKind::SecretMismatch,
            RejectionKind::Revoked,
            RejectionKind::Expired,
            RejectionKind::OwnerSuspended,
            RejectionKind::InsufficientScope,
            RejectionKind::InsecureTransport,
            RejectionKind::StoreUnavailable(S::Timeout),
            RejectionKind::NotAuthenticated,
        ];
        let realm = Realm::new("templates", false);
        for kind in kinds {
            let scopes = ScopeSet::parse(["orders:read"]).unwrap();
            for r in [
                Rejection::new(kind, realm),
                Rejection::new(kind, realm).with_retry_after(Duration::from_secs(2)),
                Rejection::new(kind, realm).with_required(scopes, ScopeMatch::All),
            ] {
                let res = r.response(());
                assert_eq!(res.status(), r.status(), "{kind:?}");
                assert_eq!(res.headers(), &expected_headers(&r), "{kind:?}");
            }
        }
    }

    #[test]
    fn realms_are_interned_once_per_name() {
        let a = Realm::new("interned-a", false);
        assert!(std::ptr::eq(a, Realm::new("interned-a", false)));
        let b = Realm::new("interned-b", false);
        assert!(!std::ptr::eq(a, b));
        let attached = Realm::new("interned-a", true);
        assert!(!std::ptr::eq(a, attached) && attached.attach && !a.attach);
        assert!(std::ptr::eq(attached, Realm::new("interned-a", true)));
        assert_eq!((a.name(), b.name()), ("interned-a", "interned-b"));
        assert_eq!(
            a.invalid[WWW_AUTHENTICATE],
            r#"Bearer realm="interned-a", error="invalid_token""#
        );
        assert_eq!(b.missing[WWW_AUTHENTICATE], r#"Bearer realm="interned-b""#);
        assert_eq!(b.missing[CACHE_CONTROL], "no-store");
    }
}
