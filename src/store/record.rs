//! [`TokenRecord`]: what a store keeps about one token, and who owns it.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use std::net::IpAddr;

use crate::limit::{IpAllowlist, RateLimit};
use crate::{scope::ScopeSet, token::TokenDigest, token::TokenId};

/// Who a token belongs to: the store (tenant) that created it. Suspending
/// an owner disables all its tokens.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnerId(Arc<str>);

/// Error for an owner id that is empty, longer than 128 bytes or holds
/// characters other than visible ASCII.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an owner id is 1 to 128 visible ASCII characters")]
pub struct InvalidOwnerId;

impl OwnerId {
    /// Validates and wraps an owner id.
    pub fn new(id: &str) -> Result<Self, InvalidOwnerId> {
        if (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(Self(Arc::from(id)))
        } else {
            Err(InvalidOwnerId)
        }
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for OwnerId {
    type Err = InvalidOwnerId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// What a store keeps about one token. Never the plaintext.
///
/// Build one with [`TokenRecord::new`] (a live, non-expiring record), then
/// set the other fields directly (`record.expires_at = Some(t)`): a store
/// reading records back sets them all.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TokenRecord {
    /// Non-secret id (the lookup key).
    pub id: TokenId,
    /// SHA-256 of the whole token.
    pub digest: TokenDigest,
    /// The owning store / tenant.
    pub owner: OwnerId,
    /// Human name given at creation.
    pub name: Arc<str>,
    /// Granted scopes.
    pub scopes: ScopeSet,
    /// Non-secret preview for listings (`nvl_live_a4f2…`).
    pub preview: Arc<str>,
    /// Creation time.
    pub created_at: SystemTime,
    /// When the token stops working, if ever.
    pub expires_at: Option<SystemTime>,
    /// When the token was revoked; revocation is permanent.
    pub revoked_at: Option<SystemTime>,
    /// Why it was revoked, when the store kept the reason (a token revoked
    /// before reasons were kept has `None` here and a `revoked_at`).
    pub revoked_reason: Option<RevocationReason>,
    /// Last successful use, as far as the store has recorded it.
    pub last_used_at: Option<SystemTime>,
    /// Whether the owner was suspended when this record was read.
    pub owner_suspended: bool,
    /// The token this one replaced by rotation, if it was made by one: the
    /// link the stores keep, so listings can tell a rotation's grace from
    /// two tokens that merely share a name.
    pub rotated_from: Option<TokenId>,
    /// The token's request budget, if it has one of its own (see
    /// [`crate::limit`]). A rotation keeps it.
    pub rate_limit: Option<RateLimit>,
    /// The networks the token may be used from, if it is restricted. A
    /// rotation keeps it; it may be narrowed, never widened.
    pub allowed_ips: Option<IpAllowlist>,
    /// The client address of the last recorded use, when the layer was
    /// told to record addresses
    /// ([`AuthLayerBuilder::record_client_addresses`](crate::auth::AuthLayerBuilder::record_client_addresses)).
    /// Personal data: stores forget it after a bounded time.
    pub last_used_from: Option<IpAddr>,
}

impl TokenRecord {
    /// A live, non-expiring, non-revoked record.
    pub fn new(
        id: TokenId,
        digest: TokenDigest,
        owner: OwnerId,
        name: &str,
        scopes: ScopeSet,
        created_at: SystemTime,
    ) -> Self {
        Self {
            id,
            digest,
            owner,
            name: Arc::from(name),
            scopes,
            preview: Arc::from(""),
            created_at,
            expires_at: None,
            revoked_at: None,
            revoked_reason: None,
            last_used_at: None,
            owner_suspended: false,
            rotated_from: None,
            rate_limit: None,
            allowed_ips: None,
            last_used_from: None,
        }
    }

    /// Whether the token has expired at `now` (expiry is exclusive: a token
    /// expiring at `t` is refused at `t`).
    #[inline]
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|e| now >= e)
    }

    /// Whether this record holds its name at `at`: not revoked and not
    /// expired (a suspended owner's tokens still hold theirs). An owner has
    /// at most one such token per name, except a rotation's successor
    /// while the token it replaced is in its grace (see
    /// [`TokenAdmin::insert`](super::TokenAdmin::insert)).
    pub fn holds_name_at(&self, at: SystemTime) -> bool {
        self.revoked_at.is_none() && !self.is_expired_at(at)
    }

    /// Whether the token works at `now`, and if not, why: revoked first,
    /// then expired, then a suspended owner. The verification layer and
    /// admin listings use this one order.
    pub fn status(&self, now: SystemTime) -> TokenStatus {
        if self.revoked_at.is_some() {
            TokenStatus::Revoked
        } else if self.is_expired_at(now) {
            TokenStatus::Expired
        } else if self.owner_suspended {
            TokenStatus::OwnerSuspended
        } else {
            TokenStatus::Active
        }
    }
}

/// Why a token was revoked: kept on its record
/// ([`TokenRecord::revoked_reason`]) and reported in
/// [`Event::TokenRevoked`](crate::events::Event::TokenRevoked).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevocationReason {
    /// By an administrator (`TokenManager::revoke`, `revoke_token`).
    Manual,
    /// Reported leaked by a secret scanner (see `leak_reports`), with
    /// where it was found when the report said.
    Leaked {
        /// The public address where the token was found.
        url: Option<String>,
    },
    /// Rotated with no grace period: its replacement took over at once.
    RotationGraceEnded,
}

impl RevocationReason {
    /// A short stable name: `manual`, `leaked`, `rotation_grace_ended`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RevocationReason::Manual => "manual",
            RevocationReason::Leaked { .. } => "leaked",
            RevocationReason::RotationGraceEnded => "rotation_grace_ended",
        }
    }

    /// Where a leaked token was found, if known.
    pub fn url(&self) -> Option<&str> {
        match self {
            RevocationReason::Leaked { url } => url.as_deref(),
            _ => None,
        }
    }

    /// Reads back what [`as_str`](Self::as_str) and [`url`](Self::url)
    /// wrote (stores keep the two as text); `None` for an unknown name.
    pub fn from_parts(name: &str, url: Option<&str>) -> Option<Self> {
        Some(match name {
            "manual" => RevocationReason::Manual,
            "leaked" => RevocationReason::Leaked {
                url: url.map(str::to_owned),
            },
            "rotation_grace_ended" => RevocationReason::RotationGraceEnded,
            _ => return None,
        })
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`TokenRecord::status`] says of a token at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenStatus {
    /// The token works.
    Active,
    /// Revoked, for good.
    Revoked,
    /// Past its expiry.
    Expired,
    /// Its owner is suspended (until reinstated).
    OwnerSuspended,
}

impl TokenStatus {
    /// Short name for listings: `active`, `revoked`, `expired`, `suspended`.
    pub fn as_str(&self) -> &'static str {
        match self {
            TokenStatus::Active => "active",
            TokenStatus::Revoked => "revoked",
            TokenStatus::Expired => "expired",
            TokenStatus::OwnerSuspended => "suspended",
        }
    }
}

impl fmt::Display for TokenStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Last-use times are kept to this resolution: a token's last use is
/// written at most once per period.
pub(crate) const LAST_USE_RESOLUTION: Duration = Duration::from_secs(60);

/// Whether a use at `at` falls within the resolution of one recorded at
/// `last` (a `last` later than `at`, after a clock step back, counts too).
#[inline]
pub(crate) fn used_recently(last: SystemTime, at: SystemTime) -> bool {
    at.duration_since(last)
        .map_or(true, |d| d < LAST_USE_RESOLUTION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_says_revoked_then_expired_then_suspended() {
        let now = SystemTime::now();
        let base = TokenRecord::new(
            TokenId::from_u64(1),
            TokenDigest::of("t"),
            OwnerId::new("o").unwrap(),
            "n",
            ScopeSet::parse(["orders:read"]).unwrap(),
            now,
        );
        assert_eq!(base.status(now), TokenStatus::Active);
        let mut suspended = base.clone();
        suspended.owner_suspended = true;
        assert_eq!(suspended.status(now), TokenStatus::OwnerSuspended);
        let mut expired = suspended;
        expired.expires_at = Some(now);
        assert_eq!(expired.status(now), TokenStatus::Expired);
        assert_eq!(
            expired.status(now - Duration::from_secs(1)),
            TokenStatus::OwnerSuspended
        );
        let mut revoked = expired;
        revoked.revoked_at = Some(now);
        assert_eq!(revoked.status(now), TokenStatus::Revoked);
        assert_eq!(TokenStatus::OwnerSuspended.to_string(), "suspended");
    }
}
