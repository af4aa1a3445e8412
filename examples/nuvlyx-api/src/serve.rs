//! `nuvlyx-api serve`: the API over HTTPS, on the configured store.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Extension;
use axum_server::tls_rustls::RustlsConfig;
use tower_pat::admin::NewToken;
use tower_pat::transport::TlsConnection;
use tower_pat::AuthLayer;
use tower_pat_leak_reports::leak_reports;

use crate::admin::audit::Entry;
use crate::cli::{ServeArgs, StoreArgs};
use crate::commands::fmt_time;
use crate::scanner::KeyDocument;
use crate::store::{manager, open_serving};
use crate::webhooks::Webhooks;
use crate::{admin, api, tls};

/// How long the demo token minted on first start lives.
const DEMO_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Serves the API over HTTPS (and the plain-HTTP refusal, if asked).
pub async fn serve(args: ServeArgs, store_args: StoreArgs) -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Before anything records a value.
    let metrics = args
        .metrics_addr
        .map(|_| crate::metrics::install())
        .transpose()?;
    let serving = open_serving(&store_args).await?;
    let store = serving.store.clone();
    let webhooks = match &store_args.webhook_url {
        Some(url) => Some(Webhooks::start(url, &store_args.data_dir)?),
        None => None,
    };
    let mut tokens = manager(store.clone());
    if let Some(hooks) = &webhooks {
        tokens = tokens.events(hooks.sink());
    }

    // First start of the embedded store: a demo token, shown once, that
    // expires in 24 hours. Never for a database given with --database-url:
    // that may be a production store, where tokens are minted on purpose.
    let embedded = store_args.database_url.is_none();
    if embedded && tokens.list(None).await?.is_empty() {
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
            .await?;
        let detail = format!(
            "the demo token: every grantable scope; expires {}",
            fmt_time(created.record.expires_at)
        );
        let target = format!("“{}” {}", created.record.name, created.record.id);
        let entry = Entry::new("server (first start)", "token.created", &target, &detail);
        serving.audit.record(entry).await?;
        let cert = store_args.data_dir.join("cert.pem");
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

    let (cert, key) = tls::load_or_create_cert(&store_args.data_dir)?;
    let tls = RustlsConfig::from_pem_file(&cert, &key)
        .await
        .with_context(|| format!("loading {}", cert.display()))?;

    if let Some(password) = admin::security::first_password(&store_args.data_dir)? {
        println!(
            "Admin password (shown once; `nuvlyx-api admin set-password` sets your own): {password}"
        );
    }
    println!(
        "Admin: sign in at https://{}/admin/sign-in (Settings → API Tokens)",
        display_addr(args.addr)
    );

    let config = tokens.config().clone();
    // The demo shows where each token was last used from (a real service
    // says so in its privacy notice: an address is personal data).
    let mut auth = AuthLayer::builder(store.clone(), config.clone())
        .realm("nuvlyx")
        .record_client_addresses();
    auth = auth.failed_auth_limit(match args.failed_auth_limit.as_str() {
        "off" => None,
        budget => Some(
            budget
                .parse()
                .map_err(|e| anyhow::anyhow!("--failed-auth-limit: {e}"))?,
        ),
    });
    if let Some(url) = &args.rate_limit_redis {
        auth = auth.rate_limiter(tower_pat_redis::RedisRateLimiter::open(
            url,
            args.instances,
        )?);
    }
    let auth = auth.build();
    // Revocations by leak reports go to the audit log (and the webhooks).
    let leak_tokens = {
        let record = serving.audit.sink("secret scanning report");
        let hooks = webhooks.as_ref().map(|h| h.sink());
        tokens.clone().events(move |e: &tower_pat::events::Event| {
            record(e);
            if let Some(hooks) = &hooks {
                hooks(e);
            }
        })
    };
    let leaks = leak_reports(leak_tokens, KeyDocument::new(&args.scanner_keys)?);
    let app = api::app(auth, &config, leaks, args.unprotected_twin)
        .merge(admin::router(
            tokens.clone(),
            admin::AdminConfig {
                data_dir: store_args.data_dir.clone(),
                audit: serving.audit.clone(),
                sudo_window: args.admin_sudo_window,
            },
        ))
        .layer(Extension(TlsConnection))
        // Outermost: every HTTPS answer, the auth layer's 401s included.
        .layer(axum::middleware::map_response(strict_transport_security));

    if let (Some(addr), Some(handle)) = (args.metrics_addr, metrics) {
        crate::metrics::serve(addr, handle, serving.cache_stats.clone()).await?;
    }

    if let Some(http_addr) = args.http_addr {
        let listener = tokio::net::TcpListener::bind(http_addr)
            .await
            .with_context(|| format!("binding {http_addr}"))?;
        // The same checks as the HTTPS layer; every request here is
        // refused as plain HTTP, and real tokens seen here are reported.
        let mut plain_auth = AuthLayer::builder(store.clone(), config.clone()).realm("nuvlyx");
        if let Some(hooks) = &webhooks {
            plain_auth = plain_auth.events(hooks.sink());
        }
        let plain = api::plain_http_app(plain_auth.build());
        eprintln!("plain HTTP on http://{http_addr} (every request is refused: HTTPS required)");
        tokio::spawn(async move { axum::serve(listener, plain).await });
    }

    eprintln!(
        "serving https://{} (tokens in {})",
        display_addr(args.addr),
        store_label(&store_args)
    );
    // SIGTERM or Ctrl-C: stop accepting, let requests in flight finish
    // (up to 10 s), then stop the store's background work, writing the
    // pending last-use times.
    let server = axum_server::Handle::new();
    tokio::spawn({
        let server = server.clone();
        async move {
            shutdown_signal().await;
            eprintln!("shutting down");
            server.graceful_shutdown(Some(Duration::from_secs(10)));
        }
    });
    axum_server::bind_rustls(args.addr, tls)
        .handle(server)
        .serve(app.into_make_service_with_connect_info::<SocketAddr>())
        .await
        .with_context(|| format!("serving on {}", args.addr))?;
    serving.shutdown().await?;
    eprintln!("stopped");
    Ok(())
}

/// Ctrl-C, or SIGTERM (what a service manager or `docker stop` sends).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// HSTS on every HTTPS answer: browsers that saw it never try plain HTTP
/// on this host for a year, so a token cannot leak through a first request
/// typed without `https://`. Not `includeSubDomains`: a host knows its own
/// subdomains, a demo does not. Never sent by the plain-HTTP listener
/// (browsers ignore it there, RFC 6797 §8.1).
async fn strict_transport_security(mut res: axum::response::Response) -> axum::response::Response {
    res.headers_mut().insert(
        axum::http::header::STRICT_TRANSPORT_SECURITY,
        axum::http::HeaderValue::from_static("max-age=31536000"),
    );
    res
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
