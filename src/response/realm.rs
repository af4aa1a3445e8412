//! The realm of the challenges, and what goes with it: the prepared
//! `WWW-Authenticate` headers, the attach setting and the log budgets.

use http::header::{CACHE_CONTROL, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue};

/// The realm used unless `AuthLayerBuilder::realm` sets another.
pub(crate) const DEFAULT_REALM: &str = "api";

/// How one [`crate::auth::AuthLayer`] answers: the realm of its challenges, with
/// the two fixed `WWW-Authenticate` values built once. Shared (in an `Arc`)
/// by the layer, the scope checks built from it, and its rejections.
#[derive(Debug)]
pub(crate) struct Realm {
    name: Box<str>,
    /// Whether rejection responses carry the [`crate::response::Rejection`] in their
    /// extensions (`AuthLayerBuilder::attach_rejections`).
    pub(crate) attach: bool,
    /// `WWW-Authenticate` and `Cache-Control` of the two 401 answers,
    /// ready to copy: copying a map is cheaper than building one.
    pub(crate) missing: HeaderMap,
    pub(crate) invalid: HeaderMap,
    /// How many WARN/ERROR lines rejections may still write (see
    /// `crate::trace`).
    pub(crate) log: crate::trace::LogBudgets,
}

impl Realm {
    /// The realm named `name`, which must be validated already (visible
    /// ASCII, no quote or backslash), with rejections attached to
    /// responses or not.
    pub(crate) fn new(name: &str, attach: bool) -> Self {
        let headers = |challenge: String| {
            let mut h = HeaderMap::with_capacity(2);
            let value = HeaderValue::from_str(&challenge)
                .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
            h.insert(WWW_AUTHENTICATE, value);
            h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h
        };
        Self {
            name: name.into(),
            attach,
            missing: headers(format!("Bearer realm=\"{name}\"")),
            invalid: headers(format!("Bearer realm=\"{name}\", error=\"invalid_token\"")),
            log: crate::trace::LogBudgets::new(),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_name_the_realm() {
        let a = Realm::new("realm-a", false);
        assert_eq!(a.name(), "realm-a");
        assert_eq!(
            a.invalid[WWW_AUTHENTICATE],
            r#"Bearer realm="realm-a", error="invalid_token""#
        );
        assert_eq!(a.missing[WWW_AUTHENTICATE], r#"Bearer realm="realm-a""#);
        assert_eq!(a.missing[CACHE_CONTROL], "no-store");
        assert_eq!(a.invalid[CACHE_CONTROL], "no-store");
    }
}
