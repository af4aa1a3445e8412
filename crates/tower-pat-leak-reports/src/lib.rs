#![doc = include_str!("../README.md")]
//!
//! # The contract
//!
//! Leak reports for [tower-pat](https://docs.rs/tower-pat): a secret
//! scanner tells us a token was published, and the token is revoked at once.
//!
//! [`leak_reports`] is the provider endpoint of GitHub's secret scanning
//! partner program, as its public contract describes it ("Secret scanning
//! partner program", docs.github.com, `code-security/secret-scanning/
//! secret-scanning-partnership-program/secret-scanning-partner-program`,
//! read on 2026-11-29). Scanners compatible with that contract work too.
//!
//! - **Request.** `POST` with a JSON array of `{"token", "type", "url",
//!   "source"}` objects. The header `GITHUB-PUBLIC-KEY-IDENTIFIER` names
//!   the scanner's key, and `GITHUB-PUBLIC-KEY-SIGNATURE` holds a base64,
//!   DER-encoded ECDSA P-256 / SHA-256 signature of the **raw body**.
//! - **Keys.** The scanner publishes its public keys (GitHub:
//!   `https://api.github.com/meta/public_keys/secret_scanning`, a JSON
//!   document of `{"key_identifier", "key", "is_current"}` entries). The
//!   host fetches them through a [`KeySource`]; [`ScannerKey::from_github_document`]
//!   reads that document. The endpoint keeps the last keys fetched and
//!   fetches again when a report names a key id it does not know, at most
//!   once per minute (a stream of made-up key ids cannot turn it into a
//!   load on the scanner's API).
//! - **What it does.** Each reported string is parsed with the
//!   configuration's [`TokenFormat`](tower_pat::TokenFormat) and checked
//!   against the stored digest (in constant time). A match is one of our
//!   tokens: it is revoked with [`RevocationReason::Leaked`], keeping the
//!   report's URL on the record, and reported as an
//!   [`Event::TokenRevoked`](tower_pat::events::Event::TokenRevoked). A token
//!   revoked already stays as it was (a replayed report changes nothing).
//! - **Answer.** `200` with the optional feedback array of the contract:
//!   one `{"token_hash", "token_type", "label"}` per reported string,
//!   `label` being `true_positive` (one of ours, live or not) or
//!   `false_positive`. We answer with `token_hash` (the SHA-256 of the
//!   string, lowercase hex) rather than `token_raw`, so that no response
//!   carries a live secret back over the wire or into a proxy's log.
//! - **Refusals.** Nothing is revoked unless the signature verifies:
//!   missing or undecodable headers, an unknown key or a bad signature are
//!   `401`; a body that is not the JSON array is `400`; a body over the
//!   limit (1 MiB unless [`LeakReports::max_body`] says otherwise) is
//!   `413`; any other method than `POST` is `405`. If the keys cannot be
//!   fetched, or the store fails midway, the answer is `503` so that the
//!   scanner sends the report again; what was revoked stays revoked, and
//!   the retry finishes the rest.
//!
//! The contract leaves some points open; what we chose:
//! - It does not bound a report's size: 1,000 entries with a 95-character
//!   GitHub URL each take 226 KB of compact JSON, so
//!   1 MiB is the default limit.
//! - It does not say what a `url` may hold: one longer than 2,048 bytes,
//!   not `http(s)://`, or with control characters is not kept (the token
//!   is still revoked).
//! - The feedback is optional and allows either `token_hash` or
//!   `token_raw`: see above.
//! - It does not say whether signatures are normalised to low-S, so both
//!   forms are accepted: refusing high-S could refuse real reports. The
//!   malleability this allows gives nothing: anyone can turn a signed
//!   report into a second valid signature of the **same** body, and
//!   replaying a report only revokes again what it revoked already (no
//!   event, no change; `a_high_s_signature_verifies_and_its_replay_changes_nothing`).
//!
//! # A signed report, end to end
//!
//! ```rust
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use base64::Engine as _;
//! use p256::ecdsa::{signature::Signer, Signature, SigningKey};
//! use p256::pkcs8::{EncodePublicKey, LineEnding};
//! use tower::ServiceExt;
//! use tower_pat::admin::{NewToken, TokenManager};
//! use tower_pat::{store::{RevocationReason, TokenStore}, Environment, MemoryStore, ScopeCatalog, TokenConfig, TokenFormat};
//! use tower_pat_leak_reports::{leak_reports, ScannerKey};
//!
//! // The scanner's key (in production: GitHub's, from its key document).
//! let scanner = SigningKey::from_slice(&[7; 32]).unwrap();
//! let pem = scanner.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
//! let keys = vec![ScannerKey::from_pem("key-1", &pem).unwrap()];
//!
//! let config = TokenConfig::new(
//!     TokenFormat::new("nvl", Environment::Live).unwrap(),
//!     ScopeCatalog::new().scope("orders:read", "Read orders and their status."),
//! );
//! let store = MemoryStore::new();
//! let tokens = TokenManager::new(store.clone(), config);
//! let leaked = tokens.create(NewToken::new("ci bot", "shop", ["orders:read"])).await.unwrap();
//! let endpoint = leak_reports(tokens, keys);
//!
//! let body = serde_json::json!([{
//!     "token": leaked.token.expose_secret(), "type": "nvl_api_token",
//!     "url": "https://github.com/octo/bot/blob/main/.env", "source": "content",
//! }])
//! .to_string();
//! let signature: Signature = scanner.sign(body.as_bytes());
//! let request = http::Request::post("/leak-reports/github")
//!     .header("GITHUB-PUBLIC-KEY-IDENTIFIER", "key-1")
//!     .header(
//!         "GITHUB-PUBLIC-KEY-SIGNATURE",
//!         base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes()),
//!     )
//!     .body(body)
//!     .unwrap();
//! let response = endpoint.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), 200);
//! assert!(response.body().contains("true_positive"));
//! let record = store.find(leaked.record.id).await.unwrap().unwrap();
//! assert!(matches!(record.revoked_reason, Some(RevocationReason::Leaked { .. })));
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::time::Instant;

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use tower_service::Service;

use tower_pat::admin::{AdminError, TokenManager};
use tower_pat::{
    store::{RevocationReason, TokenAdmin},
    token::TokenDigest,
};

mod keys;
mod refusal;

use self::keys::KeyCache;
pub use self::keys::{BoxError, KeyError, KeySource, ScannerKey};
use self::refusal::{json_response, Refusal};

/// The header naming the key a report was signed with.
const KEY_ID_HEADER: &str = "github-public-key-identifier";
/// The header holding the report's signature.
const SIGNATURE_HEADER: &str = "github-public-key-signature";
/// Reports larger than this are refused unless `max_body` says otherwise.
const DEFAULT_MAX_BODY: usize = 1024 * 1024;
/// The longest `url` kept on a revoked record.
const MAX_URL_LEN: usize = 2048;

struct Shared<S> {
    tokens: TokenManager<S>,
    source: Box<dyn KeySource>,
    cache: Mutex<KeyCache>,
    /// One fetch at a time.
    fetching: tokio::sync::Mutex<()>,
}

/// The leak-report endpoint: a tower [`Service`] for `POST` requests (see
/// the [module documentation](self)). Cheap to clone.
pub struct LeakReports<S> {
    shared: Arc<Shared<S>>,
    max_body: usize,
}

impl<S> Clone for LeakReports<S> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            max_body: self.max_body,
        }
    }
}

impl<S> fmt::Debug for LeakReports<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeakReports")
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

/// The leak-report endpoint, revoking through `tokens` (whose format
/// recognises our tokens, and whose event sink hears of each revocation)
/// and verifying signatures with the keys of `keys`.
pub fn leak_reports<S: TokenAdmin>(
    tokens: TokenManager<S>,
    keys: impl KeySource,
) -> LeakReports<S> {
    LeakReports {
        shared: Arc::new(Shared {
            tokens,
            source: Box::new(keys),
            cache: Mutex::default(),
            fetching: tokio::sync::Mutex::new(()),
        }),
        max_body: DEFAULT_MAX_BODY,
    }
}

impl<S> LeakReports<S> {
    /// Refuses reports larger than `bytes` with `413` (default 1 MiB).
    #[must_use]
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }
}

impl<S, B> Service<Request<B>> for LeakReports<S>
where
    S: TokenAdmin,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<String>;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<String>, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (shared, max_body) = (self.shared.clone(), self.max_body);
        Box::pin(async move {
            Ok(match shared.handle(req, max_body).await {
                Ok(feedback) => json_response(StatusCode::OK, feedback),
                Err(refusal) => refusal.into_response(),
            })
        })
    }
}

/// One reported match, as the scanner sends it.
#[derive(serde::Deserialize)]
struct Reported {
    token: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    url: Option<String>,
}

/// The feedback for one reported match.
#[derive(serde::Serialize)]
struct Feedback {
    token_hash: String,
    token_type: String,
    label: &'static str,
}

impl<S: TokenAdmin> Shared<S> {
    async fn handle<B>(&self, req: Request<B>, max_body: usize) -> Result<Vec<Feedback>, Refusal>
    where
        B: Body + Send + 'static,
        B::Error: Into<BoxError>,
    {
        if req.method() != Method::POST {
            return Err(Refusal::Method);
        }
        let (key_id, signature, declared) = {
            let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
            let (Some(key_id), Some(signature)) = (header(KEY_ID_HEADER), header(SIGNATURE_HEADER))
            else {
                return Err(Refusal::Unsigned);
            };
            let signature = base64::engine::general_purpose::STANDARD
                .decode(signature.trim())
                .ok()
                .and_then(|der| Signature::from_der(&der).ok())
                .ok_or(Refusal::Unsigned)?;
            let declared =
                header(http::header::CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
            (key_id.trim().to_owned(), signature, declared)
        };
        if declared.is_some_and(|n| n > max_body as u64) {
            return Err(Refusal::TooLarge);
        }
        let body = read_body(req.into_body(), max_body).await?;

        let key = self.key(&key_id).await?;
        key.verify(&body, &signature)
            .map_err(|_| Refusal::BadSignature)?;

        // Signed by the scanner: from here on the report is trusted.
        let reported: Vec<Reported> =
            serde_json::from_slice(&body).map_err(|_| Refusal::Malformed)?;
        let mut feedback = Vec::with_capacity(reported.len());
        let mut revoked = 0usize;
        for r in reported {
            let ours = match self.tokens.resolve(&r.token).await {
                Ok(id) => {
                    let reason = RevocationReason::Leaked {
                        url: r.url.filter(|u| keepable_url(u)),
                    };
                    match self.tokens.revoke_with_reason(id, reason).await {
                        Ok(newly) => revoked += usize::from(newly),
                        Err(AdminError::UnknownToken(_)) => {}
                        Err(_) => return Err(Refusal::StoreFailed),
                    }
                    true
                }
                Err(AdminError::UnknownToken(_) | AdminError::MalformedToken(_)) => false,
                Err(_) => return Err(Refusal::StoreFailed),
            };
            feedback.push(Feedback {
                token_hash: TokenDigest::of(&r.token).to_hex(),
                token_type: r.kind,
                label: if ours {
                    "true_positive"
                } else {
                    "false_positive"
                },
            });
        }
        #[cfg(feature = "tracing")]
        tracing::info!(
            target: "tower_pat::leaks",
            key_id = %key_id,
            reported = feedback.len(),
            ours = feedback.iter().filter(|f| f.label == "true_positive").count(),
            revoked,
            "leak report"
        );
        let _ = revoked;
        Ok(feedback)
    }

    /// The key named `id`: from the keys last fetched, or fetched anew
    /// (at most once per [`REFETCH_INTERVAL`] for unknown ids, less often
    /// after failures).
    async fn key(&self, id: &str) -> Result<VerifyingKey, Refusal> {
        if let Some(key) = self.cached(id) {
            return Ok(key);
        }
        let _one_at_a_time = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(key) = self.cached(id) {
            return Ok(key);
        }
        {
            let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            if !cache.fetch_due() {
                // Waiting after a failure: the scanner should retry later.
                return Err(if cache.failures > 0 {
                    Refusal::KeysUnavailable
                } else {
                    Refusal::UnknownKey
                });
            }
            // Counted as tried before the fetch: a fetch that never ends
            // does not let every request start another.
            cache.tried_at = Some(Instant::now());
        }
        let fetched = self.source.fetch().await;
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.tried_at = Some(Instant::now());
        match fetched {
            Ok(keys) => {
                cache.keys = keys;
                cache.failures = 0;
            }
            Err(_e) => {
                cache.failures = cache.failures.saturating_add(1);
                // At most one line per fetch tried, and fetches are
                // limited as above: the log is rate-limited with them.
                #[cfg(feature = "tracing")]
                tracing::warn!(
                    target: "tower_pat::leaks",
                    error = %_e,
                    failures = cache.failures,
                    "fetching the scanner's public keys failed; reports signed with unknown keys are answered 503 until a fetch works"
                );
                return Err(Refusal::KeysUnavailable);
            }
        }
        cache
            .keys
            .iter()
            .find(|k| k.id == id)
            .map(|k| k.key)
            .ok_or(Refusal::UnknownKey)
    }

    fn cached(&self, id: &str) -> Option<VerifyingKey> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.keys.iter().find(|k| k.id == id).map(|k| k.key)
    }
}

async fn read_body<B>(body: B, max: usize) -> Result<Bytes, Refusal>
where
    B: Body + Send + 'static,
    B::Error: Into<BoxError>,
{
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Refusal::TooLarge),
        Err(_) => Err(Refusal::Unreadable),
    }
}

/// Whether a reported `url` is kept on the record.
fn keepable_url(url: &str) -> bool {
    url.len() <= MAX_URL_LEN
        && (url.starts_with("https://") || url.starts_with("http://"))
        && !url.chars().any(char::is_control)
}

#[cfg(test)]
mod tests;
