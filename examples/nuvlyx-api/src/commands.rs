//! `nuvlyx-api tokens …` and `nuvlyx-api owners …`: token administration on
//! the same store the server reads.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use tower_pat::admin::{AdminError, NewToken, TokenManager};
use tower_pat::token::TokenId;

use tower_pat::events::Event;

use crate::admin::audit;
use crate::cli::{OwnersCmd, StoreArgs, TokensCmd};
use crate::store::{manager, open_store, Store};
use crate::webhooks::Webhooks;

/// Where one CLI command's lifecycle events go: the webhooks, if
/// `--webhook-url` asks for them, and the admin audit log (written once the
/// command is done).
#[derive(Clone, Default)]
struct Sinks {
    hooks: Option<Webhooks>,
    seen: Arc<Mutex<Vec<Event>>>,
}

/// The manager for one CLI command. Its own messages say what happened, so
/// lifecycle events are not logged a second time here.
fn cli_manager(store: Store, sinks: &Sinks) -> TokenManager<Store> {
    let hooks = sinks.hooks.as_ref().map(|h| h.sink());
    let seen = sinks.seen.clone();
    manager(store).events(move |e: &Event| {
        seen.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(e.clone());
        if let Some(hooks) = &hooks {
            hooks(e);
        }
    })
}

/// Who the audit log says ran a command: the command line, and the
/// operating-system user.
fn cli_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown user".into());
    format!("command line ({user})")
}

/// Runs one CLI command, writes what it did to the audit log, then waits
/// (up to 30 s) for its webhooks.
async fn with_webhooks<F, Fut>(store: &StoreArgs, command: F) -> Result<()>
where
    F: FnOnce(Sinks) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let hooks = match &store.webhook_url {
        Some(url) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            Some(Webhooks::start(url, &store.data_dir)?)
        }
        None => None,
    };
    let sinks = Sinks {
        hooks,
        seen: Arc::default(),
    };
    let result = command(sinks.clone()).await;
    let seen = std::mem::take(&mut *sinks.seen.lock().unwrap_or_else(PoisonError::into_inner));
    if !seen.is_empty() {
        let audit = crate::store::open_audit(store).await?;
        let actor = cli_actor();
        for event in &seen {
            if let Some(entry) = audit::entry_for(&actor, event) {
                audit.record(entry).await?;
            }
        }
    }
    if let Some(hooks) = sinks.hooks {
        if !hooks.flush(Duration::from_secs(30)).await {
            eprintln!("warning: some webhooks were not delivered within 30 s");
        }
    }
    result
}

/// A token id given on the command line, or `-`: the full token read from
/// standard input (checked against the store).
async fn resolve(tokens: &TokenManager<Store>, id_or_stdin: &str) -> Result<TokenId> {
    if id_or_stdin == "-" {
        let mut token = String::new();
        std::io::stdin()
            .read_line(&mut token)
            .context("reading the token from standard input")?;
        let token = token.trim();
        return tokens.resolve(token).await.map_err(|e| match e {
            AdminError::UnknownToken(_) => anyhow!("unknown token {}", preview(token)),
            other => anyhow!("{other} ({})", preview(token)),
        });
    }
    if let Ok(id) = id_or_stdin.parse::<TokenId>() {
        return Ok(id);
    }
    if id_or_stdin.starts_with(&format!("{}_", tokens.config().format().prefix()))
        || id_or_stdin.len() > 16
    {
        bail!(
            "{} looks like a whole token: a token on the command line can be read by every local \
             user in the process list. Consider it exposed; pass its id (from `tokens list`) or `-` \
             and the token on standard input",
            preview(id_or_stdin)
        );
    }
    bail!("{id_or_stdin:?} is not a token id (16 hex characters, from `tokens list`) nor `-`")
}

/// What may be echoed back of something that might be a secret.
fn preview(s: &str) -> String {
    let keep: String = s.chars().take(13).collect();
    if s.chars().count() > 13 {
        format!("{keep}…")
    } else {
        keep
    }
}

/// A stored name as it may be shown on a terminal: control, invisible and
/// bidirectional-formatting characters (which the library refuses at
/// minting, but an older or hand-edited row may hold) are shown escaped.
fn printable(name: &str) -> String {
    name.chars()
        .map(|c| {
            let escaped = c.escape_debug().to_string();
            if escaped.starts_with("\\u{") || c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A time as RFC 3339, or `-`.
pub fn fmt_time(t: Option<SystemTime>) -> String {
    t.map_or_else(
        || "-".into(),
        |t| humantime::format_rfc3339_seconds(t).to_string(),
    )
}

/// `nuvlyx-api tokens …`
pub async fn tokens_cmd(cmd: TokensCmd, store: &StoreArgs) -> Result<()> {
    with_webhooks(store, |hooks| tokens(cmd, store, hooks)).await
}

async fn tokens(cmd: TokensCmd, store: &StoreArgs, sinks: Sinks) -> Result<()> {
    let hooks = &sinks;
    match cmd {
        TokensCmd::Create {
            name,
            scopes,
            expires_in,
            owner,
            rate_limit,
            allowed_ips,
        } => {
            let tokens = cli_manager(open_store(store).await?, hooks);
            let mut req = NewToken::new(&name, &owner, &scopes);
            if let Some(lifetime) = expires_in.0 {
                req = req.expires_in(lifetime);
            }
            if let Some(limit) = rate_limit {
                req = req.rate_limit(limit);
            }
            if let Some(allowed) = allowed_ips {
                req = req.allowed_ips(allowed);
            }
            let created = tokens.create(req).await?;
            eprintln!(
                "created token {} \"{}\" for {} with scopes {} (shown once: store it now)",
                created.record.id,
                created.record.name,
                created.record.owner,
                created.record.scopes.to_space_separated()
            );
            println!("{}", created.token.expose_secret());
        }
        TokensCmd::List { owner } => {
            let tokens = cli_manager(open_store(store).await?, hooks);
            let list = tokens.list(owner.as_deref()).await?;
            let now = SystemTime::now();
            println!(
                "{:<16}  {:<15}  {:<20}  {:<12}  {:<9}  {:<20}  {:<20}  {:<20}  {:<18}  {:<20}  SCOPES  [REVOKED BECAUSE]",
                "ID", "PREVIEW", "NAME", "OWNER", "STATUS", "CREATED", "EXPIRES", "LAST USED", "RATE LIMIT", "ALLOWED IPS"
            );
            for r in &list {
                println!(
                    "{:<16}  {:<15}  {:<20}  {:<12}  {:<9}  {:<20}  {:<20}  {:<20}  {:<18}  {:<20}  {}{}",
                    r.id.to_string(),
                    &*r.preview,
                    printable(&r.name),
                    r.owner.as_str(),
                    r.status(now).as_str(),
                    fmt_time(Some(r.created_at)),
                    fmt_time(r.expires_at),
                    match r.last_used_from {
                        Some(ip) => format!("{} from {ip}", fmt_time(r.last_used_at)),
                        None => fmt_time(r.last_used_at),
                    },
                    r.rate_limit.map_or_else(|| "-".to_owned(), |l| l.to_string()),
                    r.allowed_ips.as_ref().map_or_else(|| "any".to_owned(), |l| l.to_string()),
                    r.scopes.to_space_separated(),
                    revoked_because(r)
                );
            }
            eprintln!("{} token(s)", list.len());
        }
        TokensCmd::Limit {
            id,
            rate_limit,
            allowed_ips,
        } => {
            let tokens = cli_manager(open_store(store).await?, hooks);
            let id: tower_pat::token::TokenId =
                id.parse().map_err(|_| anyhow!("not a token id: {id}"))?;
            let current = tokens
                .store()
                .find(id)
                .await?
                .ok_or_else(|| anyhow!("unknown token {id}"))?;
            let rate_limit = match rate_limit.as_deref() {
                None => current.rate_limit,
                Some("none") => None,
                Some(text) => Some(text.parse().map_err(|e| anyhow!("--rate-limit: {e}"))?),
            };
            let allowed_ips = allowed_ips.or_else(|| current.allowed_ips.clone());
            tokens
                .set_limits(id, rate_limit, allowed_ips.clone())
                .await
                .map_err(|e| match e {
                    AdminError::UnknownToken(id) => {
                        anyhow!("unknown, revoked or expired token {id}")
                    }
                    other => other.into(),
                })?;
            println!(
                "token {id}: rate limit {}, allowed from {}",
                rate_limit.map_or_else(|| "none".to_owned(), |l| l.to_string()),
                allowed_ips.map_or_else(|| "anywhere".to_owned(), |l| l.to_string())
            );
        }
        TokensCmd::Revoke { id_or_stdin } => {
            let tokens = cli_manager(open_store(store).await?, hooks);
            let id = resolve(&tokens, &id_or_stdin).await?;
            match tokens.revoke(id).await.map_err(|e| match e {
                AdminError::UnknownToken(id) => anyhow!("unknown token {id}"),
                other => other.into(),
            })? {
                true => println!("revoked token {id}: it is refused from now on (irreversible)"),
                false => println!("token {id} was already revoked"),
            }
        }
        TokensCmd::Rotate { id_or_stdin, grace } => {
            let tokens = cli_manager(open_store(store).await?, hooks);
            let id = resolve(&tokens, &id_or_stdin).await?;
            let created = tokens.rotate(id, grace).await.map_err(|e| match e {
                AdminError::UnknownToken(id) => anyhow!("unknown, revoked or expired token {id}"),
                other => other.into(),
            })?;
            // Say when the old token really stops: the grace never extends
            // its own expiry.
            let old_end = tokens.store().find(id).await?.and_then(|r| r.expires_at);
            let until = match old_end {
                Some(t) => format!("until {}", fmt_time(Some(t))),
                None => "with no end (the grace is longer than any date)".into(),
            };
            eprintln!(
                "rotated {id} -> {}; the old token works {until}",
                created.record.id
            );
            println!("{}", created.token.expose_secret());
        }
    }
    Ok(())
}

/// `nuvlyx-api owners …`
pub async fn owners_cmd(cmd: OwnersCmd, store: &StoreArgs) -> Result<()> {
    with_webhooks(store, |hooks| owners(cmd, store, hooks)).await
}

async fn owners(cmd: OwnersCmd, store: &StoreArgs, sinks: Sinks) -> Result<()> {
    let hooks = &sinks;
    let (owner, suspend, force) = match cmd {
        OwnersCmd::Suspend { owner, force } => (owner, true, force),
        OwnersCmd::Reinstate { owner } => (owner, false, true),
    };
    let tokens = cli_manager(open_store(store).await?, hooks);
    let owned = tokens.list(Some(&owner)).await?.len();
    if owned == 0 && !force {
        bail!(
            "no token belongs to {owner:?}: is it mistyped? (`tokens list` shows the owners). \
             Nothing was changed; pass --force to suspend it before it has tokens"
        );
    }
    if suspend {
        tokens.suspend_owner(&owner).await?;
        println!("suspended {owner}: its {owned} token(s) answer 401 until reinstated");
    } else {
        tokens.reinstate_owner(&owner).await?;
        println!("reinstated {owner}: its {owned} token(s) work again (unless revoked or expired)");
    }
    Ok(())
}

/// `  [leaked: https://…]` for a revoked token whose reason was kept.
fn revoked_because(r: &tower_pat::store::TokenRecord) -> String {
    match &r.revoked_reason {
        None => String::new(),
        Some(why) => match why.url() {
            Some(url) => format!("  [{why}: {}]", printable(url)),
            None => format!("  [{why}]"),
        },
    }
}

/// `admin set-password`: reads the new password from standard input.
pub fn set_admin_password(store: &StoreArgs) -> Result<()> {
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .context("reading the password from standard input")?;
    crate::admin::security::set_password(&store.data_dir, &password)?;
    eprintln!(
        "admin password set (Argon2id hash in {})",
        crate::admin::security::password_file(&store.data_dir).display()
    );
    Ok(())
}

/// `nuvlyx-api admin audit`: the audit log, newest first, one entry a line.
pub async fn print_audit(store: &StoreArgs) -> Result<()> {
    let audit = crate::store::open_audit(store).await?;
    let entries = audit.recent().await?;
    for e in &entries {
        println!(
            "{}  {}  {}  {}  {}",
            fmt_time(Some(e.at)),
            printable(&e.actor),
            e.action,
            printable(&e.target),
            printable(&e.detail)
        );
    }
    eprintln!(
        "{} entr{}",
        entries.len(),
        if entries.len() == 1 { "y" } else { "ies" }
    );
    Ok(())
}
