//! Witnesses for the filter of known ids, shared by the PostgreSQL and
//! Redis tests: a table lock that holds every query back, so a lookup that
//! returns at once cannot have asked the database.

use std::time::Duration;

use tower_pat::store::TokenStore;
use tower_pat_sqlx_store::PostgresStore;

/// Holds `LOCK TABLE tower_pat_tokens IN ACCESS EXCLUSIVE MODE` in an open
/// transaction of `pool` (which selects the schema): until it is dropped,
/// any query that reads the table waits, so a lookup that returns at once
/// cannot have asked the database.
pub async fn lock_tokens(pool: &sqlx::PgPool) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE tower_pat_tokens IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

/// Whether a direct store lookup of `id` finished within 100 ms (answered
/// by the filter) rather than waiting on the locked table.
pub async fn answered_without_the_table(
    store: &PostgresStore,
    id: tower_pat::token::TokenId,
) -> bool {
    match tokio::time::timeout(Duration::from_millis(100), store.find(id)).await {
        Ok(answer) => {
            assert!(answer.unwrap().is_none(), "a made-up id was found");
            true
        }
        Err(_) => false,
    }
}

/// Ids of well-formed tokens that were never stored: what a forger sends.
pub fn made_up_ids(n: usize) -> Vec<tower_pat::token::TokenId> {
    let format = nuvlyx::live().format().clone();
    (0..n).map(|_| format.mint().id).collect()
}
