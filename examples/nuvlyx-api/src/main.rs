//! `nuvlyx-api`: the Nuvlyx store API protected by tower-pat, and its token
//! administration CLI.
//!
//! `cargo run -p nuvlyx-api` serves HTTPS on 127.0.0.1:8443 with a
//! self-signed certificate and an embedded SQLite token store, both kept in
//! `./nuvlyx-data/`, and prints a demo token with a ready `curl` line on
//! first start, with the admin password and where to sign in to the admin
//! pages (`/admin`, "Settings → API Tokens"). `nuvlyx-api tokens …` and
//! `nuvlyx-api owners …` administer the same store while the server runs.

mod admin;
mod api;
mod cli;
mod commands;
mod files;
mod metrics;
mod scanner;
mod serve;
mod store;
mod tls;
mod webhooks;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

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
    let cli = Cli::parse_checked();
    let result = match cli.command {
        None => serve::serve(cli.serve, cli.store).await,
        Some(Command::Serve(args)) => serve::serve(args, cli.store).await,
        Some(Command::Tokens(cmd)) => commands::tokens_cmd(cmd, &cli.store).await,
        Some(Command::Owners(cmd)) => commands::owners_cmd(cmd, &cli.store).await,
        Some(Command::Admin(cli::AdminCmd::SetPassword)) => {
            commands::set_admin_password(&cli.store)
        }
        Some(Command::Admin(cli::AdminCmd::Audit)) => commands::print_audit(&cli.store).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The whole chain of causes, on one line.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
