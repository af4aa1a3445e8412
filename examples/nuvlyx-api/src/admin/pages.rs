//! The admin pages, as compiled templates (maud: every value is escaped).
//! No inline script or style: the CSP forbids them.

use std::time::{Duration, SystemTime};

use maud::{html, Markup, DOCTYPE};
use tower_pat::scope::CatalogEntry;

use super::audit::Entry;

/// A moment as people read it: "in 29 days", "3 hours ago", inside a
/// `<time>` element whose `datetime` (and tooltip) is the exact UTC time.
pub fn when(t: SystemTime, now: SystemTime) -> Markup {
    html! { time datetime=(rfc3339(t)) title=(exact(t)) { (relative(t, now)) } }
}

/// `2026-12-03T16:20:00Z`.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `2026-12-03 16:20 UTC`.
pub fn exact(t: SystemTime) -> String {
    let s = rfc3339(t);
    format!("{} {} UTC", &s[..10], &s[11..16])
}

/// "in 29 days", "3 hours ago", "just now": rounded to the nearest unit.
pub fn relative(t: SystemTime, now: SystemTime) -> String {
    let (d, future) = match t.duration_since(now) {
        Ok(d) => (d, true),
        Err(e) => (e.duration(), false),
    };
    let s = d.as_secs();
    if s < 60 {
        return if future {
            "in under a minute"
        } else {
            "just now"
        }
        .to_owned();
    }
    let (minutes, hours) = ((s + 30) / 60, (s + 1800) / 3600);
    let (n, unit) = if minutes < 60 {
        (minutes, "minute")
    } else if hours < 48 {
        (hours, "hour")
    } else {
        ((s + 43_200) / 86_400, "day")
    };
    let plural = if n == 1 { "" } else { "s" };
    if future {
        format!("in {n} {unit}{plural}")
    } else {
        format!("{n} {unit}{plural} ago")
    }
}

/// Which page of the navigation is current.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Tokens,
    Audit,
    Other,
}

/// Everything about one token the list shows.
pub struct Row {
    pub id: String,
    pub name: String,
    pub preview: String,
    pub scopes: Vec<String>,
    pub created: SystemTime,
    pub expires: Option<SystemTime>,
    pub last_used: Option<SystemTime>,
    pub last_used_from: Option<String>,
    /// The budget, or `None`.
    pub rate_limit: Option<String>,
    /// The allowlist, or `None`: any address.
    pub allowed_ips: Option<String>,
    /// `active`, `expiring-soon`, `expired`, `revoked`, `grace`.
    pub status_class: &'static str,
    /// What the status column says ("revoked (leaked)", …).
    pub status: String,
    /// When the rotation grace ends, for "in rotation grace until …".
    pub grace_until: Option<SystemTime>,
    /// Whether it can still be revoked or rotated.
    pub live: bool,
    /// The token this one replaced: (id, name).
    pub replaces: Option<(String, String)>,
    /// The token that replaced this one: (id, name).
    pub replaced_by: Option<(String, String)>,
}

fn layout(title: &str, signed_in: Option<(&str, Nav)>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Nuvlyx admin" }
                link rel="stylesheet" href="/admin/static/admin.css";
                script src="/admin/static/copy.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to main content" }
                header {
                    span.brand { "Nuvlyx admin" }
                    @if let Some((csrf, nav)) = signed_in {
                        nav aria-label="Settings" {
                            span.crumb aria-hidden="true" { "Settings →" }
                            a href="/admin/tokens" aria-current=[(nav == Nav::Tokens).then_some("page")] { "API Tokens" }
                            a href="/admin/audit" aria-current=[(nav == Nav::Audit).then_some("page")] { "Audit log" }
                        }
                        form.inline.sign-out method="post" action="/admin/sign-out" {
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" { (body) }
            }
        }
    }
}

/// The sign-in page; `error` says what went wrong (in words, with how long
/// to wait when the limit is reached).
pub fn sign_in(error: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            @if let Some(e) = error { p.error #sign-in-error role="alert" { (e) } }
            form method="post" action="/admin/sign-in" {
                label for="password" { "Admin password" }
                @if error.is_some() {
                    input #password type="password" name="password" autocomplete="current-password" required autofocus aria-describedby="sign-in-error";
                } @else {
                    input #password type="password" name="password" autocomplete="current-password" required autofocus;
                }
                button type="submit" { "Sign in" }
            }
            p.hint { "The password was printed when the server first started; "
                code { "nuvlyx-api admin set-password" } " sets a new one." }
        },
    )
}

/// What the list page shows.
pub struct TokensPage<'a> {
    pub csrf: &'a str,
    pub owner: &'a str,
    pub suspended: bool,
    /// Active and in-grace tokens, newest first.
    pub live: &'a [Row],
    /// Revoked and expired ones.
    pub ended: &'a [Row],
    pub now: SystemTime,
}

fn token_link(id: &str, name: &str) -> Markup {
    html! { a href=(format!("#token-{id}")) { (name) " (" code { (id) } ")" } }
}

fn limits(r: &Row) -> Markup {
    html! {
        @match (&r.rate_limit, &r.allowed_ips) {
            (None, None) => { span.muted { "none" } }
            (l, ips) => {
                @if let Some(l) = l { span.limit { (l) } }
                @if l.is_some() && ips.is_some() { br; }
                @if let Some(ips) = ips { span.limit { "from " (ips) } }
            }
        }
    }
}

fn row(r: &Row, now: SystemTime, actions: bool) -> Markup {
    html! {
        tr #(format!("token-{}", r.id)) data-token-id=(r.id) {
            td data-label="Name" {
                strong.name { (r.name) }
                br; span.muted { "created " (when(r.created, now)) }
                @if let Some((id, name)) = &r.replaced_by { br; span.link { "replaced by " (token_link(id, name)) } }
                @if let Some((id, name)) = &r.replaces { br; span.link { "replaces " (token_link(id, name)) } }
            }
            td data-label="Token" { code.preview { (r.preview) } }
            td data-label="Scopes" { @for s in &r.scopes { code.scope { (s) } " " } }
            td data-label="Expires" {
                @match r.expires { Some(t) => (when(t, now)), None => span.never { "never" } }
            }
            td data-label="Last used" {
                @match r.last_used {
                    Some(t) => {
                        (when(t, now))
                        @if let Some(ip) = &r.last_used_from { " from " code { (ip) } }
                    }
                    None => span.muted { "never" },
                }
            }
            td data-label="Limits" { (limits(r)) }
            td data-label="Status" {
                span class=(format!("status {}", r.status_class)) {
                    (r.status)
                    @if let Some(t) = r.grace_until { " until " (when(t, now)) }
                }
            }
            @if actions {
                td data-label="Actions" .actions {
                    a href=(format!("/admin/tokens/{}/rotate", r.id)) aria-label=(format!("Rotate {}", r.name)) { "Rotate" }
                    " "
                    a href=(format!("/admin/tokens/{}/limits", r.id)) aria-label=(format!("Edit the limits of {}", r.name)) { "Limits" }
                    " "
                    a.danger href=(format!("/admin/tokens/{}/revoke", r.id)) aria-label=(format!("Revoke {}", r.name)) { "Revoke" }
                }
            }
        }
    }
}

fn table(caption: &str, rows: &[Row], now: SystemTime, actions: bool) -> Markup {
    html! {
        div.table-wrap {
            table {
                caption.sr { (caption) }
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Token" } th scope="col" { "Scopes" }
                    th scope="col" { "Expires" } th scope="col" { "Last used" }
                    th scope="col" { "Limits" } th scope="col" { "Status" }
                    @if actions { th scope="col" { "Actions" } }
                } }
                tbody { @for r in rows { (row(r, now, actions)) } }
            }
        }
    }
}

pub fn tokens(p: &TokensPage<'_>) -> Markup {
    layout(
        "API Tokens",
        Some((p.csrf, Nav::Tokens)),
        html! {
            h1 { "API Tokens" }
            p.intro { "Tokens let integrations call the Nuvlyx API for store " strong { (p.owner) }
                ". Treat each one like a password: one per integration, with only the scopes it needs." }
            section.store aria-label="Store status" {
                @if p.suspended {
                    p.suspended { "Store " strong { (p.owner) } " is " strong { "suspended" } ": every token answers 401." }
                    form.inline method="post" action="/admin/store/reinstate" {
                        input type="hidden" name="csrf" value=(p.csrf);
                        button type="submit" { "Reinstate store" }
                    }
                } @else {
                    p { "Store " strong { (p.owner) } " is active." }
                }
            }
            @if p.live.is_empty() {
                div.empty #empty-state {
                    h2 { "No active tokens" }
                    p { "Create a token for each integration that calls the API: an order bot, a warehouse sync, a reporting job." }
                    a.button href="/admin/tokens/new" { "Create token" }
                }
            } @else {
                p { a.button href="/admin/tokens/new" { "Create token" } }
                h2 { "Active tokens (" (p.live.len()) ")" }
                (table("Active tokens", p.live, p.now, true))
            }
            @if !p.ended.is_empty() {
                details.ended {
                    summary { "Revoked and expired tokens (" (p.ended.len()) ")" }
                    (table("Revoked and expired tokens", p.ended, p.now, false))
                }
            }
            @if !p.suspended {
                section.danger-zone aria-labelledby="danger-zone" {
                    h2 #danger-zone { "Danger zone" }
                    p { "Suspending the store refuses every one of its tokens until it is reinstated." }
                    a.button.danger href="/admin/store/suspend" { "Suspend store…" }
                }
            }
        },
    )
}

/// The expiry choices of the create form: (value, label). `30d` is the
/// default; `never` carries a warning.
pub const EXPIRIES: &[(&str, &str)] = &[
    ("7d", "7 days"),
    ("30d", "30 days"),
    ("60d", "60 days"),
    ("90d", "90 days"),
    ("custom", "Custom date…"),
    ("never", "No expiry"),
];

/// What was typed into the create form, kept across an error.
#[derive(Default, Clone)]
pub struct Draft {
    pub name: String,
    pub scopes: Vec<String>,
    pub expires: String,
    pub expires_on: String,
    pub rate_limit: String,
    pub allowed_ips: String,
}

/// The create form's errors, each shown beside its field.
#[derive(Default)]
pub struct FieldErrors {
    pub name: Option<String>,
    pub scopes: Option<String>,
    pub expires: Option<String>,
    pub rate_limit: Option<String>,
    pub allowed_ips: Option<String>,
}

impl FieldErrors {
    pub fn any(&self) -> bool {
        self.name.is_some()
            || self.scopes.is_some()
            || self.expires.is_some()
            || self.rate_limit.is_some()
            || self.allowed_ips.is_some()
    }
}

/// A field's error, as the paragraph beside it.
fn field_error(id: &str, error: &Option<String>) -> Markup {
    html! { @if let Some(e) = error { p.field-error id=(format!("{id}-error")) { (e) } } }
}

/// `aria-describedby` of a field: its hint, and its error if any.
fn described_by(id: &str, hint: Option<&str>, error: &Option<String>) -> Option<String> {
    let mut ids: Vec<String> = hint.map(str::to_owned).into_iter().collect();
    if error.is_some() {
        ids.push(format!("{id}-error"));
    }
    (!ids.is_empty()).then(|| ids.join(" "))
}

pub fn new_token(
    csrf: &str,
    nonce: &str,
    catalog: &[CatalogEntry],
    draft: &Draft,
    errors: &FieldErrors,
    today: &str,
) -> Markup {
    let expires = if draft.expires.is_empty() {
        "30d"
    } else {
        draft.expires.as_str()
    };
    let invalid = |e: &Option<String>| e.as_ref().map(|_| "true");
    layout(
        "Create token",
        Some((csrf, Nav::Tokens)),
        html! {
            h1 { "Create token" }
            @if errors.any() {
                div.error #form-errors role="alert" {
                    p.first { strong { "The token was not created." } " Correct the fields below:" }
                    ul {
                        @for (id, e) in [("name", &errors.name), ("scope-hint", &errors.scopes), ("expires", &errors.expires), ("rate_limit", &errors.rate_limit), ("allowed_ips", &errors.allowed_ips)] {
                            @if let Some(e) = e { li { a href=(format!("#{id}")) { (e) } } }
                        }
                    }
                }
            }
            form.token-form method="post" action="/admin/tokens" novalidate {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="nonce" value=(nonce);
                label for="name" { "Name" }
                input #name type="text" name="name" maxlength="100" required placeholder="order bot" value=(draft.name)
                    aria-invalid=[invalid(&errors.name)] aria-describedby=[described_by("name", Some("name-hint"), &errors.name)];
                p.hint #name-hint { "What uses it, so that you know which token to revoke later." }
                (field_error("name", &errors.name))
                fieldset aria-invalid=[invalid(&errors.scopes)] aria-describedby=[described_by("scopes", Some("scope-hint"), &errors.scopes)] {
                    legend { "Scopes" }
                    p.hint #scope-hint { "Grant only the scopes this integration needs: a leaked token can do no more than its scopes allow." }
                    (field_error("scopes", &errors.scopes))
                    @for e in catalog {
                        @let id = format!("scope-{}", e.scope.as_str().replace(':', "-"));
                        @let checked = draft.scopes.iter().any(|s| s == e.scope.as_str());
                        div.scope-choice {
                            @if e.grantable {
                                input id=(id) type="checkbox" name="scopes" value=(e.scope.as_str()) checked[checked];
                            } @else {
                                input id=(id) type="checkbox" name="scopes" value=(e.scope.as_str()) disabled;
                            }
                            label for=(id) {
                                code { (e.scope.as_str()) } " — " (e.description)
                                @if !e.grantable { " " span.soon { "(coming soon)" } }
                            }
                        }
                    }
                }
                label for="expires" { "Expiration" }
                select #expires name="expires" aria-invalid=[invalid(&errors.expires)] aria-describedby=[described_by("expires", Some("expires-hint"), &errors.expires)] {
                    @for (value, label) in EXPIRIES {
                        option value=(value) selected[*value == expires] { (label) }
                    }
                }
                p.hint #expires-hint { "Tokens that expire limit the damage of a leak: rotate before the date." }
                div.custom-date {
                    label for="expires_on" { "Custom expiry date (UTC)" }
                    input #expires_on type="date" name="expires_on" min=(today) value=(draft.expires_on)
                        aria-describedby="expires_on-hint";
                    p.hint #expires_on-hint { "With “Custom date…”: the token stops working at 00:00 UTC on this date." }
                }
                p.warning.never-warning #never-warning {
                    strong { "A token without expiry" } " works until someone revokes it: if it leaks unnoticed, it stays useful to whoever holds it. "
                    "Prefer an expiry, and rotate the token before it."
                }
                (field_error("expires", &errors.expires))
                (limit_fields(&draft.rate_limit, &draft.allowed_ips, errors, true))
                div.form-actions {
                    button type="submit" { "Create token" }
                    " " a href="/admin/tokens" { "Cancel" }
                }
            }
        },
    )
}

/// The token, shown once, with what it is and how to use it.
pub struct ShownOnce<'a> {
    pub csrf: &'a str,
    pub heading: &'a str,
    pub name: &'a str,
    pub token: &'a str,
    pub scopes: Vec<String>,
    pub expires: Option<SystemTime>,
    /// The API's address, for the usage example (`host:port`).
    pub host: &'a str,
    pub note: Option<String>,
    pub now: SystemTime,
}

pub fn shown_once(p: &ShownOnce<'_>) -> Markup {
    let example = format!(
        "read -rs NUVLYX_TOKEN    # paste the token, then Enter\n\
         printf 'Authorization: Bearer %s\\n' \"$NUVLYX_TOKEN\" \\\n  | curl -H @- https://{}/api/v1/external/orders",
        p.host
    );
    layout(
        p.heading,
        Some((p.csrf, Nav::Tokens)),
        html! {
            h1 { (p.heading) }
            p.warning { strong { "Copy this token now. " } "It will not be shown again: only its digest is stored." }
            div.secret {
                p #token-label .label { "Token for " strong { (p.name) } }
                code #token .token aria-labelledby="token-label" { (p.token) }
                button #copy type="button" data-copy="token" { "Copy token" }
                p #copy-status .copy-status role="status" aria-live="polite" {}
            }
            dl.summary {
                dt { "Name" } dd { (p.name) }
                dt { "Scopes" } dd { @for s in &p.scopes { code.scope { (s) } " " } }
                dt { "Expires" } dd {
                    @match p.expires {
                        Some(t) => { (when(t, p.now)) " (" (exact(t)) ")" }
                        None => span.never { "never: revoke it when it is no longer needed" },
                    }
                }
            }
            @if let Some(n) = &p.note { p.note { (n) } }
            h2 { "Use it" }
            p { "Keep it off command lines (they end up in shell history and process lists): read it into a variable, then send it in a header." }
            pre.example { code { (example) } }
            p { a.button href="/admin/tokens" { "Done: back to API Tokens" } }
        },
    )
}

pub fn confirm_revoke(csrf: &str, r: &Row, now: SystemTime) -> Markup {
    layout(
        "Revoke token",
        Some((csrf, Nav::Tokens)),
        html! {
            h1 { "Revoke token" }
            p.warning {
                "Revoke " strong { (r.name) } " (" code { (r.preview) } ")? "
                strong { "This cannot be undone:" } " every request with this token will be refused at once."
            }
            dl.summary {
                dt { "Scopes" } dd { @for s in &r.scopes { code.scope { (s) } " " } }
                dt { "Last used" } dd { @match r.last_used { Some(t) => (when(t, now)), None => "never" } }
            }
            form method="post" action=(format!("/admin/tokens/{}/revoke", r.id)) {
                input type="hidden" name="csrf" value=(csrf);
                button.danger type="submit" { "Revoke token" }
                " " a href="/admin/tokens" { "Cancel" }
            }
        },
    )
}

/// The grace choices of the rotate form: (value, label).
pub const GRACES: &[(&str, &str)] = &[
    ("0s", "None"),
    ("1h", "1 hour"),
    ("24h", "24 hours"),
    ("7d", "7 days"),
];

/// When the old token stops under each grace: never past its own expiry.
pub fn grace_end(grace: Duration, expires: Option<SystemTime>, now: SystemTime) -> SystemTime {
    let end = now + grace;
    expires.map_or(end, |e| e.min(end))
}

pub fn rotate(
    csrf: &str,
    nonce: &str,
    r: &Row,
    expires: Option<SystemTime>,
    now: SystemTime,
) -> Markup {
    layout(
        "Rotate token",
        Some((csrf, Nav::Tokens)),
        html! {
            h1 { "Rotate token" }
            p { "A new token replaces " strong { (r.name) } " (" code { (r.preview) } ") with the same scopes, expiry and limits. "
                "The old one keeps working for the grace period you choose, so you can deploy the new one, and stops at its end." }
            form method="post" action=(format!("/admin/tokens/{}/rotate", r.id)) {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="nonce" value=(nonce);
                fieldset {
                    legend { "Grace period" }
                    @for (value, label) in GRACES {
                        @let id = format!("grace-{value}");
                        @let grace = humantime::parse_duration(value).unwrap_or_default();
                        div.scope-choice {
                            input id=(id) type="radio" name="grace" value=(value) checked[*value == "24h"];
                            label for=(id) {
                                strong { (label) } ": "
                                @if grace.is_zero() { "the old token stops now" }
                                @else { "the old token stops " (exact(grace_end(grace, expires, now))) }
                            }
                        }
                    }
                }
                div.form-actions {
                    button type="submit" { "Rotate token" }
                    " " a href="/admin/tokens" { "Cancel" }
                }
            }
        },
    )
}

/// The rate limit and allowlist fields, of the create form (`creating`)
/// or the limits form.
fn limit_fields(
    rate_limit: &str,
    allowed_ips: &str,
    errors: &FieldErrors,
    creating: bool,
) -> Markup {
    let invalid = |e: &Option<String>| e.as_ref().map(|_| "true");
    let optional = if creating { " (optional)" } else { "" };
    html! {
        label for="rate_limit" { "Rate limit" (optional) }
        input #rate_limit name="rate_limit" type="text" placeholder="600/min" autocomplete="off" value=(rate_limit)
            aria-invalid=[invalid(&errors.rate_limit)] aria-describedby=[described_by("rate_limit", Some("rate_limit_hint"), &errors.rate_limit)];
        p #rate_limit_hint .hint { "Requests per second, minute, hour or day, such as 600/min or \"600/min burst 100\". Empty: no budget of its own." }
        (field_error("rate_limit", &errors.rate_limit))
        label for="allowed_ips" { "Allowed IP addresses" (optional) }
        input #allowed_ips name="allowed_ips" type="text" placeholder="203.0.113.0/24, 2001:db8::/32" autocomplete="off" value=(allowed_ips)
            aria-invalid=[invalid(&errors.allowed_ips)] aria-describedby=[described_by("allowed_ips", Some("allowed_ips_hint"), &errors.allowed_ips)];
        p #allowed_ips_hint .hint {
            @if creating { "Addresses or CIDR ranges, comma-separated; the token is refused from anywhere else. It can be narrowed later, never widened. Empty: any address." }
            @else { "Addresses or CIDR ranges inside the current ones, comma-separated." }
        }
        (field_error("allowed_ips", &errors.allowed_ips))
    }
}

/// The limits form: the budget either way, the allowlist only narrower.
pub fn edit_limits(
    csrf: &str,
    r: &Row,
    rate_limit: &str,
    allowed_ips: &str,
    errors: &FieldErrors,
) -> Markup {
    layout(
        "Token limits",
        Some((csrf, Nav::Tokens)),
        html! {
            h1 { "Limits of " (r.name) }
            @if errors.any() {
                div.error #form-errors role="alert" { p.first { strong { "The limits were not changed." } " Correct the fields below." } }
            }
            p { "Token " code { (r.preview) } ". The budget can change either way. The allowed addresses can only get narrower: "
                "the token was handed out with them, so letting it in from elsewhere takes a new token." }
            form method="post" action=(format!("/admin/tokens/{}/limits", r.id)) novalidate {
                input type="hidden" name="csrf" value=(csrf);
                (limit_fields(rate_limit, allowed_ips, errors, false))
                div.form-actions {
                    button type="submit" { "Save limits" }
                    " " a href="/admin/tokens" { "Cancel" }
                }
            }
        },
    )
}

pub fn confirm_suspend(csrf: &str, owner: &str, live_tokens: usize) -> Markup {
    let tokens = if live_tokens == 1 {
        "1 active token".to_owned()
    } else {
        format!("{live_tokens} active tokens")
    };
    layout(
        "Suspend store",
        Some((csrf, Nav::Tokens)),
        html! {
            h1 { "Suspend store" }
            p.warning {
                "Suspend " strong { (owner) } "? Every token of this store — " strong #suspend-count { (tokens) } " — "
                "will answer 401 until you reinstate the store. The integrations that use them stop working at once."
            }
            p { "Nothing is revoked: reinstating the store gives every token back." }
            form method="post" action="/admin/store/suspend" {
                input type="hidden" name="csrf" value=(csrf);
                button.danger type="submit" { "Suspend store" }
                " " a href="/admin/tokens" { "Cancel" }
            }
        },
    )
}

/// Sudo mode: the password again before a sensitive action. The form
/// posts `fields` (the action's own form, carried over) plus the password
/// to `action`.
pub fn sudo(
    csrf: &str,
    action: &str,
    what: &str,
    fields: &[(String, String)],
    window: &str,
    error: Option<&str>,
) -> Markup {
    layout(
        "Confirm access",
        Some((csrf, Nav::Other)),
        html! {
            h1 { "Confirm access" }
            @if let Some(e) = error { p.error #sudo-error role="alert" { (e) } }
            p { "You are about to " strong { (what) } ". You last gave the password more than " (window)
                " ago: enter it again to go on." }
            form method="post" action=(action) {
                @for (k, v) in fields { input type="hidden" name=(k) value=(v); }
                label for="sudo_password" { "Admin password" }
                @if error.is_some() {
                    input #sudo_password type="password" name="sudo_password" autocomplete="current-password" required autofocus aria-describedby="sudo-error";
                } @else {
                    input #sudo_password type="password" name="sudo_password" autocomplete="current-password" required autofocus;
                }
                div.form-actions {
                    button type="submit" { "Confirm" }
                    " " a href="/admin/tokens" { "Cancel" }
                }
            }
        },
    )
}

pub fn audit(csrf: &str, entries: &[Entry], now: SystemTime) -> Markup {
    layout(
        "Audit log",
        Some((csrf, Nav::Audit)),
        html! {
            h1 { "Audit log" }
            p.intro { "Who did what, newest first (the last " (super::audit::PAGE_SIZE) "). Kept in the token store; never a token." }
            @if entries.is_empty() {
                p.muted { "Nothing yet." }
            } @else {
                div.table-wrap {
                    table.audit {
                        caption.sr { "Audit log" }
                        thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "Action" } th scope="col" { "On" } th scope="col" { "Details" } } }
                        tbody {
                            @for e in entries {
                                tr {
                                    td data-label="When" { (when(e.at, now)) br; span.muted { (exact(e.at)) } }
                                    td data-label="Who" { (e.actor) }
                                    td data-label="Action" { code { (e.action) } }
                                    td data-label="On" { (e.target) }
                                    td data-label="Details" { (e.detail) }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub fn message(csrf: Option<&str>, title: &str, text: &str) -> Markup {
    layout(
        title,
        csrf.map(|c| (c, Nav::Other)),
        html! {
            h1 { (title) }
            p { (text) }
            p { a href="/admin/tokens" { "Back to API Tokens" } }
        },
    )
}

pub const CSS: &str = r#"
:root { font-family: system-ui, sans-serif; color: #1d2330; background: #f6f7f9; line-height: 1.45; }
*, *::before, *::after { box-sizing: border-box; }
body { margin: 0; }
.skip { position: absolute; left: .5rem; top: -3rem; background: #fff; color: #1d2330; padding: .5rem 1rem; z-index: 10; }
.skip:focus { top: .5rem; }
header { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: center; padding: .75rem 1rem; background: #1d2330; color: #fff; }
header a { color: #fff; }
header nav { display: flex; flex-wrap: wrap; gap: .25rem 1rem; align-items: center; }
header nav a[aria-current=page] { font-weight: 700; text-decoration-thickness: 2px; }
.crumb { color: #c9cfdb; }
.brand { font-weight: 700; }
form.sign-out { margin-left: auto; }
main { max-width: 72rem; margin: 0 auto; padding: 1rem; }
main:focus { outline: none; }
h1 { font-size: 1.5rem; }
h2 { font-size: 1.2rem; margin-top: 1.5rem; }
label { display: block; font-weight: 600; margin: .75rem 0 .25rem; }
input[type=text], input[type=password], input[type=date], select { font: inherit; padding: .5rem; width: 100%; max-width: 32rem; border: 1px solid #767f92; border-radius: 4px; }
input[aria-invalid=true], select[aria-invalid=true] { border: 2px solid #b3261e; }
fieldset { border: 1px solid #ccd; margin: 1rem 0; max-width: 40rem; }
fieldset[aria-invalid=true] { border: 2px solid #b3261e; }
.scope-choice { display: flex; gap: .5rem; align-items: baseline; }
.scope-choice label { display: inline; font-weight: 400; margin: .2rem 0; }
.scope-choice input:disabled + label { color: #5f6673; }
.soon { font-style: italic; }
button, a.button { font: inherit; display: inline-block; margin-top: .75rem; padding: .5rem 1rem; border: 0; border-radius: 4px; background: #2456d3; color: #fff; text-decoration: none; cursor: pointer; }
button.danger, a.button.danger { background: #b3261e; }
a.danger { color: #b3261e; font-weight: 600; }
:focus-visible { outline: 3px solid #f0a500; outline-offset: 2px; }
select { display: block; }
form.inline { display: inline; }
header button { margin: 0; background: #3a4256; }
.table-wrap { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .5rem; border-bottom: 1px solid #e3e5ea; vertical-align: top; }
code { overflow-wrap: anywhere; }
code.scope, code.preview, .audit code { white-space: nowrap; }
.muted, .hint { color: #4a5263; }
.never { color: #8a4b00; font-weight: 600; }
.status { display: inline-block; padding: .1rem .4rem; border-radius: 3px; }
.status.active { background: #dff3e4; } .status.expiring-soon, .status.grace { background: #fff1c2; }
.status.expired, .status.revoked { background: #f8d7d5; }
.actions a { margin-right: .5rem; }
.warning, .error, .suspended { background: #fff1c2; border-left: 4px solid #d39e00; padding: .75rem; }
.error { background: #f8d7d5; border-color: #b3261e; }
#form-errors p.first { margin-top: 0; } #form-errors ul { margin-bottom: 0; } #form-errors a { color: #7a1712; }
.field-error { color: #9c1f17; font-weight: 600; margin: .25rem 0; }
.custom-date, .never-warning { display: none; }
form:has(#expires option[value=custom]:checked) .custom-date { display: block; }
form:has(#expires option[value=never]:checked) .never-warning { display: block; margin-top: .5rem; max-width: 40rem; }
.form-actions { margin-top: 1rem; }
.form-actions a { margin-left: .75rem; }
.empty { background: #fff; border: 1px dashed #aab; padding: 1.5rem; text-align: center; }
details.ended { margin-top: 1.5rem; }
details.ended summary { cursor: pointer; font-weight: 600; padding: .5rem 0; }
.danger-zone { margin-top: 2.5rem; border: 1px solid #e0b4b1; padding: 0 1rem 1rem; border-radius: 4px; }
.secret { background: #fff; border: 1px solid #ccd; padding: .75rem; margin: 1rem 0; }
.secret .label { margin: 0 0 .5rem; }
.token { display: block; font-family: ui-monospace, monospace; font-size: 1rem; word-break: break-all; background: #f0f2f6; padding: .5rem; }
.copy-status { min-height: 1.5em; margin: .5rem 0 0; }
dl.summary { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
dl.summary dt { font-weight: 600; } dl.summary dd { margin: 0; }
pre.example { background: #1d2330; color: #f6f7f9; padding: .75rem; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
@media (max-width: 44rem) {
  .brand { flex-basis: 100%; }
  .crumb { display: none; }
  table, thead, tbody, tr, td, caption { display: block; }
  thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  tr { border: 1px solid #e3e5ea; margin-bottom: .75rem; }
  td { border: 0; padding: .25rem .5rem; }
  td::before { content: attr(data-label) ": "; font-weight: 600; }
  dl.summary { grid-template-columns: 1fr; }
}
"#;

/// The copy button: the only script, served from our origin. It says
/// what happened through the page's `aria-live` region, and gives the
/// button its label back after a few seconds.
pub const COPY_JS: &str = r#"document.addEventListener("click", async (e) => {
  const button = e.target.closest("button[data-copy]");
  if (!button) return;
  const field = document.getElementById(button.dataset.copy);
  const status = document.getElementById("copy-status");
  const text = field.value !== undefined ? field.value : field.textContent;
  let copied = false;
  try {
    await navigator.clipboard.writeText(text);
    copied = true;
  } catch (_) {
    const range = document.createRange();
    range.selectNodeContents(field);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    copied = document.execCommand("copy");
  }
  if (copied) {
    button.textContent = "Copied";
    status.textContent = "Token copied to the clipboard.";
    setTimeout(() => { button.textContent = "Copy token"; }, 4000);
  } else {
    status.textContent = "Copying failed: select the token and copy it yourself.";
  }
});
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_in_words_round_to_the_nearest_unit() {
        let now = SystemTime::now();
        let at = |secs: i64| {
            if secs >= 0 {
                now + Duration::from_secs(secs.unsigned_abs())
            } else {
                now - Duration::from_secs(secs.unsigned_abs())
            }
        };
        for (secs, words) in [
            (10, "in under a minute"),
            (-10, "just now"),
            (89, "in 1 minute"),
            (3599, "in 1 hour"),
            (-7200, "2 hours ago"),
            (30 * 86_400 - 1, "in 30 days"),
            (47 * 3600, "in 47 hours"),
            (-3 * 86_400, "3 days ago"),
        ] {
            assert_eq!(relative(at(secs), now), words, "{secs}");
        }
        let day = SystemTime::UNIX_EPOCH + Duration::from_secs(86_400 + 90);
        assert_eq!(exact(day), "1970-01-02 00:01 UTC");
    }
}
