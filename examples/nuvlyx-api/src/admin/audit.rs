//! The admin audit log: who did what and when (sign-in, create, rotate,
//! revoke, suspend, reinstate, revocations by leak reports), kept in the
//! token store's own database (SQLite file or PostgreSQL schema), so that
//! every instance writes to and shows the same log.
//!
//! An entry holds token ids, names and previews: never a secret. The admin
//! pages write their entries themselves (they know who acted); revocations
//! that come from a leak report arrive as events ([`Audit::sink`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use sqlx::{AssertSqlSafe, PgPool, Row, SqlitePool};
use tower_pat::events::Event;
use tower_pat::store::RevocationReason;

/// The table, beside the token store's tables (SQLite's statements name it
/// literally).
const TABLE: &str = "nuvlyx_admin_audit";

/// How many entries the audit page shows, newest first (SQLite's
/// statement says 200 literally).
pub const PAGE_SIZE: i64 = 200;

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub at: SystemTime,
    /// Who: "admin (sign-in 3fa2c1d0) from 127.0.0.1", "secret scanning report".
    pub actor: String,
    /// What: `sign_in`, `token.created`, `token.rotated`, `token.revoked`,
    /// `store.suspended`, `store.reinstated`, `sudo`, `sign_out`.
    pub action: String,
    /// On what: a token ("order bot" 3fa2c1d0e4b5a697) or the store.
    pub target: String,
    /// Anything else worth knowing (scopes, expiry, grace, reason).
    pub detail: String,
}

impl Entry {
    pub fn new(actor: &str, action: &str, target: &str, detail: &str) -> Entry {
        Entry {
            at: SystemTime::now(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            detail: detail.to_owned(),
        }
    }
}

/// Where the audit log is kept.
#[derive(Clone)]
pub enum Audit {
    Sqlite(SqlitePool),
    /// The pool and the store's schema (validated by the store: `a-z0-9_`).
    Postgres(PgPool, String),
}

fn secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Audit {
    /// Creates the table if missing.
    pub async fn open(self) -> Result<Audit> {
        match &self {
            Audit::Sqlite(pool) => {
                sqlx::query(
                    "CREATE TABLE IF NOT EXISTS nuvlyx_admin_audit (id INTEGER PRIMARY KEY AUTOINCREMENT, \
                     at INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, \
                     target TEXT NOT NULL, detail TEXT NOT NULL)",
                )
                .execute(pool)
                .await
                .map(drop)
            }
            Audit::Postgres(pool, schema) => {
                sqlx::query(AssertSqlSafe(format!(
                    "CREATE TABLE IF NOT EXISTS {schema}.{TABLE} (id BIGSERIAL PRIMARY KEY, \
                     at BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, \
                     target TEXT NOT NULL, detail TEXT NOT NULL)"
                )))
                .execute(pool)
                .await
                .map(drop)
            }
        }
        .context("creating the audit log's table")?;
        Ok(self)
    }

    /// Appends `entry`.
    pub async fn record(&self, entry: Entry) -> Result<()> {
        let at = secs(entry.at);
        match self {
            Audit::Sqlite(pool) => sqlx::query(
                "INSERT INTO nuvlyx_admin_audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(at)
            .bind(entry.actor)
            .bind(entry.action)
            .bind(entry.target)
            .bind(entry.detail)
            .execute(pool)
            .await
            .map(drop),
            Audit::Postgres(pool, schema) => sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {schema}.{TABLE} (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)"
            )))
            .bind(at)
            .bind(entry.actor)
            .bind(entry.action)
            .bind(entry.target)
            .bind(entry.detail)
            .execute(pool)
            .await
            .map(drop),
        }
        .context("writing the audit log")
    }

    /// The newest [`PAGE_SIZE`] entries, newest first.
    pub async fn recent(&self) -> Result<Vec<Entry>> {
        let from = |at: i64, actor, action, target, detail| Entry {
            at: UNIX_EPOCH + Duration::from_secs(u64::try_from(at).unwrap_or(0)),
            actor,
            action,
            target,
            detail,
        };
        Ok(match self {
            Audit::Sqlite(pool) => sqlx::query(
                "SELECT at, actor, action, target, detail FROM nuvlyx_admin_audit ORDER BY id DESC LIMIT 200",
            )
            .fetch_all(pool)
            .await
            .context("reading the audit log")?
            .iter()
            .map(|r| from(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
            .collect(),
            Audit::Postgres(pool, schema) => sqlx::query(AssertSqlSafe(format!(
                "SELECT at, actor, action, target, detail FROM {schema}.{TABLE} ORDER BY id DESC LIMIT {PAGE_SIZE}"
            )))
            .fetch_all(pool)
            .await
            .context("reading the audit log")?
            .iter()
            .map(|r| from(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
            .collect(),
        })
    }

    /// An event sink that records the revocations `actor` makes for
    /// reasons other than an admin's (a leak report), written in the
    /// background: a sink cannot wait.
    pub fn sink(&self, actor: &'static str) -> impl Fn(&Event) + Send + Sync + 'static {
        let audit = self.clone();
        move |event: &Event| {
            let leaked = matches!(
                event,
                Event::TokenRevoked {
                    reason: RevocationReason::Leaked { .. },
                    ..
                }
            );
            let Some(entry) = entry_for(actor, event).filter(|_| leaked) else {
                return;
            };
            let audit = audit.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if let Err(e) = audit.record(entry).await {
                        tracing::error!(error = %e, "audit log entry lost");
                    }
                });
            }
        }
    }
}

fn exact(t: SystemTime) -> String {
    let s = humantime::format_rfc3339_seconds(t).to_string();
    format!("{} {} UTC", &s[..10], &s[11..16])
}

/// The audit entry of a lifecycle event made by `actor`; `None` for
/// events that change nothing (an expiry warning, an exposure report).
pub fn entry_for(actor: &str, event: &Event) -> Option<Entry> {
    let (action, target, detail) = match event {
        Event::TokenCreated {
            id,
            name,
            scopes,
            expires_at,
            ..
        } => (
            "token.created",
            format!("“{name}” {id}"),
            format!(
                "scopes {}; expires {}",
                scopes.to_space_separated(),
                expires_at.map_or("never".into(), exact)
            ),
        ),
        Event::TokenRotated {
            old,
            new,
            old_ends_at,
            ..
        } => (
            "token.rotated",
            old.to_string(),
            format!(
                "replaced by {new}; the old token works until {}",
                old_ends_at.map_or("its revocation".into(), exact)
            ),
        ),
        Event::TokenLimitsChanged {
            id,
            rate_limit,
            allowed_ips,
            ..
        } => (
            "token.limits_changed",
            id.to_string(),
            format!(
                "rate limit {}; allowed from {}",
                rate_limit.map_or("none".into(), |l| l.to_string()),
                allowed_ips
                    .as_ref()
                    .map_or("anywhere".into(), |l| l.to_string())
            ),
        ),
        Event::TokenRevoked { id, reason } => (
            "token.revoked",
            id.to_string(),
            match reason {
                RevocationReason::Leaked { url: Some(url) } => format!("leaked; found at {url}"),
                other => other.as_str().replace('_', " "),
            },
        ),
        Event::OwnerSuspended { owner } => ("store.suspended", owner.to_string(), String::new()),
        Event::OwnerReinstated { owner } => ("store.reinstated", owner.to_string(), String::new()),
        _ => return None,
    };
    Some(Entry::new(actor, action, &target, &detail))
}
