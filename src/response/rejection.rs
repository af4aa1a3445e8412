//! [`Rejection`]: why a request was refused, and how to answer it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::header::{CACHE_CONTROL, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use super::responder::Problem;
use super::Realm;
use crate::limit::{ceil_secs, RateHeaders};
use crate::scope::ScopeMatch;
use crate::store::StoreErrorKind;
use crate::{scope::ScopeSet, token::FormatError, token::TokenId};

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
    /// The token is valid but restricted to networks the client address
    /// is not in (403).
    AddressNotAllowed,
    /// The token is valid and restricted to networks, but the client
    /// address is not known: no peer address, or a trusted proxy's
    /// forwarding header that could not be read (403).
    AddressUnknown,
    /// The token is valid and its request budget is spent (429).
    RateLimited,
    /// This client address failed to authenticate too often; refused
    /// before the store is asked (429).
    TooManyFailures,
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
            RejectionKind::AddressNotAllowed => "address_not_allowed",
            RejectionKind::AddressUnknown => "address_unknown",
            RejectionKind::RateLimited => "rate_limited",
            RejectionKind::TooManyFailures => "too_many_failures",
        }
    }

    /// Whether this is a failed authentication that the failed-attempt
    /// limit counts: a 401 for credentials that were sent.
    pub(crate) fn is_failed_attempt(&self) -> bool {
        !matches!(
            self,
            RejectionKind::MissingCredentials
                | RejectionKind::NotAuthenticated
                | RejectionKind::InsufficientScope
                | RejectionKind::InsecureTransport
                | RejectionKind::StoreUnavailable(_)
                | RejectionKind::AddressNotAllowed
                | RejectionKind::AddressUnknown
                | RejectionKind::RateLimited
                | RejectionKind::TooManyFailures
        )
    }
}

/// A refused request: the reason and everything needed to answer it.
///
/// Responders receive it; with `AuthLayerBuilder::attach_rejections`, it is also
/// in the extensions of every rejection response the crate produces.
#[derive(Clone)]
pub struct Rejection {
    kind: RejectionKind,
    realm: Arc<Realm>,
    token_id: Option<TokenId>,
    required: Option<(ScopeSet, ScopeMatch)>,
    retry_after: Option<Duration>,
    rate: Option<Box<RateHeaders>>,
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
    pub(crate) fn new(kind: RejectionKind, realm: Arc<Realm>) -> Self {
        Self {
            kind,
            realm,
            token_id: None,
            required: None,
            retry_after: None,
            rate: None,
        }
    }

    /// A refusal for a spent budget: `Retry-After` and the `RateLimit`
    /// fields.
    pub(crate) fn with_rate(mut self, headers: RateHeaders, retry_after: Option<Duration>) -> Self {
        self.rate = Some(Box::new(headers));
        if let Some(d) = retry_after {
            self.retry_after = Some(d);
        }
        self
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
    fn fixed_headers(&self) -> Option<&HeaderMap> {
        match self.kind {
            RejectionKind::MissingCredentials | RejectionKind::NotAuthenticated => {
                Some(&self.realm.missing)
            }
            RejectionKind::InsufficientScope
            | RejectionKind::InsecureTransport
            | RejectionKind::StoreUnavailable(_)
            | RejectionKind::AddressNotAllowed
            | RejectionKind::AddressUnknown
            | RejectionKind::RateLimited
            | RejectionKind::TooManyFailures => None,
            _ => Some(&self.realm.invalid),
        }
    }

    /// The status code to answer with.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            RejectionKind::InsufficientScope
            | RejectionKind::InsecureTransport
            | RejectionKind::AddressNotAllowed
            | RejectionKind::AddressUnknown => StatusCode::FORBIDDEN,
            RejectionKind::RateLimited | RejectionKind::TooManyFailures => {
                StatusCode::TOO_MANY_REQUESTS
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
            RejectionKind::AddressNotAllowed | RejectionKind::AddressUnknown => {
                Some("address_not_allowed")
            }
            RejectionKind::RateLimited => Some("rate_limited"),
            RejectionKind::TooManyFailures => Some("too_many_failed_attempts"),
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

    /// `Retry-After` and the `RateLimit` fields, for the answers that have
    /// them, for responders that build their own headers.
    pub(crate) fn add_limit_headers(&self, h: &mut HeaderMap) {
        if let Some(d) = self.retry_after {
            h.insert(RETRY_AFTER, HeaderValue::from(ceil_secs(d).max(1)));
        }
        if let Some(rate) = &self.rate {
            RateHeaders::clone(rate).apply(h);
        }
    }

    /// The problem details (RFC 9457) for this rejection.
    pub(crate) fn problem(&self) -> Problem {
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
            RejectionKind::AddressNotAllowed | RejectionKind::AddressUnknown => (
                "about:blank",
                "Forbidden",
                "This token may be used only from the networks its owner allowed, and this request came from another address (or one the server could not determine)."
                    .into(),
            ),
            RejectionKind::RateLimited => (
                "about:blank",
                "Too Many Requests",
                format!(
                    "This token's request budget is spent; retry in {} s. The RateLimit and RateLimit-Policy headers tell how to pace requests.",
                    self.retry_after.map_or(1, |d| ceil_secs(d).max(1))
                ),
            ),
            RejectionKind::TooManyFailures => (
                "about:blank",
                "Too Many Requests",
                format!(
                    "Too many failed authentications from this address; retry in {} s.",
                    self.retry_after.map_or(1, |d| ceil_secs(d).max(1))
                ),
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
        self.add_limit_headers(h);
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
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
            h.insert(RETRY_AFTER, HeaderValue::from(ceil_secs(d).max(1)));
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
            RejectionKind::AddressNotAllowed,
            RejectionKind::AddressUnknown,
            RejectionKind::RateLimited,
            RejectionKind::TooManyFailures,
        ];
        let realm = Arc::new(Realm::new("templates", false));
        for kind in kinds {
            let scopes = ScopeSet::parse(["orders:read"]).unwrap();
            for r in [
                Rejection::new(kind, realm.clone()),
                Rejection::new(kind, realm.clone()).with_retry_after(Duration::from_secs(2)),
                Rejection::new(kind, realm.clone()).with_required(scopes, ScopeMatch::All),
            ] {
                let res = r.response(());
                assert_eq!(res.status(), r.status(), "{kind:?}");
                assert_eq!(res.headers(), &expected_headers(&r), "{kind:?}");
            }
        }
    }
}
