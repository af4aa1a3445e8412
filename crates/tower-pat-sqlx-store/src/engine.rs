//! The SQL store engine: the store operations written once for every sqlx
//! backend. A backend supplies its statements (a [`Dialect`] of constant
//! SQL), how to count the rows a statement changed, and how to tell other
//! processes of a change; `SqliteStore` and `PostgresStore` wrap an
//! `Arc<Engine<_>>` and delegate to it.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, FromRow, IntoArguments, Pool, Type};

use crate::sql::{
    db_error, id_to_db, scopes_to_db, to_micros, Dialect, RawRecord, Shared, UseTracker,
};
use tower_pat::limit::{IpAllowlist, RateLimit};
use tower_pat::store::{
    Change, Lookup, OwnerId, RevocationReason, StoreError, StoreErrorKind, TokenRecord,
};
use tower_pat::token::TokenId;

/// How long the client address of a last use is kept.
const ADDRESS_RETENTION: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);

/// What differs between two SQL databases, beyond the SQL itself.
pub(crate) trait Backend: Send + Sync + 'static {
    /// The sqlx database.
    type Db: Database;

    /// The backend's statements.
    const SQL: Dialect;

    /// How many rows a statement changed.
    fn rows_affected(result: &<Self::Db as Database>::QueryResult) -> u64;

    /// Tells other processes' caches of a change, best effort: a failure is
    /// logged, and those caches catch up within their TTL.
    fn announce(&self, pool: &Pool<Self::Db>, change: Change) -> impl Future<Output = ()> + Send;
}

/// A connection pool, the pending last-use times, and the backend.
#[derive(Debug)]
pub(crate) struct Engine<B: Backend> {
    pub(crate) pool: Pool<B::Db>,
    pub(crate) uses: UseTracker,
    pub(crate) backend: B,
    /// Scope sets and owners shared between the records read.
    shared: Shared,
}

impl<B: Backend> Engine<B> {
    pub(crate) fn new(pool: Pool<B::Db>, backend: B) -> Self {
        Self {
            pool,
            uses: UseTracker::default(),
            backend,
            shared: Shared::default(),
        }
    }

    /// Notes a successful use, written with the next flush.
    pub(crate) fn note_use(&self, id: TokenId, at: SystemTime, from: Option<IpAddr>) {
        self.uses.note(id, at, from);
    }
}

impl<B: Backend> Engine<B>
where
    for<'c> &'c Pool<B::Db>: Executor<'c, Database = B::Db>,
    for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
    <B::Db as Database>::Arguments: IntoArguments<B::Db>,
    for<'r> RawRecord: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> (i64,): FromRow<'r, <B::Db as Database>::Row>,
    for<'r> (Option<String>,): FromRow<'r, <B::Db as Database>::Row>,
    usize: ColumnIndex<<B::Db as Database>::Row>,
    for<'q> i64: Type<B::Db> + Encode<'q, B::Db> + Decode<'q, B::Db>,
    for<'q> Option<i64>: Type<B::Db> + Encode<'q, B::Db>,
    for<'q> Option<String>: Type<B::Db> + Encode<'q, B::Db>,
    for<'q> Vec<u8>: Type<B::Db> + Encode<'q, B::Db>,
    for<'q> String: Type<B::Db> + Encode<'q, B::Db>,
    for<'q> bool: Type<B::Db> + Encode<'q, B::Db>,
{
    /// The record of `id`, from one query (the owner's suspension and the
    /// revocation are joined in).
    pub(crate) fn find(self: &Arc<Self>, id: TokenId) -> Lookup {
        let this = self.clone();
        Lookup::pending(async move {
            let row: Option<RawRecord> = sqlx::query_as(B::SQL.find)
                .bind(id_to_db(id))
                .fetch_optional(&this.pool)
                .await
                .map_err(db_error)?;
            let record = row.map(|r| r.into_record(&this.shared)).transpose()?;
            Ok(record.map(Arc::new))
        })
    }

    pub(crate) async fn insert(&self, r: TokenRecord) -> Result<(), StoreError> {
        // The token row first: a revoked id cannot be inserted.
        let mut tx = if B::SQL.begin_insert.is_empty() {
            self.pool.begin().await
        } else {
            self.pool.begin_with(B::SQL.begin_insert).await
        }
        .map_err(db_error)?;
        if r.holds_name_at(r.created_at) {
            if !B::SQL.lock_name.is_empty() {
                sqlx::query(B::SQL.lock_name)
                    .bind(format!("{}\n{}", r.owner.as_str(), r.name))
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
            }
            let (holders,): (i64,) = sqlx::query_as(B::SQL.name_holders)
                .bind(r.owner.as_str().to_owned())
                .bind(r.name.to_string())
                .bind(to_micros(r.created_at))
                // No token has the id of the one inserted (it is new).
                .bind(id_to_db(r.rotated_from.unwrap_or(r.id)))
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
            if holders > 0 {
                return Err(StoreError::new(StoreErrorKind::NameInUse));
            }
        }
        sqlx::query(B::SQL.insert)
            .bind(id_to_db(r.id))
            .bind(r.digest.as_bytes().to_vec())
            .bind(r.owner.as_str().to_owned())
            .bind(r.name.to_string())
            .bind(scopes_to_db(&r.scopes))
            .bind(r.preview.to_string())
            .bind(to_micros(r.created_at))
            .bind(r.expires_at.map(to_micros))
            .bind(r.last_used_at.map(to_micros))
            .bind(r.rotated_from.map(id_to_db))
            .bind(r.rate_limit.map(|l| l.to_string()))
            .bind(r.allowed_ips.as_ref().map(|l| l.to_string()))
            .bind(r.last_used_from.map(|ip| ip.to_string()))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        if let Some(at) = r.revoked_at {
            let reason = r.revoked_reason.as_ref();
            sqlx::query(B::SQL.revoke)
                .bind(id_to_db(r.id))
                .bind(to_micros(at))
                .bind(reason.map(|r| r.as_str().to_owned()))
                .bind(reason.and_then(RevocationReason::url).map(str::to_owned))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        self.backend.announce(&self.pool, Change::Token(r.id)).await;
        Ok(())
    }

    pub(crate) async fn list(
        &self,
        owner: Option<&OwnerId>,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        let rows: Vec<RawRecord> = match owner {
            None => sqlx::query_as(B::SQL.list_all).fetch_all(&self.pool).await,
            Some(o) => {
                sqlx::query_as(B::SQL.list_owner)
                    .bind(o.as_str().to_owned())
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(db_error)?;
        rows.into_iter()
            .map(|r| r.into_record(&self.shared))
            .collect()
    }

    pub(crate) async fn revoke(
        &self,
        id: TokenId,
        at: SystemTime,
        reason: &RevocationReason,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(B::SQL.revoke)
            .bind(id_to_db(id))
            .bind(to_micros(at))
            .bind(Some(reason.as_str().to_owned()))
            .bind(reason.url().map(str::to_owned))
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        if B::rows_affected(&done) == 1 {
            self.backend.announce(&self.pool, Change::Token(id)).await;
            return Ok(true);
        }
        // Nothing changed: revoked already, or unknown.
        let (exists,): (i64,) = sqlx::query_as(B::SQL.exists)
            .bind(id_to_db(id))
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        if exists == 0 {
            Err(StoreError::new(StoreErrorKind::NotFound))
        } else {
            Ok(false)
        }
    }

    pub(crate) async fn cap_expiry(&self, id: TokenId, at: SystemTime) -> Result<(), StoreError> {
        let done = sqlx::query(B::SQL.cap_expiry)
            .bind(id_to_db(id))
            .bind(to_micros(at))
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        if B::rows_affected(&done) == 0 {
            return Err(StoreError::new(StoreErrorKind::NotFound));
        }
        self.backend.announce(&self.pool, Change::Token(id)).await;
        Ok(())
    }

    pub(crate) async fn set_owner_suspended(
        &self,
        owner: &OwnerId,
        suspended: bool,
    ) -> Result<(), StoreError> {
        sqlx::query(B::SQL.set_suspended)
            .bind(owner.as_str().to_owned())
            .bind(suspended)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        self.backend
            .announce(&self.pool, Change::Owner(owner.clone()))
            .await;
        Ok(())
    }

    pub(crate) async fn is_owner_suspended(&self, owner: &OwnerId) -> Result<bool, StoreError> {
        let (n,): (i64,) = sqlx::query_as(B::SQL.is_suspended)
            .bind(owner.as_str().to_owned())
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(n > 0)
    }

    /// Writes the pending last-use times, in one transaction.
    pub(crate) async fn flush_uses(&self) -> Result<(), StoreError> {
        let batch = self.uses.take();
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let mut newest = SystemTime::UNIX_EPOCH;
        for (id, (at, from)) in batch {
            newest = newest.max(at);
            sqlx::query(B::SQL.touch)
                .bind(id_to_db(id))
                .bind(to_micros(at))
                .bind(from.map(|ip| ip.to_string()))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        // Client addresses are kept for a bounded time.
        let cutoff = newest
            .checked_sub(ADDRESS_RETENTION)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        sqlx::query(B::SQL.forget_addresses)
            .bind(to_micros(cutoff))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    /// Sets a token's limits, and tells every cache.
    pub(crate) async fn set_limits(
        &self,
        id: TokenId,
        rate_limit: Option<RateLimit>,
        allowed_ips: Option<&IpAllowlist>,
    ) -> Result<(), StoreError> {
        // The check and the write are one step: of two concurrent
        // narrowings, the second is checked against the first.
        let mut tx = if B::SQL.begin_insert.is_empty() {
            self.pool.begin().await
        } else {
            self.pool.begin_with(B::SQL.begin_insert).await
        }
        .map_err(db_error)?;
        let current: Option<(Option<String>,)> = sqlx::query_as(B::SQL.current_ips)
            .bind(id_to_db(id))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
        let Some((current,)) = current else {
            return Err(StoreError::new(StoreErrorKind::NotFound));
        };
        if let Some(current) = current {
            let current: IpAllowlist = current
                .parse()
                .map_err(|e| StoreError::corrupt(format!("token {id}: allowlist: {e}")))?;
            if !current.may_become(allowed_ips) {
                return Err(StoreError::new(StoreErrorKind::Conflict));
            }
        }
        sqlx::query(B::SQL.set_limits)
            .bind(id_to_db(id))
            .bind(rate_limit.map(|l| l.to_string()))
            .bind(allowed_ips.map(|l| l.to_string()))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        self.backend.announce(&self.pool, Change::Token(id)).await;
        Ok(())
    }

    /// [`Engine::flush_uses`] for the background flusher: failures are
    /// logged, and the times are lost (last use is a hint).
    pub(crate) async fn flush_or_warn(&self) {
        if let Err(_e) = self.flush_uses().await {
            crate::log::store_warning("writing last-used times failed", &_e);
        }
    }
}
