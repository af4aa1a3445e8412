//! PostgreSQL for the tests that need it (opt-in, as every database test:
//! `DATABASE_URL`; with `TOWER_PAT_REQUIRE_DB` set, a missing URL fails
//! instead of skipping).

use tower_pat_sqlx_store::PostgresStore;

/// The database URL, or `None` (after saying the test is skipped).
pub fn database_url() -> Option<String> {
    let url = std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"));
    if url.is_none() {
        assert!(
            std::env::var_os("TOWER_PAT_REQUIRE_DB").is_none(),
            "DATABASE_URL is required"
        );
        eprintln!("skipped: DATABASE_URL not set");
    }
    url
}

/// A store in `schema`, dropped first if a run before left it, and a store
/// on the default schema to drop it with afterwards.
pub async fn fresh_schema(url: &str, schema: &str) -> (PostgresStore, PostgresStore) {
    let admin = PostgresStore::connect(url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(admin.pool())
    .await
    .unwrap();
    let store = PostgresStore::connect_in_schema(url, schema).await.unwrap();
    (store, admin)
}

/// How many backends `LISTEN` on `schema`'s channel.
pub async fn listening_backends(pool: &sqlx::PgPool, schema: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE query LIKE $1 AND pid <> pg_backend_pid()",
    )
    .bind(format!("LISTEN \"tower_pat:{schema}\"%"))
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Terminates the backends `LISTEN`ing on `schema`'s channel (asserting
/// there is one), as a dropped connection would.
pub async fn kill_listeners(pool: &sqlx::PgPool, schema: &str) {
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE query LIKE $1 AND pid <> pg_backend_pid()",
    )
    .bind(format!("LISTEN \"tower_pat:{schema}\"%"))
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(!killed.is_empty(), "no LISTEN connection found");
}

/// Waits until `store` (another instance's cache) sees `id` revoked,
/// failing with `what` after `within`.
pub async fn await_revoked(
    store: &impl tower_pat::store::TokenStore,
    id: tower_pat::token::TokenId,
    within: std::time::Duration,
    what: &str,
) {
    let started = std::time::Instant::now();
    while store.find(id).await.unwrap().unwrap().revoked_at.is_none() {
        assert!(started.elapsed() < within, "{what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
