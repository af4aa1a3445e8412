//! Lifecycle events delivered as signed webhooks, following Standard
//! Webhooks (standardwebhooks.com):
//!
//! - `POST` to `--webhook-url`, body `{"type": "token.revoked",
//!   "timestamp": "2026-11-29T12:00:00Z", "data": {…}}` (ids and
//!   metadata, never a secret);
//! - headers `webhook-id` (unique per message, the same on every retry),
//!   `webhook-timestamp` (Unix seconds) and `webhook-signature`
//!   (`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`);
//! - the key is the base64 part of the secret `whsec_…`, kept in
//!   `<data dir>/webhook-secret` (0600, created on first use; the server
//!   and the CLI read the same one). A receiver must check the signature
//!   and refuse timestamps more than a few minutes old.
//!
//! Delivery is in order, off the request path, retried up to five times
//! (0.5 s, 1 s, 2 s, 4 s apart) until the receiver answers 2xx. The CLI
//! waits for its deliveries before it exits.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::{mpsc, Notify};
use tower_pat::events::Event;

use crate::files;

const ATTEMPTS: u32 = 5;

/// A queue of signed deliveries to one URL. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Inner {
    queue: mpsc::UnboundedSender<Value>,
    pending: AtomicUsize,
    idle: Notify,
}

impl Webhooks {
    /// Starts delivering to `url`, signing with the secret in `data_dir`.
    pub fn start(url: &str, data_dir: &Path) -> Result<Self> {
        let parsed = reqwest::Url::parse(url).with_context(|| format!("--webhook-url {url}"))?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(anyhow!("--webhook-url must be an http(s) URL"));
        }
        let key = load_or_create_secret(&data_dir.join("webhook-secret"))?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("nuvlyx-api/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(10))
            .build()
            .context("building the HTTP client")?;
        let (queue, mut rx) = mpsc::unbounded_channel::<Value>();
        let inner = Arc::new(Inner {
            queue,
            pending: AtomicUsize::new(0),
            idle: Notify::new(),
        });
        let worker = Arc::downgrade(&inner);
        tokio::spawn(async move {
            while let Some(message) = rx.recv().await {
                deliver(&http, &parsed, &key, &message).await;
                let Some(inner) = worker.upgrade() else {
                    break;
                };
                if inner.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
                    inner.idle.notify_waiters();
                }
            }
        });
        Ok(Self { inner })
    }

    /// The event sink queueing each event for delivery.
    pub fn sink(&self) -> impl Fn(&Event) + Send + Sync + 'static {
        let inner = self.inner.clone();
        move |event: &Event| {
            let message = json!({
                "type": event.name(),
                "timestamp": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
                "data": event_data(event),
            });
            inner.pending.fetch_add(1, Ordering::SeqCst);
            if inner.queue.send(message).is_err() {
                inner.pending.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// Waits until every queued event was delivered or given up on, for
    /// at most `limit`. Returns whether the queue is empty.
    pub async fn flush(&self, limit: Duration) -> bool {
        let inner = &self.inner;
        tokio::time::timeout(limit, async {
            loop {
                let idle = inner.idle.notified();
                if inner.pending.load(Ordering::SeqCst) == 0 {
                    return;
                }
                idle.await;
            }
        })
        .await
        .is_ok()
    }
}

/// One message, retried until the receiver answers 2xx.
async fn deliver(http: &reqwest::Client, url: &reqwest::Url, key: &[u8], message: &Value) {
    let body = message.to_string();
    let mut nonce = [0u8; 12];
    let _ = getrandom::fill(&mut nonce);
    let id = format!("msg_{}", hex(&nonce));
    let kind = message["type"].as_str().unwrap_or("event");
    let mut backoff = Duration::from_millis(500);
    for attempt in 1..=ATTEMPTS {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let signature = sign(key, &id, timestamp, &body);
        let sent = http
            .post(url.clone())
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", format!("v1,{signature}"))
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(res) if res.status().is_success() => return,
            Ok(res) => {
                tracing::warn!(webhook = %id, event = kind, attempt, status = %res.status(), "webhook refused")
            }
            Err(e) => {
                tracing::warn!(webhook = %id, event = kind, attempt, error = %e, "webhook not delivered")
            }
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
    tracing::error!(webhook = %id, event = kind, "webhook given up after {ATTEMPTS} attempts");
}

/// The Standard Webhooks signature: base64 HMAC-SHA256 of
/// `{id}.{timestamp}.{body}`.
pub fn sign(key: &[u8], id: &str, timestamp: u64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

/// Reads the `whsec_…` secret, creating it (32 random bytes) on first use.
/// Returns the key bytes.
pub fn load_or_create_secret(path: &Path) -> Result<Vec<u8>> {
    if !files::is_regular(path)? {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| anyhow!("{e}"))?;
        let secret = format!("whsec_{}\n", BASE64.encode(key));
        files::replace(path, secret.as_bytes(), 0o600)?;
        eprintln!("webhook signing secret created in {}", path.display());
    }
    files::tighten(path)?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let encoded = text
        .trim()
        .strip_prefix("whsec_")
        .ok_or_else(|| anyhow!("{} does not hold a whsec_ secret", path.display()))?;
    BASE64
        .decode(encoded)
        .with_context(|| format!("{} does not hold a whsec_ secret", path.display()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn time(t: SystemTime) -> Value {
    json!(humantime::format_rfc3339_seconds(t).to_string())
}

/// An event's ids and metadata (never a secret), as JSON.
fn event_data(event: &Event) -> Value {
    match event {
        Event::TokenCreated {
            id,
            owner,
            name,
            scopes,
            expires_at,
        } => json!({
            "token_id": id.to_string(), "store": owner.as_str(), "name": name,
            "scopes": scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            "expires_at": expires_at.map(time),
        }),
        Event::TokenRotated {
            old,
            new,
            owner,
            old_ends_at,
        } => json!({
            "token_id": old.to_string(), "replaced_by": new.to_string(), "store": owner.as_str(),
            "old_ends_at": old_ends_at.map(time),
        }),
        Event::TokenRevoked { id, reason } => json!({
            "token_id": id.to_string(), "reason": reason.as_str(), "url": reason.url(),
        }),
        Event::OwnerSuspended { owner } | Event::OwnerReinstated { owner } => {
            json!({ "store": owner.as_str() })
        }
        Event::TokenExposed { id } => json!({ "token_id": id.to_string() }),
        Event::TokenExpiringSoon {
            id,
            owner,
            expires_at,
            within,
        } => json!({
            "token_id": id.to_string(), "store": owner.as_str(), "expires_at": time(*expires_at),
            "within_seconds": within.as_secs(),
        }),
        _ => json!({}),
    }
}
