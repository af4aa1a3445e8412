//! The scanner's public keys: [`ScannerKey`], where they come from
//! ([`KeySource`]), and the cache of the last fetch.

use std::fmt;
use std::time::Duration;

use p256::ecdsa::VerifyingKey;
use p256::pkcs8::DecodePublicKey;
use tokio::time::Instant;

/// An unknown key id fetches the keys again at most this often; after a
/// failed fetch, the wait doubles with each failure up to
/// [`MAX_REFETCH_BACKOFF`].
const REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// The longest wait after failed fetches.
const MAX_REFETCH_BACKOFF: Duration = Duration::from_secs(16 * 60);

/// Any error, as a [`KeySource`] reports it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A scanner's public key: its identifier and the P-256 key.
#[derive(Clone)]
pub struct ScannerKey {
    pub(crate) id: String,
    pub(crate) key: VerifyingKey,
}

impl fmt::Debug for ScannerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScannerKey").field("id", &self.id).finish()
    }
}

/// A key that could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not a PEM-encoded P-256 public key (`-----BEGIN PUBLIC KEY-----`).
    #[error("key {0:?} is not a PEM-encoded P-256 public key")]
    NotP256(String),
    /// The key document is not the JSON the scanner publishes.
    #[error("not a secret-scanning public key document: {0}")]
    Document(String),
}

impl ScannerKey {
    /// A key from its identifier and its PEM text (SubjectPublicKeyInfo,
    /// `-----BEGIN PUBLIC KEY-----`), as scanners publish them.
    pub fn from_pem(id: &str, pem: &str) -> Result<Self, KeyError> {
        let key =
            VerifyingKey::from_public_key_pem(pem).map_err(|_| KeyError::NotP256(id.to_owned()))?;
        Ok(Self {
            id: id.to_owned(),
            key,
        })
    }

    /// The keys of GitHub's key document
    /// (`{"public_keys": [{"key_identifier", "key", "is_current"}]}`), all
    /// of them: a report may be signed with a key that is no longer
    /// current.
    pub fn from_github_document(json: &str) -> Result<Vec<Self>, KeyError> {
        #[derive(serde::Deserialize)]
        struct Document {
            public_keys: Vec<Entry>,
        }
        #[derive(serde::Deserialize)]
        struct Entry {
            key_identifier: String,
            key: String,
        }
        let doc: Document =
            serde_json::from_str(json).map_err(|e| KeyError::Document(e.to_string()))?;
        doc.public_keys
            .iter()
            .map(|e| Self::from_pem(&e.key_identifier, &e.key))
            .collect()
    }

    /// The key's identifier.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Where the endpoint gets the scanner's public keys. The host implements
/// it (fetching GitHub's key document with its own HTTP client, say); the
/// endpoint keeps what `fetch` returned and calls it again only when a
/// report names an unknown key, at most once per minute.
///
/// A `Vec<ScannerKey>` is a source that never changes (for tests, or
/// keys pinned in configuration).
#[async_trait::async_trait]
pub trait KeySource: Send + Sync + 'static {
    /// The scanner's current public keys.
    async fn fetch(&self) -> Result<Vec<ScannerKey>, BoxError>;
}

#[async_trait::async_trait]
impl KeySource for Vec<ScannerKey> {
    async fn fetch(&self) -> Result<Vec<ScannerKey>, BoxError> {
        Ok(self.clone())
    }
}

/// The keys last fetched, and when a fetch was last tried.
#[derive(Default)]
pub(crate) struct KeyCache {
    pub(crate) keys: Vec<ScannerKey>,
    pub(crate) tried_at: Option<Instant>,
    /// Failed fetches in a row.
    pub(crate) failures: u32,
}

impl KeyCache {
    /// Whether a fetch may be tried now: once per [`REFETCH_INTERVAL`],
    /// doubling with each failure in a row.
    pub(crate) fn fetch_due(&self) -> bool {
        let wait = REFETCH_INTERVAL
            .saturating_mul(1 << self.failures.saturating_sub(1).min(8))
            .min(MAX_REFETCH_BACKOFF);
        self.tried_at.is_none_or(|at| at.elapsed() >= wait)
    }
}
