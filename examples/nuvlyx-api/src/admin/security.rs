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
use argon2::password_hash::PasswordHasher;
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
#[cfg(test)]
pub fn check_password(data_dir: &Path, password: &str) -> Result<bool> {
    check_password_in(&mut Vec::new(), data_dir, password)
}

/// Checks `password` against the stored hash (read anew), hashing in
/// `memory` (Argon2's blocks, 19 MiB with the defaults), which is sized on
/// first use and kept: a thread that checks passwords allocates it once.
fn check_password_in(
    memory: &mut Vec<argon2::Block>,
    data_dir: &Path,
    password: &str,
) -> Result<bool> {
    let file = password_file(data_dir);
    if !files::is_regular(&file)? {
        return Ok(false);
    }
    let stored =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let bad = |e: &dyn std::fmt::Display| anyhow!("{}: {e}", file.display());
    let parsed = PasswordHash::new(stored.trim()).map_err(|e| bad(&e))?;
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return Err(bad(&"no salt or hash"));
    };
    let params = argon2::Params::try_from(&parsed).map_err(|e| bad(&e))?;
    let algorithm = argon2::Algorithm::new(parsed.algorithm.as_str()).map_err(|e| bad(&e))?;
    let version = match parsed.version {
        Some(v) => argon2::Version::try_from(v).map_err(|e| bad(&e))?,
        None => argon2::Version::default(),
    };
    if memory.len() != params.block_count() {
        *memory = vec![argon2::Block::default(); params.block_count()];
    }
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, memory.as_mut_slice())
        .map_err(|e| bad(&e))?;
    Ok(bool::from(out.as_slice().ct_eq(expected.as_bytes())))
}

/// Sign-in attempts allowed per client address in one window (a
/// successful one gives them back).
pub const MAX_FAILURES: u32 = 5;
/// The window, and how long a client that used it up waits.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Password checks running at once, from all clients together: each
/// Argon2id check takes 19 MiB, so this bounds their memory. Waiting
/// attempts queue in arrival order (a fresh address waits behind the
/// attempts in flight, at most one per address, never behind a block).
pub const CHECKER_THREADS: usize = 2;
/// How long an attempt may wait for a check before it is answered "busy,
/// try again".
pub const MAX_QUEUE_WAIT: Duration = Duration::from_secs(20);

/// The address a limit counts: IPv4 as it is, IPv6 by its /64 (a host
/// gets a whole /64, so a single address would be free to change).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Why a sign-in attempt is not checked.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// This address used up its attempts: wait this long.
    LimitReached(Duration),
    /// This address has an attempt being checked: one at a time.
    InFlight,
}

/// Counts sign-in attempts per client address **before** the password is
/// hashed, one check in flight per address. There is no global lock-out:
/// an attacker without the password can use up the attempts of the
/// addresses it controls, and slow everyone by queueing for the
/// [`PasswordChecker`], but never stop the right password from another
/// address.
#[derive(Default)]
pub struct SignInLimiter {
    state: Mutex<LimiterState>,
}

#[derive(Default)]
struct LimiterState {
    per_client: HashMap<IpAddr, Client>,
    pruned: Option<Instant>,
}

struct Client {
    attempts: u32,
    since: Instant,
    in_flight: bool,
}

/// One counted attempt; its address may try again once it is dropped.
pub struct Attempt<'a> {
    limiter: &'a SignInLimiter,
    key: IpAddr,
}

impl SignInLimiter {
    /// Counts an attempt from `client`, or says why it is not allowed.
    pub fn begin(&self, client: IpAddr) -> Result<Attempt<'_>, Refused> {
        let key = client_key(client);
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if s.pruned
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1))
        {
            s.per_client
                .retain(|_, c| c.in_flight || now.duration_since(c.since) < FAILURE_WINDOW);
            s.pruned = Some(now);
        }
        let c = s.per_client.entry(key).or_insert(Client {
            attempts: 0,
            since: now,
            in_flight: false,
        });
        if now.duration_since(c.since) >= FAILURE_WINDOW {
            (c.attempts, c.since) = (0, now);
        }
        if c.attempts >= MAX_FAILURES {
            return Err(Refused::LimitReached(
                FAILURE_WINDOW.saturating_sub(now.duration_since(c.since)),
            ));
        }
        if c.in_flight {
            return Err(Refused::InFlight);
        }
        c.attempts += 1;
        c.in_flight = true;
        Ok(Attempt { limiter: self, key })
    }
}

/// Checks admin passwords on [`CHECKER_THREADS`] threads of its own, in
/// arrival order, each hashing in 19 MiB it allocated once. Argon2's own
/// allocation per check, freed at once, left the memory resident anyway:
/// 150 checks, two at a time, peaked at 851 MiB on the runtime's blocking
/// threads (one heap arena each) and 395 MiB on two threads of their own
/// (each freed block trapped under small allocations).
pub struct PasswordChecker {
    slots: std::sync::Arc<tokio::sync::Semaphore>,
    jobs: Mutex<std::sync::mpsc::Sender<Job>>,
}

type Job = (
    PathBuf,
    String,
    tokio::sync::OwnedSemaphorePermit,
    tokio::sync::oneshot::Sender<Result<bool>>,
);

impl Default for PasswordChecker {
    fn default() -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(Mutex::new(rx));
        for i in 0..CHECKER_THREADS {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("admin-password-{i}"))
                .spawn(move || {
                    // Argon2's memory, allocated once for this thread.
                    let mut memory = Vec::new();
                    loop {
                        let job = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        let Ok((dir, password, slot, answer)) = job else {
                            return;
                        };
                        let result = check_password_in(&mut memory, &dir, &password);
                        // Hashing is over: another check may start.
                        drop(slot);
                        let _ = answer.send(result);
                    }
                })
                .expect("spawning a password thread");
        }
        Self {
            slots: std::sync::Arc::new(tokio::sync::Semaphore::new(CHECKER_THREADS)),
            jobs: Mutex::new(tx),
        }
    }
}

impl PasswordChecker {
    /// Whether `password` is the admin password stored in `data_dir`;
    /// `Ok(None)` when no check could start within [`MAX_QUEUE_WAIT`]. A
    /// check that started runs to its end, even if the caller is gone.
    pub async fn check(&self, data_dir: &Path, password: String) -> Result<Option<bool>> {
        let acquire = self.slots.clone().acquire_owned();
        let Ok(Ok(slot)) = tokio::time::timeout(MAX_QUEUE_WAIT, acquire).await else {
            return Ok(None);
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send((data_dir.to_owned(), password, slot, tx))
            .map_err(|_| anyhow!("the password threads are gone"))?;
        rx.await
            .map_err(|_| anyhow!("a password thread failed"))?
            .map(Some)
    }
}

impl Attempt<'_> {
    /// The password was right: the address's attempts are forgotten.
    pub fn succeeded(self) {
        let mut s = self
            .limiter
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        s.per_client.remove(&self.key);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let mut s = self
            .limiter
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = s.per_client.get_mut(&self.key) {
            c.in_flight = false;
        }
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
    secure_cookie_removal(h);
    res
}

/// The session layer removes the cookie at sign-out with a bare
/// `name=; Path=/; Max-Age=0`, which a browser refuses for a `__Host-`
/// cookie (the prefix requires `Secure`): the dead cookie would stay and
/// be sent again. Gives such a removal the attributes the cookie was set
/// with.
fn secure_cookie_removal(h: &mut axum::http::HeaderMap) {
    let fixed: Vec<HeaderValue> = h
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| {
            let text = v.to_str().unwrap_or_default();
            let ours =
                text.starts_with(super::COOKIE) && text[super::COOKIE.len()..].starts_with('=');
            let has = |attr: &str| text.split(';').any(|a| a.trim().eq_ignore_ascii_case(attr));
            if !ours || has("Secure") {
                return v.clone();
            }
            let mut text = text.to_owned();
            for attr in ["Secure", "HttpOnly"] {
                if !has(attr) {
                    text.push_str("; ");
                    text.push_str(attr);
                }
            }
            if !text.to_ascii_lowercase().contains("samesite=") {
                text.push_str("; SameSite=Strict");
            }
            HeaderValue::from_str(&text).unwrap_or_else(|_| v.clone())
        })
        .collect();
    if fixed.is_empty() {
        return;
    }
    h.remove(header::SET_COOKIE);
    for v in fixed {
        h.append(header::SET_COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_attempts_block_a_client_and_not_the_others() {
        let limiter = SignInLimiter::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..MAX_FAILURES {
            drop(limiter.begin(a).unwrap());
        }
        let Err(Refused::LimitReached(wait)) = limiter.begin(a) else {
            panic!("a sixth attempt")
        };
        assert!(wait > Duration::from_secs(14 * 60));
        assert!(limiter.begin(b).is_ok());
    }

    #[test]
    fn an_attempt_counts_before_its_check_and_one_runs_at_a_time_per_address() {
        let limiter = SignInLimiter::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let first = limiter.begin(a).unwrap();
        assert_eq!(limiter.begin(a).err(), Some(Refused::InFlight));
        drop(first);
        // The first attempt counted although it never said how it ended.
        for _ in 1..MAX_FAILURES {
            drop(limiter.begin(a).unwrap());
        }
        assert!(matches!(limiter.begin(a), Err(Refused::LimitReached(_))));
    }

    #[test]
    fn a_success_gives_the_attempts_back() {
        let limiter = SignInLimiter::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 1..MAX_FAILURES {
            drop(limiter.begin(a).unwrap());
        }
        limiter.begin(a).unwrap().succeeded();
        for _ in 0..MAX_FAILURES {
            drop(limiter.begin(a).unwrap());
        }
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let limiter = SignInLimiter::default();
        for i in 0..MAX_FAILURES {
            let ip: IpAddr = format!("2001:db8:1:2::{:x}", i + 1).parse().unwrap();
            drop(limiter.begin(ip).unwrap());
        }
        let other_host_same_64: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        assert!(matches!(
            limiter.begin(other_host_same_64),
            Err(Refused::LimitReached(_))
        ));
        assert!(limiter.begin("2001:db8:1:3::1".parse().unwrap()).is_ok());
        assert_eq!(
            client_key("::ffff:192.0.2.7".parse().unwrap()),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
    }

    #[tokio::test]
    async fn passwords_are_checked_two_at_a_time_and_busy_beyond() {
        let dir = std::env::temp_dir().join(format!("nuvlyx-pwq-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        set_password(&dir, "correct horse battery").unwrap();
        let checker = PasswordChecker::default();
        assert_eq!(
            checker
                .check(&dir, "correct horse battery".into())
                .await
                .unwrap(),
            Some(true)
        );
        assert_eq!(
            checker.check(&dir, "nope".into()).await.unwrap(),
            Some(false)
        );
        // Both slots taken: a third check waits.
        let (a, b) = (
            checker.slots.clone().try_acquire_owned().unwrap(),
            checker.slots.clone().try_acquire_owned().unwrap(),
        );
        assert!(checker.slots.clone().try_acquire_owned().is_err());
        drop((a, b));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_removal_of_the_session_cookie_keeps_secure() {
        let mut h = axum::http::HeaderMap::new();
        h.append(
            header::SET_COOKIE,
            HeaderValue::from_static(
                "__Host-nuvlyx-admin=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
            ),
        );
        h.append(header::SET_COOKIE, HeaderValue::from_static("other=1"));
        secure_cookie_removal(&mut h);
        let all: Vec<_> = h.get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(all.len(), 2);
        let ours = all[0].to_str().unwrap();
        assert!(
            ours.contains("; Secure") && ours.contains("; HttpOnly"),
            "{ours}"
        );
        assert!(
            ours.contains("SameSite=Strict") && ours.contains("Max-Age=0"),
            "{ours}"
        );
        assert_eq!(all[1], "other=1");
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
