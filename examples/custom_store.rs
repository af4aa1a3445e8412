//! A store written from scratch: token records in a JSON file, the kind of
//! thing a team writes to plug tower-pat into what they already have.
//!
//! It shows the whole path of a custom store:
//! - `TokenStore::find` for the layer (answered from memory: `Lookup::ready`);
//! - `TokenAdmin` for minting and revoking through `TokenManager`, with the
//!   rules the manager and the layer rely on (conflict on an existing id,
//!   newest first, `cap_expiry` never extends, `find` fills in
//!   `owner_suspended`);
//! - the conformance suite every shipped store passes, run on this one by
//!   `cargo test --example custom_store --features test-kit`.
//!
//! Run it: `cargo run --example custom_store --features test-kit`. It mints
//! a token into a JSON file (digest only, never the plaintext), reopens the
//! file as a new store, and sends three requests through an axum router.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use axum::{body::Body, routing::get, Router};
use http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;
use tower_pat::admin::{NewToken, TokenManager};
use tower_pat::{
    scope::ScopeSet,
    store::{
        Lookup, OwnerId, RevocationReason, StoreError, StoreErrorKind, TokenAdmin, TokenRecord,
        TokenStore,
    },
    token::{TokenDigest, TokenId},
    AuthLayer,
};

/// Records kept in memory and written to a JSON file on every change.
#[derive(Debug, Clone)]
struct JsonFileStore {
    path: PathBuf,
    state: Arc<Mutex<State>>,
    /// Tests only: deletes the file when the last handle goes.
    _scratch: Option<Arc<RemoveOnDrop>>,
}

/// Deletes a file when dropped.
#[derive(Debug)]
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        std::fs::remove_file(&self.0).ok();
    }
}

#[derive(Debug, Default)]
struct State {
    /// Newest first, as `TokenAdmin::list` must answer.
    records: Vec<Arc<TokenRecord>>,
    suspended: HashSet<OwnerId>,
}

impl JsonFileStore {
    /// Opens `path`, or starts empty if it does not exist.
    fn open(path: &Path) -> Result<Self, Box<dyn std::error::Error>> {
        let mut state = State::default();
        if let Ok(bytes) = std::fs::read(path) {
            let doc: Value = serde_json::from_slice(&bytes)?;
            for row in doc["tokens"].as_array().ok_or("expected tokens")? {
                state.records.push(Arc::new(from_json(row)?));
            }
            for owner in doc["suspended"].as_array().ok_or("expected suspended")? {
                state
                    .suspended
                    .insert(owner.as_str().ok_or("bad owner")?.parse()?);
            }
        }
        Ok(Self {
            path: path.to_owned(),
            state: Arc::new(Mutex::new(state)),
            _scratch: None,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the file: a temporary file, then a rename, so a reader never
    /// sees half of it.
    fn save(&self, state: &State) -> Result<(), StoreError> {
        let doc = json!({
            "tokens": state.records.iter().map(|r| to_json(r)).collect::<Vec<_>>(),
            "suspended": state.suspended.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
        });
        let tmp = self.path.with_extension("tmp");
        let bytes = serde_json::to_vec_pretty(&doc).map_err(StoreError::unavailable)?;
        std::fs::write(&tmp, bytes).map_err(StoreError::unavailable)?;
        std::fs::rename(&tmp, &self.path).map_err(StoreError::unavailable)
    }

    /// Changes the record of `id` and saves; `NotFound` if there is none.
    fn update(&self, id: TokenId, change: impl FnOnce(&mut TokenRecord)) -> Result<(), StoreError> {
        let mut state = self.state();
        let Some(slot) = state.records.iter_mut().find(|r| r.id == id) else {
            return Err(StoreError::new(StoreErrorKind::NotFound));
        };
        // Requests in flight keep the record they were handed.
        change(Arc::make_mut(slot));
        self.save(&state)
    }
}

fn micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn time(v: &Value) -> Option<SystemTime> {
    v.as_u64().map(|us| UNIX_EPOCH + Duration::from_micros(us))
}

fn to_json(r: &TokenRecord) -> Value {
    json!({
        "id": r.id.to_string(),
        "digest": r.digest.to_hex(),
        "owner": r.owner.as_str(),
        "name": &*r.name,
        "scopes": r.scopes.to_space_separated(),
        "preview": &*r.preview,
        "created_at": micros(r.created_at),
        "expires_at": r.expires_at.map(micros),
        "revoked_at": r.revoked_at.map(micros),
        "revoked_reason": r.revoked_reason.as_ref().map(|why| why.as_str()),
        "revoked_url": r.revoked_reason.as_ref().and_then(|why| why.url()),
        "last_used_at": r.last_used_at.map(micros),
        "rotated_from": r.rotated_from.map(|id| id.to_string()),
        "rate_limit": r.rate_limit.map(|l| l.to_string()),
        "allowed_ips": r.allowed_ips.as_ref().map(|l| l.to_string()),
    })
}

fn from_json(row: &Value) -> Result<TokenRecord, Box<dyn std::error::Error>> {
    let text = |k: &str| row[k].as_str().ok_or_else(|| format!("missing {k}"));
    let mut record = TokenRecord::new(
        text("id")?.parse()?,
        TokenDigest::from_hex(text("digest")?).ok_or("bad digest")?,
        text("owner")?.parse()?,
        text("name")?,
        ScopeSet::parse(text("scopes")?.split(' '))?,
        time(&row["created_at"]).ok_or("missing created_at")?,
    );
    record.preview = text("preview")?.into();
    record.expires_at = time(&row["expires_at"]);
    record.revoked_at = time(&row["revoked_at"]);
    if let Some(why) = row["revoked_reason"].as_str() {
        let url = row["revoked_url"].as_str();
        record.revoked_reason =
            Some(RevocationReason::from_parts(why, url).ok_or("unknown revocation reason")?);
    }
    record.last_used_at = time(&row["last_used_at"]);
    record.rotated_from = row["rotated_from"].as_str().map(str::parse).transpose()?;
    record.rate_limit = row["rate_limit"].as_str().map(str::parse).transpose()?;
    record.allowed_ips = row["allowed_ips"].as_str().map(str::parse).transpose()?;
    Ok(record)
}

/// Verification: everything is in memory, so the answer is ready at once.
impl TokenStore for JsonFileStore {
    fn find(&self, id: TokenId) -> Lookup {
        let state = self.state();
        let found = state.records.iter().find(|r| r.id == id).map(|r| {
            if state.suspended.contains(&r.owner) {
                // `find` fills in `owner_suspended`.
                let mut r = TokenRecord::clone(r);
                r.owner_suspended = true;
                Arc::new(r)
            } else {
                r.clone()
            }
        });
        Lookup::ready(Ok(found))
    }

    /// A hint on the request path: keep it in memory; `save` writes it
    /// with the next change (a real store would batch it on a timer).
    fn record_use(&self, id: TokenId, at: SystemTime, _from: Option<std::net::IpAddr>) {
        let mut state = self.state();
        if let Some(r) = state.records.iter_mut().find(|r| r.id == id) {
            if r.last_used_at.is_none_or(|t| t < at) {
                Arc::make_mut(r).last_used_at = Some(at);
            }
        }
    }
}

/// Administration: what `TokenManager` builds minting, rotation,
/// revocation and suspension on.
#[async_trait]
impl TokenAdmin for JsonFileStore {
    async fn insert(&self, record: TokenRecord) -> Result<(), StoreError> {
        let mut state = self.state();
        // An existing id is a conflict: a revoked token can never return.
        if state.records.iter().any(|r| r.id == record.id) {
            return Err(StoreError::new(StoreErrorKind::Conflict));
        }
        // One live token per owner and name, but for a rotation's
        // successor: the token it replaces (and those that one replaced)
        // may still be in their grace.
        if record.holds_name_at(record.created_at) {
            let mut replaced = Vec::new();
            let mut next = record.rotated_from;
            while let Some(id) = next.filter(|id| !replaced.contains(id)) {
                replaced.push(id);
                next = state
                    .records
                    .iter()
                    .find(|r| r.id == id)
                    .and_then(|r| r.rotated_from);
            }
            let taken = state.records.iter().any(|r| {
                r.owner == record.owner
                    && r.name == record.name
                    && !replaced.contains(&r.id)
                    && r.holds_name_at(record.created_at)
            });
            if taken {
                return Err(StoreError::new(StoreErrorKind::NameInUse));
            }
        }
        state.records.insert(0, Arc::new(record));
        self.save(&state)
    }

    async fn list(&self, owner: Option<&OwnerId>) -> Result<Vec<TokenRecord>, StoreError> {
        let state = self.state();
        Ok(state
            .records
            .iter()
            .filter(|r| owner.is_none_or(|o| &r.owner == o))
            .map(|r| {
                let mut r = TokenRecord::clone(r);
                r.owner_suspended = state.suspended.contains(&r.owner);
                r
            })
            .collect())
    }

    async fn revoke(
        &self,
        id: TokenId,
        at: SystemTime,
        reason: &RevocationReason,
    ) -> Result<bool, StoreError> {
        let mut newly = false;
        self.update(id, |r| {
            if r.revoked_at.is_none() {
                r.revoked_at = Some(at);
                r.revoked_reason = Some(reason.clone());
                newly = true;
            }
        })?;
        Ok(newly)
    }

    async fn cap_expiry(&self, id: TokenId, at: SystemTime) -> Result<(), StoreError> {
        // Never extends: keep the earlier of the two.
        self.update(id, |r| {
            r.expires_at = Some(r.expires_at.map_or(at, |e| e.min(at)));
        })
    }

    async fn set_limits(
        &self,
        id: TokenId,
        rate_limit: Option<tower_pat::limit::RateLimit>,
        allowed_ips: Option<tower_pat::limit::IpAllowlist>,
    ) -> Result<(), StoreError> {
        // An allowlist is only narrowed, checked under the same lock as the
        // write.
        let mut state = self.state();
        let Some(slot) = state.records.iter_mut().find(|r| r.id == id) else {
            return Err(StoreError::new(StoreErrorKind::NotFound));
        };
        if let Some(current) = &slot.allowed_ips {
            if !current.may_become(allowed_ips.as_ref()) {
                return Err(StoreError::new(StoreErrorKind::Conflict));
            }
        }
        let r = Arc::make_mut(slot);
        r.rate_limit = rate_limit;
        r.allowed_ips = allowed_ips;
        self.save(&state)
    }

    async fn set_owner_suspended(
        &self,
        owner: &OwnerId,
        suspended: bool,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        if suspended {
            state.suspended.insert(owner.clone());
        } else {
            state.suspended.remove(owner);
        }
        self.save(&state)
    }

    async fn is_owner_suspended(&self, owner: &OwnerId) -> Result<bool, StoreError> {
        Ok(self.state().suspended.contains(owner))
    }
}

async fn run(path: &Path) -> [StatusCode; 3] {
    // Mint through the manager: it validates the scopes against the
    // catalog and hands out the plaintext once; the store gets the digest.
    let config = token_config();
    let minting = JsonFileStore::open(path).expect("store file");
    let created = TokenManager::new(minting, config.clone())
        .create(NewToken::new("json bot", "demo-store", ["orders:read"]))
        .await
        .expect("minted");
    let token = created.token.expose_secret().to_owned();

    // Another handle on the same file, as a server started later would open.
    let store = JsonFileStore::open(path).expect("store file");
    let auth = AuthLayer::new(store, config);
    let app = Router::new()
        .route(
            "/orders",
            get(|| async { "orders" }).route_layer(auth.require_scopes(["orders:read"])),
        )
        .route(
            "/wallet",
            get(|| async { "wallet" }).route_layer(auth.require_scopes(["wallet:read"])),
        )
        .layer(auth);
    let call = |path: &str, token: Option<&str>| {
        // The TLS listener marks its requests (see `tower_pat::transport`).
        let mut req = Request::get(path).extension(tower_pat::transport::TlsConnection);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        app.clone().oneshot(req.body(Body::empty()).unwrap())
    };
    [
        call("/orders", Some(&token)).await.unwrap().status(),
        call("/orders", None).await.unwrap().status(),
        call("/wallet", Some(&token)).await.unwrap().status(),
    ]
}

fn scratch_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "tower-pat-{name}-{}-{:x}.json",
        std::process::id(),
        rand_u64()
    ))
}

fn rand_u64() -> u64 {
    u64::from_be_bytes(*token_config().format().mint().id.as_bytes())
}

#[tokio::main]
async fn main() {
    let path = scratch_file("example");
    let [ok, anonymous, denied] = run(&path).await;
    let file = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::remove_file(&path).ok();
    println!("GET /orders with token    -> {ok}");
    println!("GET /orders without token -> {anonymous}");
    println!("GET /wallet with token    -> {denied}");
    println!(
        "the file holds {} bytes; no plaintext token in it",
        file.len()
    );
}

/// This API's tokens: the format (`nvl_live_…`) and the scopes, as an
/// adopter defines its own.
fn token_config() -> tower_pat::TokenConfig {
    tower_pat::TokenConfig::new(
        tower_pat::TokenFormat::new("nvl", tower_pat::Environment::Live).expect("a valid prefix"),
        tower_pat::ScopeCatalog::new()
            .scope("orders:read", "Read orders and their status.")
            .scope("orders:write", "Create orders on behalf of customers.")
            .scope("wallet:read", "Inspect wallet balance."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn json_store_serves_200_401_403() {
        let path = scratch_file("test");
        let statuses = run(&path).await;
        std::fs::remove_file(&path).ok();
        assert_eq!(
            statuses,
            [
                StatusCode::OK,
                StatusCode::UNAUTHORIZED,
                StatusCode::FORBIDDEN
            ]
        );
    }

    /// How the conformance suite gets a fresh store, reads what it keeps at
    /// rest, and flushes last-use times.
    #[cfg(feature = "test-kit")]
    struct JsonHarness;

    #[cfg(feature = "test-kit")]
    impl tower_pat::test_kit::Harness for JsonHarness {
        type Store = JsonFileStore;

        async fn make() -> Option<JsonFileStore> {
            let path = scratch_file("suite");
            let mut store = JsonFileStore::open(&path).unwrap();
            store._scratch = Some(Arc::new(RemoveOnDrop(path)));
            Some(store)
        }

        async fn dump(store: &JsonFileStore) -> Vec<u8> {
            std::fs::read(&store.path).unwrap()
        }

        async fn flush(store: &JsonFileStore) {
            let state = store.state();
            store.save(&state).unwrap();
        }
    }

    #[cfg(feature = "test-kit")]
    tower_pat::conformance_tests!(JsonHarness);
}
