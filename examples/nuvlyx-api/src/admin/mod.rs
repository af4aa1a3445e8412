//! The store admin panel's "Settings → API Tokens" pages: the seed's
//! five steps (sign in, open API Tokens, create, name and pick scopes,
//! copy the token shown once), plus revoke, rotate, and suspending the
//! store. Built on the library's `TokenManager`, like the CLI.
//!
//! Security: the password is stored only as an Argon2id hash; sessions
//! (tower-sessions, in memory) use a `__Host-` cookie that is `Secure`,
//! `HttpOnly`, `SameSite=Strict`, with a new id at sign-in; every form
//! carries the session's CSRF token, and the forms that mint a token a
//! one-time nonce (a resubmitted form mints nothing); cross-site POSTs are
//! refused by `Origin`/`Sec-Fetch-Site` too; failed sign-ins are rate
//! limited; every page is `no-store` with a strict CSP (no inline script).
//! A token's plaintext exists only in the one response that shows it:
//! never in a URL, the session, or a log.

mod pages;
pub mod security;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, Method, StatusCode};
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

use self::security::{PasswordChecker, Refused, SignInLimiter};
use crate::commands::fmt_time;
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
#[derive(Serialize, Deserialize, Default)]
struct AdminSession {
    csrf: String,
    /// One-time nonces of the forms that mint a token, newest last.
    nonces: Vec<String>,
}

#[derive(Clone)]
struct Admin {
    tokens: TokenManager<Store>,
    data_dir: Arc<PathBuf>,
    limiter: Arc<SignInLimiter>,
    passwords: Arc<PasswordChecker>,
}

/// The admin pages under `/admin`, managing tokens through `tokens`, with
/// the password kept in `data_dir`.
pub fn router(tokens: TokenManager<Store>, data_dir: PathBuf) -> Router {
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
        data_dir: Arc::new(data_dir),
        limiter: Arc::default(),
        passwords: Arc::default(),
    };
    Router::new()
        .route("/admin", get(|| async { Redirect::to("/admin/tokens") }))
        .route("/admin/sign-in", get(sign_in_page).post(sign_in))
        .route("/admin/sign-out", axum::routing::post(sign_out))
        .route("/admin/tokens", get(list).post(create))
        .route("/admin/tokens/new", get(new_form))
        .route("/admin/tokens/{id}/revoke", get(revoke_form).post(revoke))
        .route("/admin/tokens/{id}/rotate", get(rotate_form).post(rotate))
        .route("/admin/store/suspend", axum::routing::post(suspend))
        .route("/admin/store/reinstate", axum::routing::post(reinstate))
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

/// 429 with the sign-in form, `text`, and `Retry-After`.
fn too_many(text: &str, wait: Duration) -> Response {
    let mut res = html(StatusCode::TOO_MANY_REQUESTS, pages::sign_in(Some(text)));
    res.headers_mut().insert(
        header::RETRY_AFTER,
        wait.as_secs().max(1).to_string().parse().expect("digits"),
    );
    res
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
    // Counted before the password is hashed: concurrent attempts cannot
    // all pass the gate.
    let attempt = match admin.limiter.begin(client) {
        Ok(attempt) => attempt,
        Err(Refused::LimitReached(wait)) => {
            let minutes = wait.as_secs().div_ceil(60).max(1);
            let text = format!(
                "Too many failed sign-ins from your address: try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            );
            return Err(too_many(&text, wait));
        }
        Err(Refused::InFlight) => {
            return Err(too_many(
                "A sign-in from your address is being checked: try again in a moment.",
                Duration::from_secs(1),
            ));
        }
    };
    let Some(ok) = admin
        .passwords
        .check(&admin.data_dir, form.password)
        .await
        .map_err(failure)?
    else {
        let mut res = html(
            StatusCode::SERVICE_UNAVAILABLE,
            pages::sign_in(Some("Sign-ins are busy: try again in a moment.")),
        );
        res.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        return Err(res);
    };
    if !ok {
        tracing::warn!(client = %client, "failed admin sign-in");
        return Err(html(
            StatusCode::UNAUTHORIZED,
            pages::sign_in(Some("Wrong password.")),
        ));
    }
    attempt.succeeded();
    // A new session id at sign-in: a fixated id is worth nothing.
    session.cycle_id().await.map_err(failure)?;
    let state = AdminSession {
        csrf: security::random_token(),
        nonces: Vec::new(),
    };
    session.insert(SESSION_KEY, state).await.map_err(failure)?;
    tracing::info!(client = %client, "admin signed in");
    Ok(see_other("/admin/tokens"))
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: String,
}

async fn sign_out(session: Session, Form(form): Form<CsrfOnly>) -> Page {
    checked(&session, &form.csrf).await?;
    session.flush().await.map_err(failure)?;
    Ok(see_other("/admin/sign-in"))
}

/// The status column: what a store admin needs to know, in words.
fn status(r: &TokenRecord, all: &[TokenRecord], now: SystemTime) -> (&'static str, String) {
    match r.status(now) {
        TokenStatus::Revoked => {
            let why = r.revoked_reason.as_ref().map_or(String::new(), |why| {
                format!(" ({})", why.as_str().replace('_', " "))
            });
            ("revoked", format!("revoked{why}"))
        }
        TokenStatus::Expired => ("expired", "expired".into()),
        TokenStatus::OwnerSuspended => ("revoked", "store suspended".into()),
        _ => {
            let Some(expires) = r.expires_at else {
                return ("active", "active".into());
            };
            // Rotated: a token made by rotating this one (the link the
            // store keeps), not merely one with the same name and scopes.
            let replaced = all
                .iter()
                .any(|n| n.rotated_from == Some(r.id) && n.revoked_at.is_none());
            if replaced {
                return (
                    "grace",
                    format!("in rotation grace until {}", fmt_time(Some(expires))),
                );
            }
            match expires.duration_since(now) {
                Ok(left) if left <= EXPIRING_SOON => ("expiring-soon", "expiring soon".into()),
                _ => ("active", "active".into()),
            }
        }
    }
}

async fn list(State(admin): State<Admin>, session: Session) -> Page {
    let s = signed_in(&session).await?;
    let records = admin
        .tokens
        .list(Some(ADMIN_STORE))
        .await
        .map_err(failure)?;
    let owner = ADMIN_STORE.parse().map_err(failure)?;
    let suspended = admin
        .tokens
        .store()
        .is_owner_suspended(&owner)
        .await
        .map_err(failure)?;
    let now = SystemTime::now();
    let rows: Vec<pages::Row> = records
        .iter()
        .map(|r| {
            let (status_class, status) = status(r, &records, now);
            pages::Row {
                id: r.id.to_string(),
                name: r.name.to_string(),
                preview: r.preview.to_string(),
                scopes: r.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
                created: fmt_time(Some(r.created_at)),
                expires: fmt_time(r.expires_at),
                last_used: match r.last_used_from {
                    Some(ip) => format!("{} from {ip}", fmt_time(r.last_used_at)),
                    None => fmt_time(r.last_used_at),
                },
                limits: match (&r.rate_limit, &r.allowed_ips) {
                    (None, None) => "none".to_owned(),
                    (Some(l), None) => l.to_string(),
                    (None, Some(ips)) => format!("from {ips}"),
                    (Some(l), Some(ips)) => format!("{l}; from {ips}"),
                },
                status_class,
                status,
                live: r.status(now) == TokenStatus::Active
                    || r.status(now) == TokenStatus::OwnerSuspended,
            }
        })
        .collect();
    Ok(html(
        StatusCode::OK,
        pages::tokens(&s.csrf, ADMIN_STORE, suspended, &rows),
    ))
}

async fn new_form(State(admin): State<Admin>, session: Session) -> Page {
    let s = signed_in(&session).await?;
    let csrf = s.csrf.clone();
    let nonce = issue_nonce(&session, s).await?;
    let catalog = admin.tokens.config().catalog().entries();
    Ok(html(
        StatusCode::OK,
        pages::new_token(&csrf, &nonce, catalog, None),
    ))
}

async fn create(
    State(admin): State<Admin>,
    session: Session,
    Form(fields): Form<Vec<(String, String)>>,
) -> Page {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    };
    let s = checked(&session, field("csrf")).await?;
    let csrf = s.csrf.clone();
    if !consume_nonce(&session, s, field("nonce")).await? {
        return Err(already_submitted(&csrf));
    }
    let scopes: Vec<&str> = fields
        .iter()
        .filter(|(k, _)| k == "scopes")
        .map(|(_, v)| v.as_str())
        .collect();
    let mut request = NewToken::new(field("name"), ADMIN_STORE, &scopes);
    let expires = field("expires");
    if !expires.is_empty() {
        match crate::cli::parse_duration(expires) {
            Ok(d) => request = request.expires_in(d),
            Err(e) => return Err(refill(&admin, &session, &csrf, &e).await),
        }
    }
    let rate_limit = field("rate_limit").trim();
    if !rate_limit.is_empty() {
        match rate_limit.parse() {
            Ok(l) => request = request.rate_limit(l),
            Err(e) => {
                return Err(refill(&admin, &session, &csrf, &format!("Rate limit: {e}.")).await)
            }
        }
    }
    let allowed_ips = field("allowed_ips").trim();
    if !allowed_ips.is_empty() {
        match allowed_ips.parse() {
            Ok(l) => request = request.allowed_ips(l),
            Err(e) => {
                return Err(refill(
                    &admin,
                    &session,
                    &csrf,
                    &format!("Allowed IP addresses: {e}."),
                )
                .await)
            }
        }
    }
    if scopes.is_empty() {
        return Err(refill(&admin, &session, &csrf, "Pick at least one scope.").await);
    }
    match admin.tokens.create(request).await {
        Ok(created) => Ok(html(
            StatusCode::OK,
            pages::shown_once(
                &csrf,
                "Token created",
                &created.record.name,
                created.token.expose_secret(),
                None,
            ),
        )),
        Err(AdminError::Store(e)) => Err(failure(e)),
        Err(e) => Err(refill(&admin, &session, &csrf, &e.to_string()).await),
    }
}

/// The create form again, with an error and a fresh nonce.
async fn refill(admin: &Admin, session: &Session, csrf: &str, error: &str) -> Response {
    let s = match signed_in(session).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    let nonce = match issue_nonce(session, s).await {
        Ok(n) => n,
        Err(res) => return res,
    };
    let catalog = admin.tokens.config().catalog().entries();
    html(
        StatusCode::UNPROCESSABLE_ENTITY,
        pages::new_token(csrf, &nonce, catalog, Some(error)),
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

async fn revoke_form(State(admin): State<Admin>, session: Session, Path(id): Path<String>) -> Page {
    let s = signed_in(&session).await?;
    let r = own_live_token(&admin, &id).await?;
    Ok(html(
        StatusCode::OK,
        pages::confirm_revoke(&s.csrf, &r.id.to_string(), &r.name, &r.preview),
    ))
}

async fn revoke(
    State(admin): State<Admin>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Page {
    checked(&session, &form.csrf).await?;
    let r = own_live_token(&admin, &id).await?;
    admin.tokens.revoke(r.id).await.map_err(failure)?;
    Ok(see_other("/admin/tokens"))
}

async fn rotate_form(State(admin): State<Admin>, session: Session, Path(id): Path<String>) -> Page {
    let s = signed_in(&session).await?;
    let r = own_live_token(&admin, &id).await?;
    let csrf = s.csrf.clone();
    let nonce = issue_nonce(&session, s).await?;
    Ok(html(
        StatusCode::OK,
        pages::rotate(&csrf, &nonce, &r.id.to_string(), &r.name, &r.preview),
    ))
}

#[derive(Deserialize)]
struct Rotate {
    csrf: String,
    nonce: String,
    grace: String,
}

async fn rotate(
    State(admin): State<Admin>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<Rotate>,
) -> Page {
    let s = checked(&session, &form.csrf).await?;
    let csrf = s.csrf.clone();
    if !consume_nonce(&session, s, &form.nonce).await? {
        return Err(already_submitted(&csrf));
    }
    let Some(&(grace, _)) = pages::GRACES.iter().find(|(v, _)| *v == form.grace) else {
        return Err(forbidden("Unknown grace period."));
    };
    let grace = humantime::parse_duration(grace).map_err(failure)?;
    let old = own_live_token(&admin, &id).await?;
    let created = admin.tokens.rotate(old.id, grace).await.map_err(failure)?;
    let note = if grace.is_zero() {
        "The old token was revoked.".to_owned()
    } else {
        let ends = SystemTime::now() + grace;
        let ends = old.expires_at.map_or(ends, |e| e.min(ends));
        format!(
            "The old token keeps working until {}.",
            fmt_time(Some(ends))
        )
    };
    Ok(html(
        StatusCode::OK,
        pages::shown_once(
            &csrf,
            "Token rotated",
            &created.record.name,
            created.token.expose_secret(),
            Some(&note),
        ),
    ))
}

async fn suspend(State(admin): State<Admin>, session: Session, Form(form): Form<CsrfOnly>) -> Page {
    checked(&session, &form.csrf).await?;
    admin
        .tokens
        .suspend_owner(ADMIN_STORE)
        .await
        .map_err(failure)?;
    Ok(see_other("/admin/tokens"))
}

async fn reinstate(
    State(admin): State<Admin>,
    session: Session,
    Form(form): Form<CsrfOnly>,
) -> Page {
    checked(&session, &form.csrf).await?;
    admin
        .tokens
        .reinstate_owner(ADMIN_STORE)
        .await
        .map_err(failure)?;
    Ok(see_other("/admin/tokens"))
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
