//! The store admin panel's "Settings → API Tokens" pages: the seed's
//! five steps (sign in, open API Tokens, create, name and pick scopes,
//! copy the token shown once), plus revoke, rotate, suspending the store,
//! sudo mode and an audit log. Built on the library's `TokenManager`, like
//! the CLI.
//!
//! Security: the password is stored only as an Argon2id hash; sessions
//! (tower-sessions, in memory) use a `__Host-` cookie that is `Secure`,
//! `HttpOnly`, `SameSite=Strict`, with a new id at sign-in; every form
//! carries the session's CSRF token, and the forms that mint a token a
//! one-time nonce (a resubmitted form mints nothing); cross-site POSTs are
//! refused by `Origin`/`Sec-Fetch-Site` too; failed sign-ins are rate
//! limited; creating, rotating, revoking and suspending ask for the
//! password again when the last sign-in is older than the sudo window;
//! every page is `no-store` with a strict CSP (no inline script). A token's
//! plaintext exists only in the one response that shows it: never in a
//! URL, the session, the audit log or a log.

pub mod audit;
mod pages;
pub mod security;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::{header, request::Parts, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use maud::Markup;
use serde::{Deserialize, Serialize};
use tower_pat::admin::{AdminError, NewToken, TokenManager};
use tower_pat::{
    store::{TokenRecord, TokenStatus},
    token::TokenId,
};
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, MemoryStore, Session, SessionManagerLayer};

use self::audit::{Audit, Entry};
use self::pages::{Draft, FieldErrors, Row};
use self::security::{PasswordChecker, Refused, SignInLimiter};
use crate::store::Store;

/// The store (owner) this admin panel manages.
pub const ADMIN_STORE: &str = "demo-store";
/// "Expiring soon": within this of its expiry.
const EXPIRING_SOON: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a signed-in session lasts without activity.
const IDLE_TIMEOUT_MINUTES: i64 = 30;
/// The session cookie: `__Host-` binds it to this origin, `Secure`, path `/`.
const COOKIE: &str = "__Host-nuvlyx-admin";
const SESSION_KEY: &str = "admin";

/// What a signed-in session holds. Never a token.
#[derive(Serialize, Deserialize, Default, Clone)]
struct AdminSession {
    csrf: String,
    /// One-time nonces of the forms that mint a token, newest last.
    nonces: Vec<String>,
    /// When the password was last given (sign-in or sudo), in Unix seconds.
    sudo_at: u64,
    /// Who this is, for the audit log: "admin (sign-in 3fa2c1d0) from …".
    actor: String,
}

#[derive(Clone)]
struct Admin {
    tokens: TokenManager<Store>,
    data_dir: Arc<PathBuf>,
    limiter: Arc<SignInLimiter>,
    passwords: Arc<PasswordChecker>,
    audit: Audit,
    sudo_window: Duration,
}

/// How the admin pages are set up.
pub struct AdminConfig {
    /// Where the admin password's hash is kept.
    pub data_dir: PathBuf,
    /// Where the audit log is kept.
    pub audit: Audit,
    /// Sudo mode: how long after the password was given sensitive actions
    /// go through without asking for it again.
    pub sudo_window: Duration,
}

/// The admin pages under `/admin`, managing tokens through `tokens`.
pub fn router(tokens: TokenManager<Store>, config: AdminConfig) -> Router {
    let sessions = SessionManagerLayer::new(MemoryStore::default())
        .with_name(COOKIE)
        .with_secure(true)
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::minutes(
            IDLE_TIMEOUT_MINUTES,
        )));
    let state = Admin {
        tokens,
        data_dir: Arc::new(config.data_dir),
        limiter: Arc::default(),
        passwords: Arc::default(),
        audit: config.audit,
        sudo_window: config.sudo_window,
    };
    Router::new()
        .route("/admin", get(|| async { Redirect::to("/admin/tokens") }))
        .route("/admin/sign-in", get(sign_in_page).post(sign_in))
        .route("/admin/sign-out", axum::routing::post(sign_out))
        .route("/admin/sudo", axum::routing::post(sudo_confirm))
        .route("/admin/tokens", get(list).post(create))
        .route("/admin/tokens/new", get(new_form))
        .route("/admin/tokens/{id}/revoke", get(revoke_form).post(revoke))
        .route("/admin/tokens/{id}/rotate", get(rotate_form).post(rotate))
        .route(
            "/admin/tokens/{id}/limits",
            get(limits_form).post(set_limits),
        )
        .route("/admin/store/suspend", get(suspend_form).post(suspend))
        .route("/admin/store/reinstate", axum::routing::post(reinstate))
        .route("/admin/audit", get(audit_page))
        .route("/admin/static/admin.css", get(css))
        .route("/admin/static/copy.js", get(js))
        .layer(middleware::from_fn(same_origin_posts))
        .layer(sessions)
        .layer(middleware::map_response(security::harden))
        .with_state(state)
}

/// An admin page's answer.
type Page = Result<Response, Response>;

fn html(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

fn forbidden(text: &str) -> Response {
    html(
        StatusCode::FORBIDDEN,
        pages::message(None, "Request refused", text),
    )
}

fn failure(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "admin page failed");
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        pages::message(None, "Try again", "The token store is unavailable."),
    )
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A form posted by the signed-in admin, its CSRF token checked: the
/// state, the client's address, the session and the fields. (Last among a
/// handler's arguments: it reads the body.)
struct Posted {
    admin: Admin,
    client: IpAddr,
    session: Session,
    s: AdminSession,
    f: Fields,
}

impl FromRequest<Admin> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, admin: &Admin) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let ConnectInfo(peer) = ConnectInfo::<SocketAddr>::from_request_parts(&mut parts, admin)
            .await
            .map_err(IntoResponse::into_response)?;
        let session = Session::from_request_parts(&mut parts, admin)
            .await
            .map_err(IntoResponse::into_response)?;
        let Form(fields) =
            Form::<Vec<(String, String)>>::from_request(Request::from_parts(parts, body), admin)
                .await
                .map_err(IntoResponse::into_response)?;
        let f = Fields(fields);
        let s = checked(&session, f.get("csrf")).await?;
        Ok(Posted {
            admin: admin.clone(),
            client: peer.ip(),
            session,
            s,
            f,
        })
    }
}

/// A page for the signed-in admin (or a redirect to the sign-in page):
/// the state, the client's address, the session.
struct Viewer {
    admin: Admin,
    client: IpAddr,
    session: Session,
    s: AdminSession,
}

impl FromRequestParts<Admin> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, admin: &Admin) -> Result<Self, Response> {
        let ConnectInfo(peer) = ConnectInfo::<SocketAddr>::from_request_parts(parts, admin)
            .await
            .map_err(IntoResponse::into_response)?;
        let session = Session::from_request_parts(parts, admin)
            .await
            .map_err(IntoResponse::into_response)?;
        let s = signed_in(&session).await?;
        Ok(Viewer {
            admin: admin.clone(),
            client: peer.ip(),
            session,
            s,
        })
    }
}

impl Viewer {
    /// The live token `id` and the session once sudo mode lets `action`'s
    /// page show (see [`on_token`]).
    async fn on_token(
        &self,
        id: &str,
        action: Action,
    ) -> Result<(AdminSession, TokenRecord), Response> {
        let s = self.s.clone();
        on_token(&self.admin, &self.session, s, self.client, id, action, None).await
    }
}

impl Posted {
    /// The live token `id` and the session once sudo mode lets `action`
    /// act on it (see [`on_token`]).
    async fn on_token(
        &self,
        id: &str,
        action: Action,
    ) -> Result<(AdminSession, TokenRecord), Response> {
        let s = self.s.clone();
        on_token(
            &self.admin,
            &self.session,
            s,
            self.client,
            id,
            action,
            Some(&self.f),
        )
        .await
    }

    /// The session once sudo mode allows `what`, this form posted to
    /// `action` (see [`sudo`]).
    async fn sudo(&self, action: &str, what: &str) -> Result<AdminSession, Response> {
        let s = self.s.clone();
        sudo(
            &self.admin,
            &self.session,
            s,
            self.client,
            &self.f,
            action,
            what,
        )
        .await
    }
}

/// A posted form's fields, in order (a field may repeat: `scopes`).
struct Fields(Vec<(String, String)>);

impl Fields {
    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The fields a sudo page carries over: all but the password.
    fn carried(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .filter(|(k, _)| k != "sudo_password")
            .cloned()
            .collect()
    }
}

/// Refuses POSTs that a browser says come from another site.
async fn same_origin_posts(req: Request, next: Next) -> Response {
    if req.method() == Method::POST {
        let h = req.headers();
        // HTTP/1.1 names the host in `Host`, HTTP/2 in `:authority`.
        let host = h
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()));
        let origin = h.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let site = h.get("sec-fetch-site").and_then(|v| v.to_str().ok());
        let cross_origin = match (origin, host) {
            (Some(o), Some(host)) => o != format!("https://{host}"),
            (Some(_), None) => true,
            (None, _) => false,
        };
        if cross_origin || site.is_some_and(|s| s == "cross-site" || s == "same-site") {
            return forbidden("Cross-site requests are refused.");
        }
    }
    next.run(req).await
}

/// The signed-in session, or a redirect to the sign-in page.
async fn signed_in(session: &Session) -> Result<AdminSession, Response> {
    match session.get::<AdminSession>(SESSION_KEY).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(see_other("/admin/sign-in")),
        Err(e) => Err(failure(e)),
    }
}

/// The signed-in session of a form post whose CSRF token matches.
async fn checked(session: &Session, csrf: &str) -> Result<AdminSession, Response> {
    let Ok(Some(s)) = session.get::<AdminSession>(SESSION_KEY).await else {
        return Err(forbidden("Your session has ended: sign in again."));
    };
    if !security::same_token(&s.csrf, csrf) {
        return Err(forbidden(
            "The form is not valid: reload the page and try again.",
        ));
    }
    Ok(s)
}

/// A new one-time nonce for a form that mints a token.
async fn issue_nonce(session: &Session, mut s: AdminSession) -> Result<String, Response> {
    let nonce = security::random_token();
    s.nonces.push(nonce.clone());
    let excess = s.nonces.len().saturating_sub(20);
    s.nonces.drain(..excess);
    session.insert(SESSION_KEY, s).await.map_err(failure)?;
    Ok(nonce)
}

/// Consumes `nonce`: `false` if it was used already (a resubmitted form).
async fn consume_nonce(
    session: &Session,
    mut s: AdminSession,
    nonce: &str,
) -> Result<bool, Response> {
    let Some(at) = s.nonces.iter().position(|n| security::same_token(n, nonce)) else {
        return Ok(false);
    };
    s.nonces.remove(at);
    session.insert(SESSION_KEY, s).await.map_err(failure)?;
    Ok(true)
}

fn already_submitted(csrf: &str) -> Response {
    html(
        StatusCode::CONFLICT,
        pages::message(
            Some(csrf),
            "Already submitted",
            "This form was already submitted. A token is shown only once: if you did not copy it, revoke it and create another.",
        ),
    )
}

/// "3 minutes", "1 minute": a wait in words.
fn minutes(wait: Duration) -> String {
    let n = wait.as_secs().div_ceil(60).max(1);
    format!("{n} minute{}", if n == 1 { "" } else { "s" })
}

/// What checking a password said.
enum Verdict {
    Right,
    Wrong,
    /// This address used up its attempts: the message, and how long to wait.
    Wait(String, Duration),
    /// No check could start in time.
    Busy,
}

/// Checks the admin password for a sign-in or sudo, counted per address
/// before it is hashed (the same limit for both).
async fn verify(admin: &Admin, client: IpAddr, password: String) -> Result<Verdict, Response> {
    let attempt = match admin.limiter.begin(client) {
        Ok(attempt) => attempt,
        Err(Refused::LimitReached(wait)) => {
            let text = format!(
                "Too many wrong passwords from your address: wait {} before you try again.",
                minutes(wait)
            );
            return Ok(Verdict::Wait(text, wait));
        }
        Err(Refused::InFlight) => {
            return Ok(Verdict::Wait(
                "A password from your address is being checked: try again in a moment.".into(),
                Duration::from_secs(1),
            ));
        }
    };
    let checked = admin
        .passwords
        .check(&admin.data_dir, password)
        .await
        .map_err(failure)?;
    Ok(match checked {
        None => Verdict::Busy,
        Some(false) => {
            tracing::warn!(client = %client, "wrong admin password");
            Verdict::Wrong
        }
        Some(true) => {
            attempt.succeeded();
            Verdict::Right
        }
    })
}

fn with_retry_after(mut res: Response, wait: Duration) -> Response {
    res.headers_mut().insert(
        header::RETRY_AFTER,
        wait.as_secs().max(1).to_string().parse().expect("digits"),
    );
    res
}

/// Writes an audit entry; a failure is logged (the action it records has
/// happened: saying otherwise would mislead).
async fn record(admin: &Admin, actor: &str, action: &str, target: &str, detail: &str) {
    let entry = Entry::new(actor, action, target, detail);
    if let Err(e) = admin.audit.record(entry).await {
        tracing::error!(error = %e, action, "audit log entry lost");
    }
}

/// A token as the audit log names it.
fn target(r: &TokenRecord) -> String {
    format!("“{}” {}", r.name, r.id)
}

async fn sign_in_page(session: Session) -> Page {
    if signed_in(&session).await.is_ok() {
        return Ok(see_other("/admin/tokens"));
    }
    Ok(html(StatusCode::OK, pages::sign_in(None)))
}

#[derive(Deserialize)]
struct SignIn {
    password: String,
}

async fn sign_in(
    State(admin): State<Admin>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    session: Session,
    Form(form): Form<SignIn>,
) -> Page {
    let client = peer.ip();
    match verify(&admin, client, form.password).await? {
        Verdict::Right => {}
        Verdict::Wrong => {
            return Err(html(
                StatusCode::UNAUTHORIZED,
                pages::sign_in(Some("Wrong password.")),
            ))
        }
        Verdict::Wait(text, wait) => {
            let page = html(StatusCode::TOO_MANY_REQUESTS, pages::sign_in(Some(&text)));
            return Err(with_retry_after(page, wait));
        }
        Verdict::Busy => {
            let page = html(
                StatusCode::SERVICE_UNAVAILABLE,
                pages::sign_in(Some("Sign-ins are busy: try again in 5 seconds.")),
            );
            return Err(with_retry_after(page, Duration::from_secs(5)));
        }
    }
    // A new session id at sign-in: a fixated id is worth nothing.
    session.cycle_id().await.map_err(failure)?;
    let state = AdminSession {
        csrf: security::random_token(),
        nonces: Vec::new(),
        sudo_at: unix_now(),
        actor: format!(
            "admin (sign-in {}) from {client}",
            &security::random_token()[..8]
        ),
    };
    record(&admin, &state.actor, "sign_in", "admin pages", "").await;
    session.insert(SESSION_KEY, state).await.map_err(failure)?;
    tracing::info!(client = %client, "admin signed in");
    Ok(see_other("/admin/tokens"))
}

async fn sign_out(posted: Posted) -> Page {
    let Posted {
        admin, session, s, ..
    } = posted;
    session.flush().await.map_err(failure)?;
    record(&admin, &s.actor, "sign_out", "admin pages", "").await;
    Ok(see_other("/admin/sign-in"))
}

/// Sudo mode: `Ok` with the session when the password was given within
/// the sudo window, or is given now in `fields` (`sudo_password`);
/// otherwise the page that asks for it, carrying `fields` to `action`.
async fn sudo(
    admin: &Admin,
    session: &Session,
    mut s: AdminSession,
    client: IpAddr,
    fields: &Fields,
    action: &str,
    what: &str,
) -> Result<AdminSession, Response> {
    if unix_now().saturating_sub(s.sudo_at) < admin.sudo_window.as_secs() {
        return Ok(s);
    }
    let window = match admin.sudo_window.as_secs() {
        s if s < 60 => format!("{s} second{}", if s == 1 { "" } else { "s" }),
        s => minutes(Duration::from_secs(s)),
    };
    let ask = |status, error: Option<&str>| {
        html(
            status,
            pages::sudo(&s.csrf, action, what, &fields.carried(), &window, error),
        )
    };
    let password = fields.get("sudo_password");
    if password.is_empty() {
        return Err(ask(StatusCode::FORBIDDEN, None));
    }
    match verify(admin, client, password.to_owned()).await? {
        Verdict::Right => {}
        Verdict::Wrong => return Err(ask(StatusCode::FORBIDDEN, Some("Wrong password."))),
        Verdict::Wait(text, wait) => {
            return Err(with_retry_after(
                ask(StatusCode::TOO_MANY_REQUESTS, Some(&text)),
                wait,
            ))
        }
        Verdict::Busy => {
            let page = ask(
                StatusCode::SERVICE_UNAVAILABLE,
                Some("Password checks are busy: try again in 5 seconds."),
            );
            return Err(with_retry_after(page, Duration::from_secs(5)));
        }
    }
    s.sudo_at = unix_now();
    session
        .insert(SESSION_KEY, s.clone())
        .await
        .map_err(failure)?;
    record(admin, &s.actor, "sudo", "admin pages", what).await;
    Ok(s)
}

/// Where `/admin/sudo` may send the browser on: the pages that ask for
/// sudo, nothing else (no open redirect).
fn safe_next(next: &str) -> &str {
    let token_page = next.strip_prefix("/admin/tokens/").is_some_and(|rest| {
        rest.split_once('/').is_some_and(|(id, action)| {
            id.len() == 16
                && id.bytes().all(|b| b.is_ascii_hexdigit())
                && matches!(action, "revoke" | "rotate" | "limits")
        })
    });
    if token_page || next == "/admin/tokens/new" || next == "/admin/store/suspend" {
        next
    } else {
        "/admin/tokens"
    }
}

/// The sudo gate of a page that leads to a sensitive action: its password
/// form posts to `/admin/sudo`, which comes back here.
async fn sudo_for_page(
    admin: &Admin,
    session: &Session,
    s: AdminSession,
    client: IpAddr,
    path: &str,
    what: &str,
) -> Result<AdminSession, Response> {
    let fields = Fields(vec![
        ("csrf".into(), s.csrf.clone()),
        ("next".into(), path.to_owned()),
    ]);
    sudo(admin, session, s, client, &fields, "/admin/sudo", what).await
}

async fn sudo_confirm(posted: Posted) -> Page {
    let Posted {
        admin,
        client,
        session,
        s,
        f,
    } = posted;
    let next = safe_next(f.get("next")).to_owned();
    sudo(&admin, &session, s, client, &f, "/admin/sudo", "go on").await?;
    Ok(see_other(&next))
}

/// The status column: (CSS class, words, end of the rotation grace).
fn status(
    r: &TokenRecord,
    all: &[TokenRecord],
    now: SystemTime,
) -> (&'static str, String, Option<SystemTime>) {
    match r.status(now) {
        TokenStatus::Revoked => {
            let why = r.revoked_reason.as_ref().map_or(String::new(), |why| {
                format!(" ({})", why.as_str().replace('_', " "))
            });
            ("revoked", format!("revoked{why}"), None)
        }
        TokenStatus::Expired => ("expired", "expired".into(), None),
        TokenStatus::OwnerSuspended => ("revoked", "store suspended".into(), None),
        _ => {
            let Some(expires) = r.expires_at else {
                return ("active", "active".into(), None);
            };
            // Rotated: a token made by rotating this one (the link the
            // store keeps), not merely one with the same name and scopes.
            let replaced = all
                .iter()
                .any(|n| n.rotated_from == Some(r.id) && n.revoked_at.is_none());
            if replaced {
                return ("grace", "in rotation grace".into(), Some(expires));
            }
            match expires.duration_since(now) {
                Ok(left) if left <= EXPIRING_SOON => {
                    ("expiring-soon", "expiring soon".into(), None)
                }
                _ => ("active", "active".into(), None),
            }
        }
    }
}

/// A token as the pages show it; rotation links come from the records.
fn to_row(r: &TokenRecord, all: &[TokenRecord], now: SystemTime) -> Row {
    let (status_class, status, grace_until) = status(r, all, now);
    let named = |id: TokenId| {
        let name = all
            .iter()
            .find(|o| o.id == id)
            .map_or_else(String::new, |o| o.name.to_string());
        (id.to_string(), name)
    };
    Row {
        id: r.id.to_string(),
        name: r.name.to_string(),
        preview: r.preview.to_string(),
        scopes: r.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        created: r.created_at,
        expires: r.expires_at,
        last_used: r.last_used_at,
        last_used_from: r.last_used_from.map(|ip| ip.to_string()),
        rate_limit: r.rate_limit.map(|l| l.to_string()),
        allowed_ips: r.allowed_ips.as_ref().map(|l| l.to_string()),
        status_class,
        status,
        grace_until,
        live: matches!(
            r.status(now),
            TokenStatus::Active | TokenStatus::OwnerSuspended
        ),
        replaces: r.rotated_from.map(named),
        replaced_by: all
            .iter()
            .find(|n| n.rotated_from == Some(r.id))
            .map(|n| named(n.id)),
    }
}

async fn list(State(admin): State<Admin>, session: Session) -> Page {
    let s = signed_in(&session).await?;
    let mut records = admin
        .tokens
        .list(Some(ADMIN_STORE))
        .await
        .map_err(failure)?;
    records.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    let owner = ADMIN_STORE.parse().map_err(failure)?;
    let suspended = admin
        .tokens
        .store()
        .is_owner_suspended(&owner)
        .await
        .map_err(failure)?;
    let now = SystemTime::now();
    let (live, ended): (Vec<Row>, Vec<Row>) = records
        .iter()
        .map(|r| to_row(r, &records, now))
        .partition(|r| r.live);
    Ok(html(
        StatusCode::OK,
        pages::tokens(&pages::TokensPage {
            csrf: &s.csrf,
            owner: ADMIN_STORE,
            suspended,
            live: &live,
            ended: &ended,
            now,
        }),
    ))
}

/// The first day a custom expiry may be (tomorrow, UTC), as `YYYY-MM-DD`.
fn tomorrow() -> String {
    pages::rfc3339(SystemTime::now() + Duration::from_secs(86_400))[..10].to_owned()
}

fn create_form(
    admin: &Admin,
    csrf: &str,
    nonce: &str,
    draft: &Draft,
    errors: &FieldErrors,
) -> Markup {
    let catalog = admin.tokens.config().catalog().entries();
    pages::new_token(csrf, nonce, catalog, draft, errors, &tomorrow())
}

async fn new_form(
    State(admin): State<Admin>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    session: Session,
) -> Page {
    let s = signed_in(&session).await?;
    let s = sudo_for_page(
        &admin,
        &session,
        s,
        peer.ip(),
        "/admin/tokens/new",
        "create a token",
    )
    .await?;
    let csrf = s.csrf.clone();
    let nonce = issue_nonce(&session, s).await?;
    let draft = Draft {
        expires: "30d".into(),
        ..Draft::default()
    };
    Ok(html(
        StatusCode::OK,
        create_form(&admin, &csrf, &nonce, &draft, &FieldErrors::default()),
    ))
}

/// When a custom expiry date (`YYYY-MM-DD`, UTC) begins, or why it cannot
/// be used.
fn custom_expiry(date: &str, now: SystemTime) -> Result<SystemTime, String> {
    if date.is_empty() {
        return Err("Pick the custom expiry date.".into());
    }
    let not_a_date = || format!("“{date}” is not a date: use the date picker (YYYY-MM-DD).");
    let parts: Vec<&str> = date.split('-').collect();
    let [y, m, d] = parts[..] else {
        return Err(not_a_date());
    };
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<i32>(), m.parse::<u8>(), d.parse::<u8>()) else {
        return Err(not_a_date());
    };
    let month = time::Month::try_from(m).map_err(|_| not_a_date())?;
    let day = time::Date::from_calendar_date(y, month, d).map_err(|_| not_a_date())?;
    let at = day.midnight().assume_utc().unix_timestamp();
    let at = u64::try_from(at)
        .ok()
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
        .filter(|at| *at > now)
        .ok_or_else(|| {
            format!("The expiry date {date} is not in the future: pick a date after today (UTC).")
        })?;
    Ok(at)
}

async fn create(headers: HeaderMap, posted: Posted) -> Page {
    let Posted {
        admin,
        client,
        session,
        s,
        f,
    } = posted;
    let s = sudo(
        &admin,
        &session,
        s,
        client,
        &f,
        "/admin/tokens",
        "create a token",
    )
    .await?;
    let (csrf, actor) = (s.csrf.clone(), s.actor.clone());
    if !consume_nonce(&session, s.clone(), f.get("nonce")).await? {
        return Err(already_submitted(&csrf));
    }
    let draft = Draft {
        name: f.get("name").to_owned(),
        scopes: f.all("scopes"),
        expires: f.get("expires").to_owned(),
        expires_on: f.get("expires_on").to_owned(),
        rate_limit: f.get("rate_limit").to_owned(),
        allowed_ips: f.get("allowed_ips").to_owned(),
    };
    let now = SystemTime::now();
    let mut errors = FieldErrors::default();
    let name = draft.name.trim();
    if name.is_empty() {
        errors.name =
            Some("Give the token a name, such as the integration that will use it.".into());
    }
    let catalog = admin.tokens.config().catalog().entries();
    let forged = draft.scopes.iter().find(|s| {
        !catalog
            .iter()
            .any(|e| e.grantable && e.scope.as_str() == s.as_str())
    });
    if let Some(s) = forged {
        errors.scopes = Some(format!(
            "“{s}” cannot be granted: pick from the scopes listed."
        ));
    } else if draft.scopes.is_empty() {
        errors.scopes = Some("Pick at least one scope.".into());
    }
    let mut request = NewToken::new(name, ADMIN_STORE, &draft.scopes);
    // No choice sent (a client other than the form): the form's default.
    let choice = match draft.expires.as_str() {
        "" => "30d",
        choice => choice,
    };
    match choice {
        "never" => {}
        "custom" => match custom_expiry(draft.expires_on.trim(), now) {
            Ok(at) => request = request.expires_in(at.duration_since(now).unwrap_or_default()),
            Err(e) => errors.expires = Some(e),
        },
        choice => match pages::EXPIRIES.iter().find(|(v, _)| *v == choice) {
            Some((v, _)) => {
                request = request.expires_in(humantime::parse_duration(v).map_err(failure)?)
            }
            None => errors.expires = Some("Pick one of the expiry choices.".into()),
        },
    }
    let rate_limit = draft.rate_limit.trim();
    if !rate_limit.is_empty() {
        match rate_limit.parse() {
            Ok(l) => request = request.rate_limit(l),
            Err(e) => errors.rate_limit = Some(format!("Rate limit: {e}.")),
        }
    }
    let allowed_ips = draft.allowed_ips.trim();
    if !allowed_ips.is_empty() {
        match allowed_ips.parse() {
            Ok(l) => request = request.allowed_ips(l),
            Err(e) => errors.allowed_ips = Some(format!("Allowed IP addresses: {e}.")),
        }
    }
    if !errors.any() {
        match admin.tokens.create(request).await {
            Ok(created) => {
                let r = &created.record;
                let detail = format!(
                    "scopes {}; expires {}{}{}",
                    r.scopes.to_space_separated(),
                    r.expires_at.map_or("never".into(), pages::exact),
                    r.rate_limit.map_or(String::new(), |l| format!("; {l}")),
                    r.allowed_ips
                        .as_ref()
                        .map_or(String::new(), |l| format!("; from {l}")),
                );
                record(&admin, &actor, "token.created", &target(r), &detail).await;
                return Ok(shown_once(&csrf, "Token created", &created, None, &headers));
            }
            Err(AdminError::Store(e)) => return Err(failure(e)),
            Err(AdminError::NameInUse { .. }) => {
                errors.name = Some(format!(
                "A live token is already named “{name}”: pick another name, or rotate that token."
            ))
            }
            Err(AdminError::InvalidName) => {
                errors.name = Some(
                    "A name is 1 to 100 characters, without control or invisible characters."
                        .into(),
                )
            }
            Err(AdminError::Scope(e)) => errors.scopes = Some(format!("{e}.")),
            Err(AdminError::InvalidLifetime) => {
                errors.expires = Some("That expiry cannot be used: pick another.".into())
            }
            Err(e) => return Err(failure(e)),
        }
    }
    Err(refill(&admin, &session, &csrf, &draft, &errors).await)
}

/// The token, shown once.
fn shown_once(
    csrf: &str,
    heading: &str,
    created: &tower_pat::admin::CreatedToken,
    note: Option<String>,
    headers: &HeaderMap,
) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost:8443");
    let r = &created.record;
    html(
        StatusCode::OK,
        pages::shown_once(&pages::ShownOnce {
            csrf,
            heading,
            name: &r.name,
            token: created.token.expose_secret(),
            scopes: r.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            expires: r.expires_at,
            host,
            note,
            now: SystemTime::now(),
        }),
    )
}

/// The create form again, with what was typed, the errors, and a fresh
/// nonce.
async fn refill(
    admin: &Admin,
    session: &Session,
    csrf: &str,
    draft: &Draft,
    errors: &FieldErrors,
) -> Response {
    let s = match signed_in(session).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    let nonce = match issue_nonce(session, s).await {
        Ok(n) => n,
        Err(res) => return res,
    };
    html(
        StatusCode::UNPROCESSABLE_ENTITY,
        create_form(admin, csrf, &nonce, draft, errors),
    )
}

/// The live token `id` of this store, or 404.
async fn own_live_token(admin: &Admin, id: &str) -> Result<TokenRecord, Response> {
    let not_found = || {
        html(
            StatusCode::NOT_FOUND,
            pages::message(None, "Not found", "No such active token."),
        )
    };
    let id: TokenId = id.parse().map_err(|_| not_found())?;
    // One lookup by id (not a listing of every token), then ownership.
    let found = admin.tokens.store().find(id).await.map_err(failure)?;
    found
        .filter(|r| {
            r.owner.as_str() == ADMIN_STORE
                && r.revoked_at.is_none()
                && !r.is_expired_at(SystemTime::now())
        })
        .map(|r| TokenRecord::clone(&r))
        .ok_or_else(not_found)
}

/// What the token pages do to a token.
#[derive(Clone, Copy)]
enum Action {
    Revoke,
    Rotate,
    Limits,
}

impl Action {
    /// The last part of its page's path.
    fn verb(self) -> &'static str {
        match self {
            Action::Revoke => "revoke",
            Action::Rotate => "rotate",
            Action::Limits => "limits",
        }
    }

    /// What the sudo page says it is about to do.
    fn describe(self, name: &str) -> String {
        match self {
            Action::Revoke => format!("revoke “{name}”"),
            Action::Rotate => format!("rotate “{name}”"),
            Action::Limits => format!("change the limits of “{name}”"),
        }
    }
}

/// The live token `id` that `action` acts on, and the session once sudo
/// mode lets it: for its page (`posted` is `None`) or for the form posted
/// from it.
async fn on_token(
    admin: &Admin,
    session: &Session,
    s: AdminSession,
    client: IpAddr,
    id: &str,
    action: Action,
    posted: Option<&Fields>,
) -> Result<(AdminSession, TokenRecord), Response> {
    let r = own_live_token(admin, id).await?;
    let path = format!("/admin/tokens/{}/{}", r.id, action.verb());
    let what = action.describe(&r.name);
    let s = match posted {
        Some(f) => sudo(admin, session, s, client, f, &path, &what).await?,
        None => sudo_for_page(admin, session, s, client, &path, &what).await?,
    };
    Ok((s, r))
}

async fn revoke_form(Path(id): Path<String>, viewer: Viewer) -> Page {
    let (s, r) = viewer.on_token(&id, Action::Revoke).await?;
    let now = SystemTime::now();
    Ok(html(
        StatusCode::OK,
        pages::confirm_revoke(&s.csrf, &to_row(&r, &[], now), now),
    ))
}

async fn revoke(Path(id): Path<String>, posted: Posted) -> Page {
    let (s, r) = posted.on_token(&id, Action::Revoke).await?;
    let Posted { admin, .. } = posted;
    admin.tokens.revoke(r.id).await.map_err(failure)?;
    record(&admin, &s.actor, "token.revoked", &target(&r), "manual").await;
    Ok(see_other("/admin/tokens"))
}

async fn rotate_form(Path(id): Path<String>, viewer: Viewer) -> Page {
    let (s, r) = viewer.on_token(&id, Action::Rotate).await?;
    let Viewer { session, .. } = viewer;
    let csrf = s.csrf.clone();
    let nonce = issue_nonce(&session, s).await?;
    let now = SystemTime::now();
    Ok(html(
        StatusCode::OK,
        pages::rotate(&csrf, &nonce, &to_row(&r, &[], now), r.expires_at, now),
    ))
}

async fn rotate(headers: HeaderMap, Path(id): Path<String>, posted: Posted) -> Page {
    let (s, old) = posted.on_token(&id, Action::Rotate).await?;
    let Posted {
        admin, session, f, ..
    } = posted;
    let (csrf, actor) = (s.csrf.clone(), s.actor.clone());
    if !consume_nonce(&session, s, f.get("nonce")).await? {
        return Err(already_submitted(&csrf));
    }
    let Some(&(grace, _)) = pages::GRACES.iter().find(|(v, _)| *v == f.get("grace")) else {
        return Err(forbidden("Unknown grace period."));
    };
    let grace = humantime::parse_duration(grace).map_err(failure)?;
    let created = admin.tokens.rotate(old.id, grace).await.map_err(failure)?;
    let note = if grace.is_zero() {
        "The old token was revoked.".to_owned()
    } else {
        let ends = pages::grace_end(grace, old.expires_at, SystemTime::now());
        format!("The old token keeps working until {}.", pages::exact(ends))
    };
    let detail = match grace.is_zero() {
        true => format!(
            "replaced by {}; the old token was revoked",
            created.record.id
        ),
        false => format!(
            "replaced by {}; the old token works until {}",
            created.record.id,
            pages::exact(pages::grace_end(grace, old.expires_at, SystemTime::now()))
        ),
    };
    record(&admin, &actor, "token.rotated", &target(&old), &detail).await;
    Ok(shown_once(
        &csrf,
        "Token rotated",
        &created,
        Some(note),
        &headers,
    ))
}

async fn limits_form(Path(id): Path<String>, viewer: Viewer) -> Page {
    let (s, r) = viewer.on_token(&id, Action::Limits).await?;
    let row = to_row(&r, &[], SystemTime::now());
    let (limit, ips) = (
        row.rate_limit.clone().unwrap_or_default(),
        row.allowed_ips.clone().unwrap_or_default(),
    );
    Ok(html(
        StatusCode::OK,
        pages::edit_limits(&s.csrf, &row, &limit, &ips, &FieldErrors::default()),
    ))
}

async fn set_limits(Path(id): Path<String>, posted: Posted) -> Page {
    let (s, r) = posted.on_token(&id, Action::Limits).await?;
    let Posted { admin, f, .. } = posted;
    let (limit, ips) = (f.get("rate_limit").trim(), f.get("allowed_ips").trim());
    let mut errors = FieldErrors::default();
    let rate_limit = match limit {
        "" => None,
        text => text
            .parse()
            .map_err(|e| errors.rate_limit = Some(format!("Rate limit: {e}.")))
            .ok(),
    };
    let allowed_ips = match ips {
        "" => None,
        text => text
            .parse()
            .map_err(|e| errors.allowed_ips = Some(format!("Allowed IP addresses: {e}.")))
            .ok(),
    };
    if !errors.any() {
        match admin
            .tokens
            .set_limits(r.id, rate_limit, allowed_ips.clone())
            .await
        {
            Ok(()) => {
                let detail = format!(
                    "rate limit {}; allowed from {}",
                    rate_limit.map_or("none".into(), |l| l.to_string()),
                    allowed_ips.map_or("anywhere".into(), |l| l.to_string())
                );
                record(&admin, &s.actor, "token.limits_changed", &target(&r), &detail).await;
                return Ok(see_other("/admin/tokens"));
            }
            Err(AdminError::AllowlistWidened) => {
                errors.allowed_ips = Some(
                    "The allowed addresses can only get narrower: this lets the token in from somewhere it is refused today. Create a new token instead."
                        .into(),
                )
            }
            Err(e) => return Err(failure(e)),
        }
    }
    let row = to_row(&r, &[], SystemTime::now());
    Err(html(
        StatusCode::UNPROCESSABLE_ENTITY,
        pages::edit_limits(&s.csrf, &row, limit, ips, &errors),
    ))
}

/// How many tokens of the store a suspension cuts off.
async fn live_tokens(admin: &Admin) -> Result<usize, Response> {
    let now = SystemTime::now();
    Ok(admin
        .tokens
        .list(Some(ADMIN_STORE))
        .await
        .map_err(failure)?
        .iter()
        .filter(|r| {
            matches!(
                r.status(now),
                TokenStatus::Active | TokenStatus::OwnerSuspended
            )
        })
        .count())
}

async fn suspend_form(
    State(admin): State<Admin>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    session: Session,
) -> Page {
    let s = signed_in(&session).await?;
    let s = sudo_for_page(
        &admin,
        &session,
        s,
        peer.ip(),
        "/admin/store/suspend",
        "suspend the store",
    )
    .await?;
    let count = live_tokens(&admin).await?;
    Ok(html(
        StatusCode::OK,
        pages::confirm_suspend(&s.csrf, ADMIN_STORE, count),
    ))
}

async fn suspend(posted: Posted) -> Page {
    set_suspended(posted, true).await
}

async fn reinstate(posted: Posted) -> Page {
    set_suspended(posted, false).await
}

/// Suspends or reinstates the store, in sudo mode, and says so in the
/// audit log.
async fn set_suspended(posted: Posted, suspend: bool) -> Page {
    let (action, what) = match suspend {
        true => ("/admin/store/suspend", "suspend the store"),
        false => ("/admin/store/reinstate", "reinstate the store"),
    };
    let s = posted.sudo(action, what).await?;
    let admin = &posted.admin;
    let count = live_tokens(admin).await?;
    let changed = match suspend {
        true => admin.tokens.suspend_owner(ADMIN_STORE).await,
        false => admin.tokens.reinstate_owner(ADMIN_STORE).await,
    };
    changed.map_err(failure)?;
    let (event, detail) = match suspend {
        true => (
            "store.suspended",
            format!("{count} active token(s) refused until reinstated"),
        ),
        false => (
            "store.reinstated",
            format!("{count} token(s) accepted again"),
        ),
    };
    record(admin, &s.actor, event, ADMIN_STORE, &detail).await;
    Ok(see_other("/admin/tokens"))
}

async fn audit_page(State(admin): State<Admin>, session: Session) -> Page {
    let s = signed_in(&session).await?;
    let entries = admin.audit.recent().await.map_err(failure)?;
    Ok(html(
        StatusCode::OK,
        pages::audit(&s.csrf, &entries, SystemTime::now()),
    ))
}

async fn css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        pages::CSS,
    )
}

async fn js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        pages::COPY_JS,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_pat::{scope::ScopeSet, token::TokenDigest};

    fn record(id: u8, name: &str, created: SystemTime) -> TokenRecord {
        let mut r = TokenRecord::new(
            TokenId::from_bytes([id; 8]),
            TokenDigest::of([id]),
            ADMIN_STORE.parse().unwrap(),
            name,
            ScopeSet::parse(["orders:read"]).unwrap(),
            created,
        );
        r.expires_at = Some(created + Duration::from_secs(30 * 24 * 3600));
        r
    }

    /// Issue #22 (6): "in rotation grace" comes from the rotation link on
    /// the record, never from a second token that merely shares the name
    /// and scopes (rows from before the link, or written around the
    /// manager).
    #[test]
    fn rotation_grace_is_read_from_the_link_not_guessed() {
        let now = SystemTime::now();
        let old = record(1, "ci", now);
        let twin = record(2, "ci", now + Duration::from_secs(1));
        let all = [old.clone(), twin];
        assert_eq!(status(&old, &all, now).0, "active");
        let mut successor = record(3, "ci", now + Duration::from_secs(2));
        successor.rotated_from = Some(old.id);
        let all = [old.clone(), successor];
        assert_eq!(status(&old, &all, now).0, "grace");
    }
}
