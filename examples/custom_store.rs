//! A user-written `TokenStore`: token records read from a JSON file, the
//! kind of thing a team writes to plug tower-pat into what they already have.
//!
//! Run it: `cargo run --example custom_store`. It mints a token, writes its
//! record (digest only) to a JSON file, loads the file into `JsonFileStore`,
//! and sends three requests through an axum router.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::{body::Body, routing::get, Router};
use http::{Request, StatusCode};
use tower::ServiceExt;
use tower_pat::{
    AuthLayer, Lookup, OwnerId, ScopeSet, TokenDigest, TokenId, TokenRecord, TokenStore,
};

/// Records loaded once from a JSON array of
/// `{"id", "digest", "owner", "name", "scopes", "expires_at"?, "revoked"?}`.
#[derive(Debug)]
struct JsonFileStore {
    records: HashMap<TokenId, Arc<TokenRecord>>,
}

impl JsonFileStore {
    fn load(path: &Path) -> Result<Self, Box<dyn std::error::Error>> {
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(path)?)?;
        let mut records = HashMap::new();
        for row in doc.as_array().ok_or("expected a JSON array")? {
            let text = |k: &str| row[k].as_str().ok_or_else(|| format!("missing {k}"));
            let id: TokenId = text("id")?.parse()?;
            let digest = hex_to_digest(text("digest")?).ok_or("bad digest")?;
            let scopes = ScopeSet::parse(
                row["scopes"]
                    .as_array()
                    .ok_or("missing scopes")?
                    .iter()
                    .filter_map(|s| s.as_str()),
            )?;
            let created = UNIX_EPOCH + Duration::from_secs(row["created_at"].as_u64().unwrap_or(0));
            let record = TokenRecord::new(
                id,
                digest,
                OwnerId::new(text("owner")?)?,
                text("name")?,
                scopes,
                created,
            )
            .with_expires_at(
                row["expires_at"]
                    .as_u64()
                    .map(|s| UNIX_EPOCH + Duration::from_secs(s)),
            )
            .with_revoked_at(row["revoked"].as_bool().unwrap_or(false).then_some(created));
            records.insert(id, Arc::new(record));
        }
        Ok(Self { records })
    }
}

fn hex_to_digest(s: &str) -> Option<TokenDigest> {
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect();
    TokenDigest::try_from_slice(&bytes?)
}

/// Everything is in memory: the answer is ready at once.
impl TokenStore for JsonFileStore {
    fn find(&self, id: TokenId) -> Lookup {
        Lookup::ready(Ok(self.records.get(&id).cloned()))
    }
}

/// Mints a token and writes its record — never the plaintext — to `path`.
fn write_store_file(path: &Path) -> String {
    let minted = tower_pat::preset::nuvlyx_live().format().mint();
    let digest: String = minted
        .digest
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let doc = serde_json::json!([{
        "id": minted.id.to_string(),
        "digest": digest,
        "owner": "demo-store",
        "name": "json bot",
        "scopes": ["orders:read"],
        "created_at": now,
    }]);
    std::fs::write(path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    minted.token.expose_secret().to_owned()
}

async fn run() -> [StatusCode; 3] {
    let path = std::env::temp_dir().join(format!("tower-pat-example-{}.json", std::process::id()));
    let token = write_store_file(&path);
    let store = JsonFileStore::load(&path).expect("store file");
    std::fs::remove_file(&path).ok();

    let auth = AuthLayer::new(store, tower_pat::preset::nuvlyx_live());
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

#[tokio::main]
async fn main() {
    let [ok, anonymous, denied] = run().await;
    println!("GET /orders with token    -> {ok}");
    println!("GET /orders without token -> {anonymous}");
    println!("GET /wallet with token    -> {denied}");
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn json_store_serves_200_401_403() {
        use http::StatusCode;
        assert_eq!(
            super::run().await,
            [
                StatusCode::OK,
                StatusCode::UNAUTHORIZED,
                StatusCode::FORBIDDEN
            ]
        );
    }
}
