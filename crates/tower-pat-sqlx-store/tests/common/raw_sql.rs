//! The raw-SQL check both SQL backends run, with their own statements:
//! revocation survives every write path the schema can refuse.
#![allow(dead_code)]

use std::future::Future;

use tower_pat::admin::{NewToken, TokenManager};
use tower_pat::store::TokenAdmin;
use tower_pat::token::TokenId;

use crate::conformance;

/// A token id as the SQL stores keep it.
pub fn db_id(id: TokenId) -> i64 {
    i64::from_be_bytes(*id.as_bytes())
}

/// For each list of `attacks`, on a store from `make`: a token is created
/// and revoked, then `exec(store, statement, id, digest)` runs each
/// statement (refused or not). Afterwards the revoked token must still
/// answer 401 and its record, if any is left, must read as revoked.
pub async fn revocation_survives<S, M, MF, E, EF>(attacks: &[&[&'static str]], make: M, exec: E)
where
    S: TokenAdmin + Clone,
    M: Fn() -> MF,
    MF: Future<Output = S>,
    E: Fn(S, &'static str, i64, Vec<u8>) -> EF,
    EF: Future<Output = ()>,
{
    let config = nuvlyx::live();
    for statements in attacks {
        let store = make().await;
        let m = TokenManager::new(store.clone(), config.clone());
        let c = m
            .create(NewToken::new("t", "o", ["orders:read"]))
            .await
            .unwrap();
        let token = c.token.expose_secret();
        assert_eq!(conformance::status_now(&store, &config, token).await, 200);
        m.revoke(c.record.id).await.unwrap();
        for sql in *statements {
            let digest = c.record.digest.as_bytes().to_vec();
            exec(store.clone(), sql, db_id(c.record.id), digest).await;
        }
        assert_eq!(
            conformance::status_now(&store, &config, token).await,
            401,
            "the revoked token works again after {statements:?}"
        );
        if let Some(r) = store.find(c.record.id).await.unwrap() {
            assert!(r.revoked_at.is_some(), "un-revoked by {statements:?}");
        }
    }
}
