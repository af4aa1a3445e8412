//! Where the leak-report endpoint gets the secret scanner's public keys:
//! GitHub's key document, fetched over HTTPS, or a copy of it on disk.

use anyhow::Context;
use tower_pat_leak_reports::{BoxError, KeySource, ScannerKey};

/// GitHub's published secret-scanning keys.
pub const GITHUB_KEYS: &str = "https://api.github.com/meta/public_keys/secret_scanning";

/// The key document at a URL (`https://…`) or in a file (anything else),
/// read anew on each fetch, so replacing the file rotates the keys.
pub struct KeyDocument {
    location: String,
    http: reqwest::Client,
}

impl KeyDocument {
    pub fn new(location: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("nuvlyx-api/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            location: location.to_owned(),
            http,
        })
    }
}

#[async_trait::async_trait]
impl KeySource for KeyDocument {
    async fn fetch(&self) -> Result<Vec<ScannerKey>, BoxError> {
        let text = if self.location.starts_with("https://") {
            self.http
                .get(&self.location)
                .send()
                .await?
                .error_for_status()?
                .text()
                .await?
        } else {
            tokio::fs::read_to_string(&self.location).await?
        };
        let keys = ScannerKey::from_github_document(&text)?;
        tracing::info!(keys = keys.len(), from = %self.location, "secret scanner keys fetched");
        Ok(keys)
    }
}
