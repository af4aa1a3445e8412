//! The command line: serve (the default), `tokens …` and `owners …`, with
//! one group of store options for all of them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "nuvlyx-api",
    version,
    about = "The Nuvlyx store API, protected by tower-pat"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Where the tokens are: one group for every command.
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the API over HTTPS (the default).
    Serve(ServeArgs),
    /// Create, list, revoke and rotate tokens.
    #[command(subcommand)]
    Tokens(TokensCmd),
    /// Suspend or reinstate a store (owner): all its tokens answer 401 while suspended.
    #[command(subcommand)]
    Owners(OwnersCmd),
    /// The admin pages' sign-in.
    #[command(subcommand)]
    Admin(AdminCmd),
}

#[derive(Subcommand, Debug)]
pub enum AdminCmd {
    /// Set the admin password, read from standard input (at least 12
    /// characters); stored as an Argon2id hash in the data directory.
    SetPassword,
    /// Print the admin audit log, newest first (who did what and when;
    /// never a token).
    Audit,
}

#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Directory for the certificate and the SQLite token store.
    #[arg(long, global = true, default_value = "./nuvlyx-data")]
    pub data_dir: PathBuf,
    /// Use a PostgreSQL token store instead (several instances can share it).
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// PostgreSQL schema holding the tables.
    #[arg(long, global = true, default_value = "public", hide = true)]
    pub database_schema: String,
    /// How long the server's cache keeps a record (benches; default 10 s).
    #[arg(long, global = true, hide = true, value_parser = parse_duration)]
    pub cache_ttl: Option<Duration>,
    /// Deliver lifecycle events (token created, rotated, revoked…) as
    /// signed webhooks (Standard Webhooks) to this URL; the signing secret
    /// is in `<data dir>/webhook-secret`.
    #[arg(long, global = true)]
    pub webhook_url: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// HTTPS listen address.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub addr: SocketAddr,
    /// Keep token budgets in this Redis (redis://host:port), shared by
    /// every instance; by default each instance keeps its own in memory.
    #[arg(long)]
    pub rate_limit_redis: Option<String>,
    /// How many instances share the budgets: while Redis is unreachable,
    /// each keeps this share of every budget.
    #[arg(long, default_value_t = 1)]
    pub instances: u32,
    /// Failed authentications allowed per client address ("20/min", the
    /// default), or "off" (load tests, where one loopback address stands
    /// for every client).
    #[arg(long, default_value = "20/min")]
    pub failed_auth_limit: String,
    /// Sudo mode of the admin pages: creating, rotating and revoking tokens
    /// and suspending the store ask for the password again when it was
    /// last given longer ago than this.
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    pub admin_sudo_window: Duration,
    /// Also listen for plain HTTP here, answering every request with the
    /// HTTPS-required rejection (never a redirect).
    #[arg(long)]
    pub http_addr: Option<SocketAddr>,
    /// Serve Prometheus metrics at http://ADDR/metrics, on a listener of
    /// their own (keep it off the public network).
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
    /// Where the secret scanner's public keys are, for /leak-reports/github:
    /// GitHub's key document (the default) or a file in its format.
    #[arg(long, default_value = crate::scanner::GITHUB_KEYS)]
    pub scanner_keys: String,
    /// Mount an unprotected twin of `GET orders` at /unprotected/orders (load tests).
    #[arg(long, hide = true)]
    pub unprotected_twin: bool,
}

#[derive(Subcommand, Debug)]
pub enum TokensCmd {
    /// Create a token; prints the plaintext alone on stdout (shown once).
    Create {
        #[arg(long)]
        name: String,
        /// Comma-separated scopes, e.g. orders:read,products:read
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Lifetime: 30s, 15m, 24h, 30d (the default), or "never" (a token
        /// without expiry must be asked for).
        #[arg(long, value_parser = parse_lifetime, default_value = "30d")]
        expires_in: Lifetime,
        #[arg(long, default_value = "demo-store")]
        owner: String,
        /// A request budget of its own: 600/min, 10/s, 5000/h, optionally
        /// "600/min burst 100".
        #[arg(long)]
        rate_limit: Option<tower_pat::limit::RateLimit>,
        /// The only networks it may be used from: "203.0.113.0/24,2001:db8::/32".
        #[arg(long)]
        allowed_ips: Option<tower_pat::limit::IpAllowlist>,
    },
    /// Change a token's limits: its budget (either way) and its allowlist
    /// (only narrower: widening it takes a new token).
    Limit {
        /// The token id (16 hex characters, from `tokens list`).
        id: String,
        /// The new budget (600/min, "600/min burst 100"), or "none".
        #[arg(long)]
        rate_limit: Option<String>,
        /// The new allowlist, inside the current one.
        #[arg(long)]
        allowed_ips: Option<tower_pat::limit::IpAllowlist>,
    },
    /// List tokens (never their secrets).
    List {
        #[arg(long)]
        owner: Option<String>,
    },
    /// Revoke a token at once and for good: by id, or `-` to read the full
    /// token from standard input (never put a token on the command line:
    /// every local user can read it in the process list).
    Revoke {
        /// The token id (16 hex characters, from `tokens list`), or `-`.
        id_or_stdin: String,
    },
    /// Rotate a token: prints the new token alone on stdout; the old one
    /// keeps working for the grace period.
    Rotate {
        /// The token id (16 hex characters, from `tokens list`), or `-` to
        /// read the full token from standard input.
        id_or_stdin: String,
        /// How long the old token keeps working (never past its own expiry).
        #[arg(long, value_parser = parse_duration, default_value = "1h")]
        grace: Duration,
    },
}

#[derive(Subcommand, Debug)]
pub enum OwnersCmd {
    /// Suspend a store: its tokens answer 401. Refuses an owner that has no
    /// token (a typo?) unless `--force`.
    Suspend {
        owner: String,
        /// Suspend even an owner with no token yet.
        #[arg(long)]
        force: bool,
    },
    /// Lift a suspension.
    Reinstate { owner: String },
}

impl Cli {
    /// Parses the command line. The store options are global: they may come
    /// before or after a subcommand. Serving options given before a
    /// subcommand are refused rather than ignored.
    pub fn parse_checked() -> Self {
        let matches = Self::command().get_matches();
        let cli = Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        if cli.command.is_some() {
            for (id, flag) in [
                ("addr", "--addr"),
                ("http_addr", "--http-addr"),
                ("metrics_addr", "--metrics-addr"),
                ("unprotected_twin", "--unprotected-twin"),
                ("scanner_keys", "--scanner-keys"),
            ] {
                if matches.value_source(id) == Some(ValueSource::CommandLine) {
                    Self::command()
                        .error(
                            ErrorKind::ArgumentConflict,
                            format!("{flag} is a serving option: put it after `serve`, or give no subcommand"),
                        )
                        .exit();
                }
            }
        }
        cli
    }
}

/// Parses a lifetime such as `30s`, `15m`, `24h`, `30d` or `1h 30m`
/// (humantime's syntax). Zero is refused.
/// A token's lifetime on the command line: a duration, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime(pub Option<Duration>);

/// `30d`, `24h`…, or `never`.
pub fn parse_lifetime(s: &str) -> Result<Lifetime, String> {
    if s == "never" {
        return Ok(Lifetime(None));
    }
    parse_duration(s).map(|d| Lifetime(Some(d)))
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| {
        format!("invalid duration {s:?}: {e} (use a number and a unit, e.g. 30s, 15m, 24h, 30d)")
    })?;
    if d.is_zero() {
        return Err(format!(
            "invalid duration {s:?}: it must be longer than zero"
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_default_to_30_days_and_never_is_explicit() {
        use clap::Parser;
        let create = |extra: &[&str]| {
            let mut args = vec![
                "nuvlyx-api",
                "tokens",
                "create",
                "--name",
                "n",
                "--scopes",
                "orders:read",
            ];
            args.extend(extra);
            match Cli::try_parse_from(args).unwrap().command {
                Some(Command::Tokens(TokensCmd::Create { expires_in, .. })) => expires_in,
                _ => unreachable!(),
            }
        };
        assert_eq!(
            create(&[]),
            Lifetime(Some(Duration::from_secs(30 * 86_400)))
        );
        assert_eq!(create(&["--expires-in", "never"]), Lifetime(None));
        assert_eq!(
            create(&["--expires-in", "7d"]),
            Lifetime(Some(Duration::from_secs(7 * 86_400)))
        );
        assert!(parse_lifetime("0s").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(2_592_000)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5_400)));
        for bad in [
            "",
            "d",
            "10",
            "10w-",
            "-1d",
            "0s",
            "99999999999999999999d",
            // Not ASCII: a clear error, never a panic.
            "1é",
            "5€",
            "€",
            "١٢h",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("invalid duration"), "{bad}: {err}");
        }
    }
}
