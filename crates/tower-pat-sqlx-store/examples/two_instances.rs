//! Two instances of a service on one PostgreSQL database, as a deployment
//! runs them: each has its own `PostgresStore`, its own cache following the
//! change feed, and its own `AuthLayer`. A token minted on instance A works
//! on instance B at once; revoked on A, it is refused by B within
//! milliseconds.
//!
//! ```text
//! DATABASE_URL=postgres://root@127.0.0.1:5432/test \
//!   cargo run -p tower-pat-sqlx-store --example two_instances --features postgres
//! ```

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::body::Body;
use http::{Request, Response, StatusCode};
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_pat::admin::{NewToken, TokenManager};
use tower_pat::store::{Background, CachedStore, StoreError};
use tower_pat::transport::TlsConnection;
use tower_pat::{AuthLayer, Environment, ScopeCatalog, TokenConfig, TokenFormat};
use tower_pat_sqlx_store::PostgresStore;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Your API's token format and scopes.
fn config() -> TokenConfig {
    TokenConfig::new(
        TokenFormat::new("nvl", Environment::Live).unwrap(),
        ScopeCatalog::new().scope("orders:read", "Read orders."),
    )
}

/// One instance: its store, its cache following the feed, its layer
/// around a handler, and the handles of its background work.
struct Instance {
    tokens: TokenManager<CachedStore<PostgresStore>>,
    app: tower::util::BoxCloneSyncService<Request<()>, Response<Body>, Infallible>,
    work: Vec<Background>,
}

async fn instance(url: &str, schema: &str) -> Result<Instance, StoreError> {
    let store = PostgresStore::connect_in_schema(url, schema).await?;
    let cached = CachedStore::new(store.clone());
    let listening = store
        .listen(cached.invalidator(), Duration::from_secs(5))
        .await?;
    let last_use = store.write_last_used_every(Duration::from_secs(10));
    let handler =
        service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(Body::empty())) });
    let app = AuthLayer::new(cached.clone(), config()).layer(handler);
    Ok(Instance {
        tokens: TokenManager::new(cached, config()),
        app: tower::util::BoxCloneSyncService::new(app),
        work: vec![listening, last_use],
    })
}

/// `GET /orders` with `token`, over HTTPS as the server would mark it.
async fn status(instance: &Instance, token: &str) -> StatusCode {
    let mut req = Request::get("/orders")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap();
    req.extensions_mut().insert(TlsConnection);
    let mut app = instance.app.clone();
    let app = app.ready().await.unwrap();
    app.call(req).await.unwrap().status()
}

/// Mints on A, uses on B, revokes on A, and returns how long B took to
/// refuse the revoked token.
async fn scenario(url: &str, schema: &str) -> Result<Duration, Error> {
    let a = instance(url, schema).await?;
    let b = instance(url, schema).await?;

    let created = a
        .tokens
        .create(NewToken::new("bot", "acme", ["orders:read"]))
        .await?;
    let token = created.token.expose_secret().to_owned();
    assert_eq!(status(&b, &token).await, StatusCode::OK, "fresh token on B");

    a.tokens.revoke(created.record.id).await?;
    let revoked = Instant::now();
    while status(&b, &token).await != StatusCode::UNAUTHORIZED {
        assert!(
            revoked.elapsed() < Duration::from_secs(5),
            "B still serves it"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = revoked.elapsed();
    for work in a.work.into_iter().chain(b.work) {
        work.shutdown().await?;
    }
    Ok(took)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let url = std::env::var("DATABASE_URL").map_err(|_| "set DATABASE_URL=postgres://…")?;
    let took = scenario(&url, "two_instances_example").await?;
    println!("minted on A, served by B at once; revoked on A, refused by B after {took:?}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opt-in, as every database test: `DATABASE_URL`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_token_revoked_on_one_instance_is_refused_by_the_other() {
        let Some(url) = std::env::var("DATABASE_URL").ok() else {
            assert!(
                std::env::var_os("TOWER_PAT_REQUIRE_DB").is_none(),
                "DATABASE_URL is required"
            );
            eprintln!("skipped: DATABASE_URL not set");
            return;
        };
        let schema = format!("two_instances_{}", std::process::id());
        let took = scenario(&url, &schema).await.unwrap();
        assert!(took < Duration::from_secs(1), "{took:?}");
        let admin = PostgresStore::connect(&url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(admin.pool())
            .await
            .unwrap();
    }
}
