//! `tracing` events (feature `tracing`); no-ops without it. Events carry
//! the token id, never the token.

#[cfg(feature = "tracing")]
mod imp {
    use crate::response::{Rejection, RejectionKind};
    use crate::store::StoreError;
    use crate::TokenId;

    pub(crate) fn rejected(r: &Rejection) {
        let reason = r.kind().as_str();
        let token_id = r.token_id().map(tracing::field::display);
        match r.kind() {
            RejectionKind::StoreUnavailable(_) | RejectionKind::NotAuthenticated => {
                tracing::error!(target: "tower_pat", reason, token_id, status = r.status().as_u16(), "request rejected")
            }
            RejectionKind::InsecureTransport
            | RejectionKind::SecretMismatch
            | RejectionKind::Revoked
            | RejectionKind::OwnerSuspended
            | RejectionKind::Expired => {
                tracing::warn!(target: "tower_pat", reason, token_id, status = r.status().as_u16(), "request rejected")
            }
            _ => {
                tracing::debug!(target: "tower_pat", reason, token_id, status = r.status().as_u16(), "request rejected")
            }
        }
    }

    pub(crate) fn token_exposed(id: TokenId) {
        tracing::warn!(
            target: "tower_pat",
            token_id = %id,
            "well-formed token received over plain HTTP: consider it exposed and revoke it"
        );
    }

    pub(crate) fn store_error(id: TokenId, e: &StoreError) {
        tracing::error!(target: "tower_pat", token_id = %id, error = %e, source = ?std::error::Error::source(e).map(ToString::to_string), "token store failed");
    }

    pub(crate) fn authenticated(id: TokenId) {
        tracing::trace!(target: "tower_pat", token_id = %id, "request authenticated");
    }

    #[allow(dead_code)]
    pub(crate) fn store_warning(what: &str, e: &StoreError) {
        tracing::warn!(target: "tower_pat", error = %e, source = ?std::error::Error::source(e).map(ToString::to_string), "{what}");
    }
}

#[cfg(not(feature = "tracing"))]
mod imp {
    use crate::response::Rejection;
    use crate::store::StoreError;
    use crate::TokenId;

    #[inline(always)]
    pub(crate) fn rejected(_: &Rejection) {}
    #[inline(always)]
    pub(crate) fn token_exposed(_: TokenId) {}
    #[inline(always)]
    pub(crate) fn store_error(_: TokenId, _: &StoreError) {}
    #[inline(always)]
    pub(crate) fn authenticated(_: TokenId) {}
    #[allow(dead_code)]
    #[inline(always)]
    pub(crate) fn store_warning(_: &str, _: &StoreError) {}
}

pub(crate) use imp::*;
