//! One SQLite file, two processes: a server that verifies tokens, and a CLI
//! that mints and revokes them while the server runs.
//!
//! ```sh
//! # terminal 1: the server (https is left out here; see the README)
//! cargo run --example sqlite_two_processes --features sqlite,cache -- serve /tmp/tokens.db
//! # terminal 2: the CLI, another process on the same file
//! cargo run --example sqlite_two_processes --features sqlite,cache -- mint /tmp/tokens.db
//! cargo run --example sqlite_two_processes --features sqlite,cache -- revoke /tmp/tokens.db <id>
//! ```
//!
//! With no arguments it plays both parts on a scratch file, in one process
//! but through two independent store handles (two connection pools that
//! share nothing but the file, as two processes would), and prints how long
//! the server kept accepting the token after the CLI revoked it.
//!
//! The rules it shows:
//! - **The server** opens the file, puts a `CachedStore` in front, and calls
//!   `watch_changes` with the cache's invalidator: every `POLL` it reads the
//!   change table that every process's revocations, suspensions and expiry
//!   changes are appended to.
//! - **Mint and revoke through your own handle.** In the server process,
//!   through the `CachedStore` (the local cache forgets the token before the
//!   call returns). In another process, through a plain `SqliteStore` on the
//!   same file: the change table carries the news.
//! - **The bound.** A revocation made by another process is refused by the
//!   server within `POLL` (plus the time of one poll query), and within the
//!   cache TTL (`CacheConfig::ttl`, 10 s by default) if the poll fails.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use tower::{service_fn, Layer, ServiceExt};
use tower_pat::admin::{NewToken, TokenManager};
use tower_pat::store::{Background, CachedStore};
use tower_pat::transport::TlsConnection;
use tower_pat::{response::EmptyBody, token::TokenId, AuthLayer};
use tower_pat_sqlx_store::SqliteStore;

/// How often the server reads the change table: the staleness bound for
/// changes made by other processes.
const POLL: Duration = Duration::from_millis(250);

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The server's side: the store, its cache, and the watch that keeps the
/// cache honest about other processes' changes (it runs while the server
/// keeps its handle).
async fn server_store(path: &Path) -> Result<(CachedStore<SqliteStore>, Background), Error> {
    let store = SqliteStore::open(path).await?;
    let cached = CachedStore::new(store.clone());
    let watching = store.watch_changes(cached.invalidator(), POLL).await?;
    Ok((cached, watching))
}

/// The CLI's side: a plain store on the same file (no cache: it writes).
async fn cli_manager(path: &Path) -> Result<TokenManager<SqliteStore>, Error> {
    Ok(TokenManager::new(
        SqliteStore::open(path).await?,
        token_config(),
    ))
}

/// One request through the layer, as the TLS listener would hand it over.
async fn status(store: &CachedStore<SqliteStore>, token: &str) -> StatusCode {
    let auth = AuthLayer::builder(store.clone(), token_config())
        .responder(EmptyBody)
        .build();
    let svc = auth.layer(auth.require_scopes(["orders:read"]).layer(service_fn(
        |_: Request<()>| async { Ok::<_, std::convert::Infallible>(Response::new(())) },
    )));
    let req = Request::get("/orders")
        .extension(TlsConnection)
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .expect("a valid request");
    let Ok(res) = svc.oneshot(req).await;
    res.status()
}

/// Both parts on one file; how long the server kept accepting the token
/// after the CLI's revocation returned.
async fn scenario(path: &Path) -> Result<Duration, Error> {
    let (server, _watching) = server_store(path).await?;
    let cli = cli_manager(path).await?;

    let created = cli
        .create(NewToken::new("cli bot", "demo-store", ["orders:read"]))
        .await?;
    let token = created.token.expose_secret();
    // The server has never seen this token: it reads it from the file, and
    // keeps it in its cache.
    assert_eq!(status(&server, token).await, StatusCode::OK);
    assert_eq!(status(&server, token).await, StatusCode::OK);

    cli.revoke(created.record.id).await?;
    let revoked = Instant::now();
    while status(&server, token).await == StatusCode::OK {
        if revoked.elapsed() > POLL * 8 {
            return Err("the server still accepts a revoked token".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(status(&server, token).await, StatusCode::UNAUTHORIZED);
    Ok(revoked.elapsed())
}

async fn serve(path: &Path) -> Result<(), Error> {
    let (server, _watching) = server_store(path).await?;
    println!(
        "watching {} every {POLL:?}; paste a token to check it (Ctrl-D ends)",
        path.display()
    );
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line)? > 0 {
        println!("{}", status(&server, line.trim()).await);
        line.clear();
    }
    Ok(())
}

fn scratch_file() -> PathBuf {
    let nonce = u64::from_be_bytes(*token_config().format().mint().id.as_bytes());
    std::env::temp_dir().join(format!("tower-pat-two-processes-{nonce:016x}.db"))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["serve", path] => serve(Path::new(path)).await,
        ["mint", path] => {
            let cli = cli_manager(Path::new(path)).await?;
            let created = cli
                .create(NewToken::new("cli bot", "demo-store", ["orders:read"]))
                .await?;
            eprintln!("minted token {} (shown once)", created.record.id);
            println!("{}", created.token.expose_secret());
            Ok(())
        }
        ["revoke", path, id] => {
            let id: TokenId = id.parse()?;
            cli_manager(Path::new(path)).await?.revoke(id).await?;
            eprintln!("revoked {id}: the server refuses it within {POLL:?}");
            Ok(())
        }
        [] => {
            let path = scratch_file();
            let delay = scenario(&path).await;
            for suffix in ["", "-wal", "-shm"] {
                std::fs::remove_file(format!("{}{suffix}", path.display())).ok();
            }
            println!(
                "the server refused the token {:?} after the CLI revoked it (poll: {POLL:?})",
                delay?
            );
            Ok(())
        }
        _ => Err("usage: sqlite_two_processes [serve FILE | mint FILE | revoke FILE ID]".into()),
    }
}

/// This API's tokens: the format (`nvl_live_…`) and the scopes, as an
/// adopter defines its own.
fn token_config() -> tower_pat::TokenConfig {
    tower_pat::TokenConfig::new(
        tower_pat::TokenFormat::new("nvl", tower_pat::Environment::Live).expect("a valid prefix"),
        tower_pat::ScopeCatalog::new()
            .scope("orders:read", "Read orders and their status.")
            .scope("orders:write", "Create orders on behalf of customers."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_handles_revocation_is_refused_within_the_poll_interval() {
        let path = scratch_file();
        let delay = scenario(&path).await;
        for suffix in ["", "-wal", "-shm"] {
            std::fs::remove_file(format!("{}{suffix}", path.display())).ok();
        }
        let delay = delay.unwrap();
        // One poll interval, plus the poll's own query and scheduling.
        assert!(delay <= POLL + Duration::from_millis(250), "{delay:?}");
    }
}
