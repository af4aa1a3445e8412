//! `nuvlyx-api`: the Nuvlyx store API protected by tower-pat, and its token
//! administration CLI.
//!
//! `cargo run -p nuvlyx-api` serves HTTPS on 127.0.0.1:8443 with a
//! self-signed certificate and an embedded SQLite token store, both kept in
//! `./nuvlyx-data/`, and prints a demo token with a ready `curl` line on
//! first start. `nuvlyx-api tokens …` and `nuvlyx-api owners …` administer
//! the same store while the server runs.

mod api;
mod files;

/// How long the demo token minted on first start lives.
const DEMO_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Extension;
use axum_server::tls_rustls::RustlsConfig;
use clap::{Args, Parser, Subcommand};
use tower_pat::admin::{NewToken, TokenManager};
use tower_pat::transport::TlsConnection;
use tower_pat::{AuthLayer, CachedStore, PostgresStore, SqliteStore, TokenAdmin, TokenId};

#[derive(Parser, Debug)]
#[command(
    name = "nuvlyx-api",
    version,
    about = "The Nuvlyx store API, protected by tower-pat"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the API over HTTPS (the default).
    Serve(ServeArgs),
    /// Create, list, revoke and rotate tokens.
    #[command(subcommand)]
    Tokens(TokensCmd),
    /// Suspend or reinstate a store (owner): all its tokens answer 401 while suspended.
    #[command(subcommand)]
    Owners(OwnersCmd),
}

#[derive(Args, Debug, Clone)]
struct StoreArgs {
    /// Directory for the certificate and the SQLite token store.
    #[arg(long, default_value = "./nuvlyx-data")]
    data_dir: PathBuf,
    /// Use a PostgreSQL token store instead (several instances can share it).
    #[arg(long)]
    database_url: Option<String>,
    /// PostgreSQL schema holding the tables.
    #[arg(long, default_value = "public", hide = true)]
    database_schema: String,
}

#[derive(Args, Debug, Clone)]
struct ServeArgs {
    /// HTTPS listen address.
    #[arg(long, default_value = "127.0.0.1:8443")]
    addr: SocketAddr,
    /// Also listen for plain HTTP here, answering every request with the
    /// HTTPS-required rejection (never a redirect).
    #[arg(long)]
    http_addr: Option<SocketAddr>,
    /// Mount an unprotected twin of `GET orders` at /unprotected/orders (load tests).
    #[arg(long, hide = true)]
    unprotected_twin: bool,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Subcommand, Debug)]
enum TokensCmd {
    /// Create a token; prints the plaintext alone on stdout (shown once).
    Create {
        #[arg(long)]
        name: String,
        /// Comma-separated scopes, e.g. orders:read,products:read
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Lifetime: 30s, 15m, 24h, 30d…
        #[arg(long, value_parser = api::parse_duration)]
        expires_in: Option<Duration>,
        #[arg(long, default_value = "demo-store")]
        owner: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List tokens (never their secrets).
    List {
        #[arg(long)]
        owner: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a token at once and for good: by id, or `-` to read the full
    /// token from standard input (never put a token on the command line:
    /// every local user can read it in the process list).
    Revoke {
        /// The token id (16 hex characters, from `tokens list`), or `-`.
        id_or_stdin: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Rotate a token: prints the new token alone on stdout; the old one
    /// keeps working for the grace period.
    Rotate {
        /// The token id (16 hex characters, from `tokens list`), or `-` to
        /// read the full token from standard input.
        id_or_stdin: String,
        /// How long the old token keeps working (never past its own expiry).
        #[arg(long, value_parser = api::parse_duration, default_value = "1h")]
        grace: Duration,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand, Debug)]
enum OwnersCmd {
    /// Suspend a store: its tokens answer 401. Refuses an owner that has no
    /// token (a typo?) unless `--force`.
    Suspend {
        owner: String,
        /// Suspend even an owner with no token yet.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Lift a suspension.
    Reinstate {
        owner: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

type Store = Arc<dyn TokenAdmin>;

/// Opens the configured store. For serving, the store sits behind a cache
/// wired to the change feed, so CLI revocations apply within ~250 ms.
async fn open_store(args: &StoreArgs, serving: bool) -> Result<Store, String> {
    match &args.database_url {
        Some(url) => {
            let pg = PostgresStore::connect_in_schema(url, &args.database_schema)
                .await
                .map_err(|e| format!("PostgreSQL: {e}: {:?}", std::error::Error::source(&e)))?;
            if !serving {
                return Ok(Arc::new(pg));
            }
            let cached = CachedStore::new(pg.clone());
            pg.listen(cached.invalidator(), Duration::from_secs(5))
                .await
                .map_err(|e| format!("LISTEN: {e}"))?;
            Ok(Arc::new(cached))
        }
        None => {
            files::private_dir(&args.data_dir)?;
            let db = args.data_dir.join("tokens.db");
            files::private_file(&db)?;
            let sqlite = SqliteStore::open(&db)
                .await
                .map_err(|e| format!("opening the token store: {e}"))?;
            if !serving {
                return Ok(Arc::new(sqlite));
            }
            let cached = CachedStore::new(sqlite.clone());
            sqlite
                .watch_changes(cached.invalidator(), Duration::from_millis(250))
                .await
                .map_err(|e| format!("watching changes: {e}"))?;
            Ok(Arc::new(cached))
        }
    }
}

fn manager(store: Store) -> TokenManager<Store> {
    TokenManager::new(store, tower_pat::preset::nuvlyx_live())
}

/// Loads `cert.pem`/`key.pem` from the data directory, generating a
/// self-signed pair for localhost on first start.
fn load_or_create_cert(dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    files::private_dir(dir)?;
    if files::is_regular(&cert)? && files::is_regular(&key)? {
        files::tighten(&key)?;
        return Ok((cert, key));
    }
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .map_err(|e| format!("generating a certificate: {e}"))?;
    files::replace(
        &key,
        generated.signing_key.serialize_pem().as_bytes(),
        0o600,
    )?;
    files::replace(&cert, generated.cert.pem().as_bytes(), 0o644)?;
    eprintln!("generated a self-signed certificate: {}", cert.display());
    Ok((cert, key))
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let store = open_store(&args.store, true).await?;
    let tokens = manager(store.clone());

    // First start of the embedded store: a demo token, shown once, that
    // expires in 24 hours. Never for a database given with --database-url:
    // that may be a production store, where tokens are minted on purpose.
    let embedded = args.store.database_url.is_none();
    if embedded
        && tokens
            .list(None)
            .await
            .map_err(|e| e.to_string())?
            .is_empty()
    {
        let scopes: Vec<String> = tokens
            .config()
            .catalog()
            .grantable()
            .iter()
            .map(|s| s.to_string())
            .collect();
        let created = tokens
            .create(
                NewToken::new("demo token", "demo-store", scopes).expires_in(DEMO_TOKEN_LIFETIME),
            )
            .await
            .map_err(|e| e.to_string())?;
        let cert = args.store.data_dir.join("cert.pem");
        println!(
            "Demo token (shown once, expires in 24 h): {}",
            created.token.expose_secret()
        );
        println!(
            "It holds every grantable scope and expires at {}. Try it without putting it on a command line:",
            fmt_time(created.record.expires_at)
        );
        println!("  read -rs NUVLYX_TOKEN    # paste the token, then Enter");
        println!(
            "  printf 'Authorization: Bearer %s\\n' \"$NUVLYX_TOKEN\" | curl --cacert {} -H @- https://{}/api/v1/external/orders",
            cert.display(),
            display_addr(args.addr)
        );
    }

    let (cert, key) = load_or_create_cert(&args.store.data_dir)?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = RustlsConfig::from_pem_file(&cert, &key)
        .await
        .map_err(|e| format!("loading {}: {e}", cert.display()))?;

    let auth = AuthLayer::new(store.clone(), tower_pat::preset::nuvlyx_live()).realm("nuvlyx");
    let app = api::app(auth.clone(), args.unprotected_twin).layer(Extension(TlsConnection));

    if let Some(http_addr) = args.http_addr {
        let listener = tokio::net::TcpListener::bind(http_addr)
            .await
            .map_err(|e| format!("binding {http_addr}: {e}"))?;
        let plain = api::plain_http_app();
        eprintln!("plain HTTP on http://{http_addr} (every request is refused: HTTPS required)");
        tokio::spawn(async move { axum::serve(listener, plain).await });
    }

    eprintln!(
        "serving https://{} (tokens in {})",
        display_addr(args.addr),
        store_label(&args.store)
    );
    axum_server::bind_rustls(args.addr, tls)
        .serve(app.into_make_service_with_connect_info::<SocketAddr>())
        .await
        .map_err(|e| format!("serving on {}: {e}", args.addr))
}

fn display_addr(addr: SocketAddr) -> String {
    if addr.ip().is_loopback() && addr.is_ipv4() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    }
}

fn store_label(args: &StoreArgs) -> String {
    match &args.database_url {
        Some(_) => "PostgreSQL".into(),
        None => args.data_dir.join("tokens.db").display().to_string(),
    }
}

/// A token id given on the command line, or `-`: the full token read from
/// standard input (checked against the store).
async fn resolve(tokens: &TokenManager<Store>, id_or_stdin: &str) -> Result<TokenId, String> {
    if id_or_stdin == "-" {
        let mut token = String::new();
        std::io::stdin()
            .read_line(&mut token)
            .map_err(|e| format!("reading the token from standard input: {e}"))?;
        let token = token.trim();
        return tokens.resolve(token).await.map_err(|e| match e {
            tower_pat::admin::AdminError::UnknownToken(_) => {
                format!("unknown token {}", preview(token))
            }
            other => format!("{other} ({})", preview(token)),
        });
    }
    if let Ok(id) = id_or_stdin.parse::<TokenId>() {
        return Ok(id);
    }
    if id_or_stdin.starts_with(&format!("{}_", tokens.config().format().prefix()))
        || id_or_stdin.len() > 16
    {
        return Err(format!(
            "{} looks like a whole token: a token on the command line can be read by every local \
             user in the process list. Consider it exposed; pass its id (from `tokens list`) or `-` \
             and the token on standard input",
            preview(id_or_stdin)
        ));
    }
    Err(format!(
        "{id_or_stdin:?} is not a token id (16 hex characters, from `tokens list`) nor `-`"
    ))
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

fn fmt_time(t: Option<SystemTime>) -> String {
    t.map_or_else(
        || "-".into(),
        |t| humantime::format_rfc3339_seconds(t).to_string(),
    )
}

async fn tokens_cmd(cmd: TokensCmd) -> Result<(), String> {
    match cmd {
        TokensCmd::Create {
            name,
            scopes,
            expires_in,
            owner,
            store,
        } => {
            let tokens = manager(open_store(&store, false).await?);
            let mut req = NewToken::new(&name, &owner, &scopes);
            req.expires_in = expires_in;
            let created = tokens.create(req).await.map_err(|e| e.to_string())?;
            eprintln!(
                "created token {} \"{}\" for {} with scopes {} (shown once: store it now)",
                created.record.id,
                created.record.name,
                created.record.owner,
                created.record.scopes.to_space_separated()
            );
            println!("{}", created.token.expose_secret());
        }
        TokensCmd::List { owner, store } => {
            let tokens = manager(open_store(&store, false).await?);
            let list = tokens
                .list(owner.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            let now = SystemTime::now();
            println!(
                "{:<16}  {:<15}  {:<20}  {:<12}  {:<9}  {:<20}  {:<20}  {:<20}  SCOPES",
                "ID", "PREVIEW", "NAME", "OWNER", "STATUS", "CREATED", "EXPIRES", "LAST USED"
            );
            for r in &list {
                println!(
                    "{:<16}  {:<15}  {:<20}  {:<12}  {:<9}  {:<20}  {:<20}  {:<20}  {}",
                    r.id.to_string(),
                    &*r.preview,
                    printable(&r.name),
                    r.owner.as_str(),
                    r.status(now).as_str(),
                    fmt_time(Some(r.created_at)),
                    fmt_time(r.expires_at),
                    fmt_time(r.last_used_at),
                    r.scopes.to_space_separated()
                );
            }
            eprintln!("{} token(s)", list.len());
        }
        TokensCmd::Revoke { id_or_stdin, store } => {
            let tokens = manager(open_store(&store, false).await?);
            let id = resolve(&tokens, &id_or_stdin).await?;
            match tokens.revoke(id).await.map_err(|e| match e {
                tower_pat::admin::AdminError::UnknownToken(id) => format!("unknown token {id}"),
                other => other.to_string(),
            })? {
                true => println!("revoked token {id}: it is refused from now on (irreversible)"),
                false => println!("token {id} was already revoked"),
            }
        }
        TokensCmd::Rotate {
            id_or_stdin,
            grace,
            store,
        } => {
            let tokens = manager(open_store(&store, false).await?);
            let id = resolve(&tokens, &id_or_stdin).await?;
            let created = tokens.rotate(id, grace).await.map_err(|e| match e {
                tower_pat::admin::AdminError::UnknownToken(id) => {
                    format!("unknown, revoked or expired token {id}")
                }
                other => other.to_string(),
            })?;
            // Say when the old token really stops: the grace never extends
            // its own expiry.
            let old_end = tokens
                .store()
                .find(id)
                .await
                .map_err(|e| e.to_string())?
                .and_then(|r| r.expires_at);
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

async fn owners_cmd(cmd: OwnersCmd) -> Result<(), String> {
    let (owner, store, suspend, force) = match cmd {
        OwnersCmd::Suspend {
            owner,
            store,
            force,
        } => (owner, store, true, force),
        OwnersCmd::Reinstate { owner, store } => (owner, store, false, true),
    };
    let tokens = manager(open_store(&store, false).await?);
    let owned = tokens
        .list(Some(&owner))
        .await
        .map_err(|e| e.to_string())?
        .len();
    if owned == 0 && !force {
        return Err(format!(
            "no token belongs to {owner:?}: is it mistyped? (`tokens list` shows the owners). \
             Nothing was changed; pass --force to suspend it before it has tokens"
        ));
    }
    if suspend {
        tokens
            .suspend_owner(&owner)
            .await
            .map_err(|e| e.to_string())?;
        println!("suspended {owner}: its {owned} token(s) answer 401 until reinstated");
    } else {
        tokens
            .reinstate_owner(&owner)
            .await
            .map_err(|e| e.to_string())?;
        println!("reinstated {owner}: its {owned} token(s) work again (unless revoked or expired)");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        None => serve(cli.serve).await,
        Some(Command::Serve(args)) => serve(args).await,
        Some(Command::Tokens(cmd)) => tokens_cmd(cmd).await,
        Some(Command::Owners(cmd)) => owners_cmd(cmd).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
