//! What keeps the admin pages safe: the password (Argon2id, in a 0600
//! file), the sign-in rate limit, the per-session CSRF token and one-time
//! form nonces, and the response headers of every page.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use subtle::ConstantTimeEq;

use crate::files;

/// The shortest admin password `admin set-password` accepts.
pub const MIN_PASSWORD_LEN: usize = 12;

/// Where the admin password's hash is kept.
pub fn password_file(data_dir: &Path) -> PathBuf {
    data_dir.join("admin-password")
}

/// Hashes `password` with Argon2id (the crate's defaults: 19 MiB, 2
/// passes) and a random salt from the OS, into a PHC string.
fn hash(password: &str) -> Result<String> {
    Ok(Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| anyhow!("hashing the password: {e}"))?
        .to_string())
}

/// Stores the hash of `password` (the `admin set-password` command).
pub fn set_password(data_dir: &Path, password: &str) -> Result<()> {
    let password = password.trim_end_matches(['\r', '\n']);
    if password.chars().count() < MIN_PASSWORD_LEN {
        bail!("the admin password must be at least {MIN_PASSWORD_LEN} characters");
    }
    files::private_dir(data_dir)?;
    files::replace(&password_file(data_dir), hash(password)?.as_bytes(), 0o600)
}

/// On first start, sets a random one-time password and returns it (to be
/// printed once); `None` when a password is set already.
pub fn first_password(data_dir: &Path) -> Result<Option<String>> {
    let file = password_file(data_dir);
    if files::is_regular(&file)? {
        files::tighten(&file)?;
        return Ok(None);
    }
    let mut raw = [0u8; 12];
    getrandom::fill(&mut raw).map_err(|e| anyhow!("{e}"))?;
    let password: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    files::replace(&file, hash(&password)?.as_bytes(), 0o600)?;
    Ok(Some(password))
}

/// Checks `password` against the stored hash (read anew, so that
/// `admin set-password` applies without a restart).
pub fn check_password(data_dir: &Path, password: &str) -> Result<bool> {
    let file = password_file(data_dir);
    if !files::is_regular(&file)? {
        return Ok(false);
    }
    let stored =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let parsed =
        PasswordHash::new(stored.trim()).map_err(|e| anyhow!("{}: {e}", file.display()))?;
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

/// Failed sign-ins allowed per client address in one window.
pub const MAX_FAILURES: u32 = 5;
/// The window, and how long a client that used it up waits.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failed sign-ins allowed from all clients together in one window (a
/// botnet spreading its guesses).
const MAX_FAILURES_ALL: u32 = 100;

/// Counts failed sign-ins per client address and in all.
#[derive(Default)]
pub struct SignInLimiter {
    state: Mutex<LimiterState>,
}

#[derive(Default)]
struct LimiterState {
    per_client: HashMap<IpAddr, (u32, Instant)>,
    all: (u32, Option<Instant>),
}

impl SignInLimiter {
    /// `Err(wait)` if `client` (or everyone) must wait before trying again.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        s.per_client
            .retain(|_, (_, since)| now.duration_since(*since) < FAILURE_WINDOW);
        if let (_, Some(since)) = s.all {
            if now.duration_since(since) >= FAILURE_WINDOW {
                s.all = (0, None);
            }
        }
        let blocked = |count: u32, max: u32, since: Instant| {
            (count >= max).then(|| FAILURE_WINDOW.saturating_sub(now.duration_since(since)))
        };
        if let Some(&(count, since)) = s.per_client.get(&client) {
            if let Some(wait) = blocked(count, MAX_FAILURES, since) {
                return Err(wait);
            }
        }
        if let (count, Some(since)) = s.all {
            if let Some(wait) = blocked(count, MAX_FAILURES_ALL, since) {
                return Err(wait);
            }
        }
        Ok(())
    }

    /// Records a failed sign-in from `client`.
    pub fn failed(&self, client: IpAddr) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        s.per_client.entry(client).or_insert((0, now)).0 += 1;
        let since = s.all.1.unwrap_or(now);
        s.all = (s.all.0 + 1, Some(since));
    }

    /// Forgets `client`'s failures after it signed in.
    pub fn succeeded(&self, client: IpAddr) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.per_client.remove(&client);
    }
}

/// A fresh random token for forms (CSRF token, one-time nonce): 32 hex
/// characters.
pub fn random_token() -> String {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).expect("the operating system CSPRNG failed");
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two form tokens in constant time.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The Content-Security-Policy of every admin page: nothing but our own
/// stylesheet and script; no inline script or style, no framing, forms
/// posting only to us.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the admin pages' security headers: CSP, no caching (a page may
/// show a token once), no framing, no referrer to other sites, no MIME
/// sniffing.
pub async fn harden(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // `same-origin`, not `no-referrer`: under `no-referrer` a browser sends
    // `Origin: null` with our own form posts, and the origin check needs it.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_block_a_client_and_not_the_others() {
        let limiter = SignInLimiter::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..MAX_FAILURES {
            assert!(limiter.check(a).is_ok());
            limiter.failed(a);
        }
        let wait = limiter.check(a).unwrap_err();
        assert!(wait > Duration::from_secs(14 * 60));
        assert!(limiter.check(b).is_ok());
    }

    #[test]
    fn passwords_round_trip_through_argon2id() {
        let dir = std::env::temp_dir().join(format!("nuvlyx-pw-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(set_password(&dir, "short").is_err());
        set_password(&dir, "correct horse battery\n").unwrap();
        let stored = std::fs::read_to_string(password_file(&dir)).unwrap();
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(!stored.contains("correct horse"));
        assert!(check_password(&dir, "correct horse battery").unwrap());
        assert!(!check_password(&dir, "correct horse batter").unwrap());
        assert_eq!(first_password(&dir).unwrap(), None, "kept");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
