//! The admin pages, as compiled templates (maud: every value is escaped).
//! No inline script or style: the CSP forbids them.

use maud::{html, Markup, DOCTYPE};
use tower_pat::scope::CatalogEntry;

/// One token as the list shows it.
pub struct Row {
    pub id: String,
    pub name: String,
    pub preview: String,
    pub scopes: Vec<String>,
    pub created: String,
    pub expires: String,
    pub last_used: String,
    /// The budget and the allowlist ("600/min; from 203.0.113.0/24", "none").
    pub limits: String,
    /// `active`, `expiring-soon`, `expired`, `revoked`, `grace`.
    pub status_class: &'static str,
    /// What the status column says ("revoked (leaked)", …).
    pub status: String,
    /// Whether it can still be revoked or rotated.
    pub live: bool,
}

fn layout(title: &str, signed_in: Option<&str>, body: Markup) -> Markup {
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
                header {
                    span.brand { "Nuvlyx admin" }
                    @if let Some(csrf) = signed_in {
                        nav aria-label="Settings" { span { "Settings → " } a href="/admin/tokens" { "API Tokens" } }
                        form.inline method="post" action="/admin/sign-out" {
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

pub fn sign_in(error: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action="/admin/sign-in" {
                label for="password" { "Admin password" }
                input #password type="password" name="password" autocomplete="current-password" required autofocus;
                button type="submit" { "Sign in" }
            }
            p.hint { "The password was printed when the server first started; "
                code { "nuvlyx-api admin set-password" } " sets a new one." }
        },
    )
}

pub fn tokens(csrf: &str, owner: &str, suspended: bool, rows: &[Row]) -> Markup {
    layout(
        "API Tokens",
        Some(csrf),
        html! {
            h1 { "API Tokens" }
            section.store aria-label="Store status" {
                @if suspended {
                    p.suspended { "Store " strong { (owner) } " is " strong { "suspended" } ": every token answers 401." }
                    form.inline method="post" action="/admin/store/reinstate" {
                        input type="hidden" name="csrf" value=(csrf);
                        button type="submit" { "Reinstate store" }
                    }
                } @else {
                    p { "Store " strong { (owner) } " is active." }
                    form.inline method="post" action="/admin/store/suspend" {
                        input type="hidden" name="csrf" value=(csrf);
                        button.danger type="submit" { "Suspend store" }
                    }
                }
            }
            p { a.button href="/admin/tokens/new" { "Create token" } }
            @if rows.is_empty() {
                p { "No tokens yet." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "Token" } th scope="col" { "Scopes" }
                        th scope="col" { "Created" } th scope="col" { "Expires" } th scope="col" { "Last used" }
                        th scope="col" { "Limits" } th scope="col" { "Status" } th scope="col" { span.sr { "Actions" } }
                    } }
                    tbody {
                        @for r in rows {
                            tr data-token-id=(r.id) {
                                td data-label="Name" { (r.name) }
                                td data-label="Token" { code { (r.preview) } }
                                td data-label="Scopes" { @for s in &r.scopes { code.scope { (s) } " " } }
                                td data-label="Created" { (r.created) }
                                td data-label="Expires" { (r.expires) }
                                td data-label="Last used" { (r.last_used) }
                                td data-label="Limits" { (r.limits) }
                                td data-label="Status" { span class=(format!("status {}", r.status_class)) { (r.status) } }
                                td data-label="Actions" {
                                    @if r.live {
                                        a href=(format!("/admin/tokens/{}/rotate", r.id)) { "Rotate" } " "
                                        a.danger href=(format!("/admin/tokens/{}/revoke", r.id)) { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// The expiry choices of the create form: (value, label).
pub const EXPIRIES: &[(&str, &str)] = &[
    ("", "Never"),
    ("7d", "7 days"),
    ("30d", "30 days"),
    ("90d", "90 days"),
    ("365d", "1 year"),
];

pub fn new_token(csrf: &str, nonce: &str, catalog: &[CatalogEntry], error: Option<&str>) -> Markup {
    layout(
        "Create token",
        Some(csrf),
        html! {
            h1 { "Create token" }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action="/admin/tokens" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="nonce" value=(nonce);
                label for="name" { "Name" }
                input #name type="text" name="name" maxlength="100" required placeholder="order bot";
                fieldset {
                    legend { "Scopes" }
                    p.hint #scope-hint { "Grant only the scopes this integration needs: a leaked token can do no more than its scopes allow." }
                    @for e in catalog {
                        @let id = format!("scope-{}", e.scope.as_str().replace(':', "-"));
                        div.scope-choice {
                            @if e.grantable {
                                input id=(id) type="checkbox" name="scopes" value=(e.scope.as_str()) aria-describedby="scope-hint";
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
                label for="expires" { "Expires" }
                select #expires name="expires" {
                    @for (value, label) in EXPIRIES {
                        option value=(value) selected[value.is_empty()] { (label) }
                    }
                }
                label for="rate_limit" { "Rate limit (optional)" }
                input #rate_limit name="rate_limit" type="text" placeholder="600/min" aria-describedby="rate_limit_hint" autocomplete="off";
                p #rate_limit_hint .hint { "Requests per second, minute, hour or day, such as 600/min or \"600/min burst 100\". Empty: no budget of its own." }
                label for="allowed_ips" { "Allowed IP addresses (optional)" }
                input #allowed_ips name="allowed_ips" type="text" placeholder="203.0.113.0/24, 2001:db8::/32" aria-describedby="allowed_ips_hint" autocomplete="off";
                p #allowed_ips_hint .hint { "Addresses or CIDR ranges, comma-separated; the token is refused from anywhere else. It can be narrowed later, never widened. Empty: any address." }
                button type="submit" { "Create token" }
            }
        },
    )
}

/// The token, shown once.
pub fn shown_once(
    csrf: &str,
    heading: &str,
    name: &str,
    token: &str,
    note: Option<&str>,
) -> Markup {
    layout(
        heading,
        Some(csrf),
        html! {
            h1 { (heading) }
            p.warning role="alert" { strong { "Copy this token now. " } "It will not be shown again: only its digest is stored." }
            p { "Token for " strong { (name) } ":" }
            div.secret {
                label for="token" { "Token" }
                input #token type="text" readonly value=(token) autocomplete="off" spellcheck="false";
                button #copy type="button" data-copy="token" { "Copy" }
            }
            @if let Some(n) = note { p { (n) } }
            p { a.button href="/admin/tokens" { "Done" } }
        },
    )
}

pub fn confirm_revoke(csrf: &str, id: &str, name: &str, preview: &str) -> Markup {
    layout(
        "Revoke token",
        Some(csrf),
        html! {
            h1 { "Revoke token" }
            p.warning role="alert" {
                "Revoke " strong { (name) } " (" code { (preview) } ")? "
                strong { "This cannot be undone:" } " every request with this token will be refused at once."
            }
            form method="post" action=(format!("/admin/tokens/{id}/revoke")) {
                input type="hidden" name="csrf" value=(csrf);
                button.danger type="submit" { "Revoke token" }
                " " a href="/admin/tokens" { "Cancel" }
            }
        },
    )
}

/// The grace choices of the rotate form: (value, label).
pub const GRACES: &[(&str, &str)] = &[
    ("0s", "None: the old token stops now"),
    ("1h", "1 hour"),
    ("24h", "24 hours"),
    ("7d", "7 days"),
];

pub fn rotate(csrf: &str, nonce: &str, id: &str, name: &str, preview: &str) -> Markup {
    layout(
        "Rotate token",
        Some(csrf),
        html! {
            h1 { "Rotate token" }
            p { "A new token replaces " strong { (name) } " (" code { (preview) } ") with the same scopes. "
                "The old one keeps working for the grace period, so you can deploy the new one." }
            form method="post" action=(format!("/admin/tokens/{id}/rotate")) {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="nonce" value=(nonce);
                label for="grace" { "Grace period" }
                select #grace name="grace" {
                    @for (value, label) in GRACES {
                        option value=(value) selected[*value == "24h"] { (label) }
                    }
                }
                button type="submit" { "Rotate token" }
                " " a href="/admin/tokens" { "Cancel" }
            }
        },
    )
}

pub fn message(csrf: Option<&str>, title: &str, text: &str) -> Markup {
    layout(
        title,
        csrf,
        html! {
            h1 { (title) }
            p { (text) }
            p { a href="/admin/tokens" { "Back to API Tokens" } }
        },
    )
}

pub const CSS: &str = r#"
:root { font-family: system-ui, sans-serif; color: #1d2330; background: #f6f7f9; }
body { margin: 0; }
header { display: flex; flex-wrap: wrap; gap: .75rem; align-items: center; padding: .75rem 1rem; background: #1d2330; color: #fff; }
header a { color: #fff; }
.brand { font-weight: 700; margin-right: auto; }
main { max-width: 72rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.5rem; }
label { display: block; font-weight: 600; margin: .75rem 0 .25rem; }
input[type=text], input[type=password], select { font: inherit; padding: .5rem; width: 100%; max-width: 32rem; box-sizing: border-box; }
fieldset { border: 1px solid #ccd; margin: 1rem 0; max-width: 40rem; }
.scope-choice { display: flex; gap: .5rem; align-items: baseline; }
.scope-choice label { display: inline; font-weight: 400; margin: .2rem 0; }
.scope-choice input:disabled + label { color: #888; }
.soon { font-style: italic; }
button, a.button { font: inherit; display: inline-block; margin-top: .75rem; padding: .5rem 1rem; border: 0; border-radius: 4px; background: #2456d3; color: #fff; text-decoration: none; cursor: pointer; }
button.danger { background: #b3261e; }
a.danger { background: #b3261e; color: #fff; padding: .15rem .5rem; border-radius: 4px; text-decoration: none; }
select { display: block; }
form.inline { display: inline; }
header button { margin: 0; background: #3a4256; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .5rem; border-bottom: 1px solid #e3e5ea; vertical-align: top; }
code.scope { white-space: nowrap; }
.status { padding: .1rem .4rem; border-radius: 3px; white-space: nowrap; }
.status.active { background: #dff3e4; } .status.expiring-soon, .status.grace { background: #fff1c2; }
.status.expired, .status.revoked { background: #f8d7d5; }
.warning, .error, .suspended { background: #fff1c2; border-left: 4px solid #d39e00; padding: .75rem; }
.error { background: #f8d7d5; border-color: #b3261e; }
.secret { display: flex; flex-wrap: wrap; gap: .5rem; align-items: end; }
.secret label { width: 100%; }
.secret input { font-family: ui-monospace, monospace; flex: 1 1 20rem; }
.secret button { margin: 0; }
.hint { color: #4a5263; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
@media (max-width: 44rem) {
  table, thead, tbody, tr, td { display: block; }
  thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  tr { border: 1px solid #e3e5ea; margin-bottom: .75rem; }
  td { border: 0; padding: .25rem .5rem; }
  td::before { content: attr(data-label) ": "; font-weight: 600; }
}
"#;

/// The copy button: the only script, served from our origin.
pub const COPY_JS: &str = r#"document.addEventListener("click", async (e) => {
  const button = e.target.closest("button[data-copy]");
  if (!button) return;
  const field = document.getElementById(button.dataset.copy);
  field.select();
  try {
    await navigator.clipboard.writeText(field.value);
  } catch (_) {
    document.execCommand("copy");
  }
  button.textContent = "Copied";
});
"#;
