//! Leak reports (GitHub's secret scanning partner contract): a signed
//! report revokes exactly the tokens it names; nothing unsigned, tampered
//! or malformed revokes anything.

#[cfg(feature = "tracing")]
#[path = "../../../tests/common/capture.rs"]
mod capture;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use http::{Request, StatusCode};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};
use serde_json::{json, Value};
use tower::ServiceExt;
use tower_pat::admin::{NewToken, TokenManager};
use tower_pat::events::Event;
use tower_pat::test_kit::status_now;
use tower_pat::{
    store::{RevocationReason, TokenAdmin, TokenStore},
    token::TokenDigest,
    MemoryStore,
};
use tower_pat_leak_reports::{leak_reports, BoxError, KeySource, LeakReports, ScannerKey};

const KEY_ID: &str = "90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a";

fn signing_key(seed: u8) -> SigningKey {
    SigningKey::from_slice(&[seed; 32]).unwrap()
}

fn scanner_key(id: &str, key: &SigningKey) -> ScannerKey {
    let pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    ScannerKey::from_pem(id, &pem).unwrap()
}

fn sign(key: &SigningKey, body: &str) -> String {
    let sig: Signature = key.sign(body.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes())
}

/// A key source that counts fetches and can be made to fail or to return
/// other keys (the scanner rotating its keys).
#[derive(Clone, Default)]
struct Keys {
    keys: Arc<Mutex<Vec<ScannerKey>>>,
    fetches: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl KeySource for Keys {
    async fn fetch(&self) -> Result<Vec<ScannerKey>, BoxError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err("key endpoint unreachable".into());
        }
        Ok(self.keys.lock().unwrap().clone())
    }
}

struct World {
    store: MemoryStore,
    tokens: TokenManager<MemoryStore>,
    endpoint: LeakReports<MemoryStore>,
    keys: Keys,
    events: Arc<Mutex<Vec<Event>>>,
}

fn world() -> World {
    let store = MemoryStore::new();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let events = events.clone();
        move |e: &Event| events.lock().unwrap().push(e.clone())
    };
    let tokens = TokenManager::new(store.clone(), nuvlyx::live()).events(sink);
    let keys = Keys::default();
    keys.keys
        .lock()
        .unwrap()
        .push(scanner_key(KEY_ID, &signing_key(7)));
    let endpoint = leak_reports(tokens.clone(), keys.clone());
    World {
        store,
        tokens,
        endpoint,
        keys,
        events,
    }
}

impl World {
    async fn mint(&self, name: &str) -> String {
        let created = self
            .tokens
            .create(NewToken::new(name, "shop-1", ["orders:read"]))
            .await
            .unwrap();
        created.token.expose_secret().to_owned()
    }

    async fn post(&self, key_id: &str, signature: &str, body: &str) -> (StatusCode, Value) {
        let req = Request::post("/leak-reports/github")
            .header("content-type", "application/json")
            .header("GITHUB-PUBLIC-KEY-IDENTIFIER", key_id)
            .header("GITHUB-PUBLIC-KEY-SIGNATURE", signature)
            .body(body.to_owned())
            .unwrap();
        let res = self.endpoint.clone().oneshot(req).await.unwrap();
        let status = res.status();
        assert_eq!(res.headers()["content-type"], "application/json");
        let value = serde_json::from_str(res.body()).unwrap();
        (status, value)
    }

    async fn report(&self, body: &str) -> (StatusCode, Value) {
        self.post(KEY_ID, &sign(&signing_key(7), body), body).await
    }

    async fn status(&self, token: &str) -> u16 {
        status_now(&self.store, &nuvlyx::live(), token).await
    }

    fn revocations(&self) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, Event::TokenRevoked { .. }))
            .count()
    }
}

fn report_of(tokens: &[&str], url: &str) -> String {
    let entries: Vec<Value> = tokens
        .iter()
        .map(|t| json!({"token": t, "type": "nuvlyx_api_token", "url": url, "source": "content"}))
        .collect();
    serde_json::to_string(&entries).unwrap()
}

const URL: &str = "https://github.com/octo/bot/blob/12345600b9cbe38a219f39a9941c9319b600c002/.env";

#[tokio::test]
async fn a_signed_report_revokes_the_token_which_then_gets_401() {
    let w = world();
    let leaked = w.mint("ci bot").await;
    let other = w.mint("other bot").await;
    assert_eq!(w.status(&leaked).await, 200);

    let (status, feedback) = w.report(&report_of(&[&leaked], URL)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        feedback,
        json!([{
            "token_hash": TokenDigest::of(&leaked).to_hex(),
            "token_type": "nuvlyx_api_token",
            "label": "true_positive",
        }])
    );
    assert!(
        !feedback.to_string().contains(&leaked),
        "the feedback names the token by its hash, never in clear"
    );
    assert_eq!(w.status(&leaked).await, 401);
    assert_eq!(w.status(&other).await, 200, "only the reported token");

    let id = nuvlyx::live().format().parse(&leaked).unwrap();
    let record = w.store.find(id).await.unwrap().unwrap();
    assert_eq!(
        record.revoked_reason,
        Some(RevocationReason::Leaked {
            url: Some(URL.to_owned())
        })
    );
    let events = w.events.lock().unwrap();
    assert!(events.iter().any(|e| matches!(
        e,
        Event::TokenRevoked { id: rid, reason: RevocationReason::Leaked { url: Some(u) } }
            if *rid == id && u == URL
    )));
}

#[tokio::test]
async fn a_tampered_body_a_wrong_key_or_a_malformed_report_revokes_nothing() {
    let w = world();
    let token = w.mint("ci bot").await;
    let body = report_of(&[&token], URL);
    let good = sign(&signing_key(7), &body);

    // The body changed after signing (another URL, same token).
    let tampered = body.replace("octo/bot", "octo/b0t");
    assert_eq!(w.post(KEY_ID, &good, &tampered).await.0, 401);
    // Signed by another key under the known key's id.
    assert_eq!(
        w.post(KEY_ID, &sign(&signing_key(8), &body), &body).await.0,
        401
    );
    // Signed by a key the scanner never published.
    assert_eq!(w.post("not-a-key", &good, &body).await.0, 401);
    // Headers missing or not a signature.
    assert_eq!(w.post(KEY_ID, "", &body).await.0, 401);
    assert_eq!(w.post(KEY_ID, "bm90IGEgc2lnbmF0dXJl", &body).await.0, 401);
    let unsigned = Request::post("/").body(body.clone()).unwrap();
    let res = w.endpoint.clone().oneshot(unsigned).await.unwrap();
    assert_eq!(res.status(), 401);
    // Properly signed, but not the report's JSON shape.
    for malformed in ["{\"token\": \"x\"}", "[{\"type\": \"t\"}]", "not json"] {
        let (status, _) = w.report(malformed).await;
        assert_eq!(status, 400, "{malformed}");
    }
    // Too large, or not a POST.
    let small = leak_reports(w.tokens.clone(), w.keys.clone()).max_body(64);
    let req = Request::post("/")
        .header("GITHUB-PUBLIC-KEY-IDENTIFIER", KEY_ID)
        .header("GITHUB-PUBLIC-KEY-SIGNATURE", &good)
        .body(body.clone())
        .unwrap();
    assert_eq!(small.oneshot(req).await.unwrap().status(), 413);
    let get = Request::get("/").body(String::new()).unwrap();
    let res = w.endpoint.clone().oneshot(get).await.unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "POST");

    assert_eq!(
        w.status(&token).await,
        200,
        "still live after every refusal"
    );
    assert_eq!(w.revocations(), 0);
    // And the genuine report still works.
    assert_eq!(w.post(KEY_ID, &good, &body).await.0, 200);
    assert_eq!(w.status(&token).await, 401);
}

#[tokio::test]
async fn a_replayed_report_changes_nothing() {
    let w = world();
    let token = w.mint("ci bot").await;
    let body = report_of(&[&token, &token], URL);
    let first = w.report(&body).await;
    let id = nuvlyx::live().format().parse(&token).unwrap();
    let after_first = w.store.find(id).await.unwrap().unwrap();
    for _ in 0..3 {
        assert_eq!(w.report(&body).await, first, "the same answer");
    }
    let after_replays = w.store.find(id).await.unwrap().unwrap();
    assert_eq!(after_replays.revoked_at, after_first.revoked_at);
    assert_eq!(after_replays.revoked_reason, after_first.revoked_reason);
    assert_eq!(w.revocations(), 1, "one revocation, one event");
}

#[tokio::test]
async fn a_report_of_a_thousand_strings_revokes_exactly_the_real_ones() {
    let w = world();
    let mut real = Vec::new();
    for i in 0..5 {
        real.push(w.mint(&format!("bot {i}")).await);
    }
    let bystanders = [w.mint("kept 1").await, w.mint("kept 2").await];
    let format = nuvlyx::live().format().clone();
    let mut reported: Vec<String> = Vec::new();
    // Well-formed tokens with a correct checksum that were never stored,
    // a test-mode token, garbage, and the five real ones spread among them.
    for i in 0..990 {
        reported.push(format.mint().token.expose_secret().to_owned());
        if i % 200 == 0 {
            reported.push(real[i / 200].clone());
        }
    }
    reported.push(
        nuvlyx::test()
            .format()
            .mint()
            .token
            .expose_secret()
            .to_owned(),
    );
    reported.push("nvl_live_not-a-token".into());
    reported.push(String::new());
    reported.push("ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into());
    assert_eq!(reported.len(), 999);
    reported.push(real[0].clone()); // one named twice
    let refs: Vec<&str> = reported.iter().map(String::as_str).collect();

    let (status, feedback) = w.report(&report_of(&refs, URL)).await;
    assert_eq!(status, StatusCode::OK);
    let labels: Vec<&str> = feedback
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels.len(), 1000, "one feedback entry per reported string");
    assert_eq!(labels.iter().filter(|l| **l == "true_positive").count(), 6);
    for t in &real {
        assert_eq!(w.status(t).await, 401);
    }
    for t in &bystanders {
        assert_eq!(w.status(t).await, 200);
    }
    assert_eq!(w.revocations(), 5, "exactly the five real tokens");
    let revoked = w
        .store
        .list(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.revoked_at.is_some())
        .count();
    assert_eq!(revoked, 5);
}

#[tokio::test]
async fn keys_are_fetched_once_refetched_for_a_new_key_and_never_in_a_loop() {
    let w = world();
    let token = w.mint("ci bot").await;
    let body = report_of(&["nvl_live_nothing"], URL);
    assert_eq!(w.report(&body).await.0, 200);
    assert_eq!(w.report(&body).await.0, 200);
    assert_eq!(
        w.keys.fetches.load(Ordering::SeqCst),
        1,
        "fetched once, kept"
    );

    // The scanner rotates its keys: the first report signed with the new
    // key fetches again, and is accepted.
    let new_key = signing_key(9);
    w.keys
        .keys
        .lock()
        .unwrap()
        .push(scanner_key("key-2", &new_key));
    // (A fetch within the last minute is not repeated: a fresh endpoint.)
    let endpoint = leak_reports(w.tokens.clone(), w.keys.clone());
    let report = report_of(&[&token], URL);
    let signed = |key: &SigningKey, id: &str| {
        Request::post("/")
            .header("GITHUB-PUBLIC-KEY-IDENTIFIER", id)
            .header("GITHUB-PUBLIC-KEY-SIGNATURE", sign(key, &report))
            .body(report.clone())
            .unwrap()
    };
    let before = w.keys.fetches.load(Ordering::SeqCst);
    let res = endpoint
        .clone()
        .oneshot(signed(&new_key, "key-2"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(w.status(&token).await, 401);
    // Made-up key ids: at most one more fetch a minute, however many.
    for i in 0..50 {
        let res = endpoint
            .clone()
            .oneshot(signed(&new_key, &format!("made-up-{i}")))
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    assert_eq!(w.keys.fetches.load(Ordering::SeqCst) - before, 1);
}

#[tokio::test(start_paused = true)]
async fn when_the_keys_cannot_be_fetched_the_answer_is_503_and_nothing_is_revoked() {
    let w = world();
    let token = w.mint("ci bot").await;
    w.keys.down.store(true, Ordering::SeqCst);
    let body = report_of(&[&token], URL);
    let (status, _) = w.report(&body).await;
    assert_eq!(status, 503, "the scanner retries");
    assert_eq!(w.status(&token).await, 200);
    // The key endpoint is back, but a failed fetch waits its minute like
    // any other: the retried report is 503 again, without a fetch.
    w.keys.down.store(false, Ordering::SeqCst);
    assert_eq!(w.report(&body).await.0, 503);
    assert_eq!(w.keys.fetches.load(Ordering::SeqCst), 1);
    tokio::time::advance(std::time::Duration::from_secs(61)).await;
    assert_eq!(w.report(&body).await.0, 200);
    assert_eq!(w.status(&token).await, 401);
    assert_eq!(w.keys.fetches.load(Ordering::SeqCst), 2);
}

/// Issue #22 (4): made-up key ids while the key endpoint fails cause one
/// fetch, not one per request, and one warning per fetch; the waits
/// double with each failure in a row.
#[tokio::test(start_paused = true)]
async fn failed_key_fetches_are_limited_with_backoff_and_logged() {
    #[cfg(feature = "tracing")]
    let (log, _guard) = capture::capture_everything();
    let w = world();
    w.keys.down.store(true, Ordering::SeqCst);
    let body = report_of(&["nvl_live_nothing"], URL);
    let made_up = |i: usize| {
        let body = body.clone();
        Request::post("/")
            .header("GITHUB-PUBLIC-KEY-IDENTIFIER", format!("made-up-{i}"))
            .header("GITHUB-PUBLIC-KEY-SIGNATURE", sign(&signing_key(7), &body))
            .body(body)
            .unwrap()
    };
    for i in 0..30 {
        let res = w.endpoint.clone().oneshot(made_up(i)).await.unwrap();
        assert_eq!(res.status(), 503);
    }
    assert_eq!(
        w.keys.fetches.load(Ordering::SeqCst),
        1,
        "one fetch for 30 requests"
    );
    // A minute later: one more try, which fails too; the next waits two.
    tokio::time::advance(std::time::Duration::from_secs(61)).await;
    for i in 0..30 {
        w.endpoint.clone().oneshot(made_up(i)).await.unwrap();
    }
    assert_eq!(w.keys.fetches.load(Ordering::SeqCst), 2);
    tokio::time::advance(std::time::Duration::from_secs(61)).await;
    w.endpoint.clone().oneshot(made_up(0)).await.unwrap();
    assert_eq!(
        w.keys.fetches.load(Ordering::SeqCst),
        2,
        "backoff: two minutes"
    );
    tokio::time::advance(std::time::Duration::from_secs(60)).await;
    w.endpoint.clone().oneshot(made_up(0)).await.unwrap();
    assert_eq!(w.keys.fetches.load(Ordering::SeqCst), 3);
    #[cfg(feature = "tracing")]
    {
        let warnings: Vec<_> = log
            .lines_at("WARN")
            .into_iter()
            .filter(|l| l.contains("fetching the scanner's public keys failed"))
            .collect();
        assert_eq!(warnings.len(), 3, "one warning per fetch: {warnings:?}");
    }
}

/// Issue #22 (10): the contract does not say whether signatures are
/// low-S, so both forms verify; the second form of a signature is a replay
/// of the same body, which changes nothing.
#[tokio::test]
async fn a_high_s_signature_verifies_and_its_replay_changes_nothing() {
    let w = world();
    let token = w.mint("ci bot").await;
    let body = report_of(&[&token], URL);
    let signature: Signature = signing_key(7).sign(body.as_bytes());
    let (r, s) = signature.split_scalars();
    let flipped = Signature::from_scalars(r, -*s).unwrap();
    let encode = |sig: &Signature| base64::engine::general_purpose::STANDARD.encode(sig.to_der());
    assert_ne!(encode(&signature), encode(&flipped));
    assert_eq!(w.post(KEY_ID, &encode(&signature), &body).await.0, 200);
    assert_eq!(w.status(&token).await, 401);
    assert_eq!(w.revocations(), 1);
    assert_eq!(w.post(KEY_ID, &encode(&flipped), &body).await.0, 200);
    assert_eq!(w.revocations(), 1, "the replay revoked nothing more");
}

#[test]
fn githubs_key_document_is_read() {
    let pem = signing_key(7)
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let doc = json!({"public_keys": [
        {"key_identifier": KEY_ID, "key": pem, "is_current": true},
        {"key_identifier": "old", "key": pem, "is_current": false},
    ]});
    let keys = ScannerKey::from_github_document(&doc.to_string()).unwrap();
    let ids: Vec<_> = keys.iter().map(ScannerKey::id).collect();
    assert_eq!(ids, [KEY_ID, "old"]);
}
