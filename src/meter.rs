//! Counters through the `metrics` facade (feature `metrics`); no-ops
//! without it. The host installs a recorder (a Prometheus exporter, say);
//! without one, `metrics` drops every value. Names and labels are listed
//! in the crate documentation ("Metrics"). No value carries a token, an
//! id or an owner: labels take a handful of fixed values only.

#[cfg(feature = "metrics")]
mod imp {
    use std::time::Duration;

    /// A request refused, by reason (`RejectionKind::as_str`).
    pub(crate) fn rejected(reason: &'static str) {
        metrics::counter!("tower_pat_rejections_total", "reason" => reason).increment(1);
    }

    /// A lookup that took I/O, from the call to the answer (or the timeout).
    pub(crate) fn store_lookup(took: Duration) {
        metrics::histogram!("tower_pat_store_lookup_seconds").record(took.as_secs_f64());
    }

    /// A change feed (`channel`: `"postgres"` or `"redis"`) was declared
    /// lost (`up == false`) or is subscribed again.
    pub(crate) fn feed(channel: &'static str, up: bool) {
        metrics::gauge!("tower_pat_feed_up", "channel" => channel).set(if up { 1.0 } else { 0.0 });
        if !up {
            metrics::counter!("tower_pat_feed_losses_total", "channel" => channel).increment(1);
        }
    }
}

#[cfg(not(feature = "metrics"))]
#[allow(dead_code)]
mod imp {
    use std::time::Duration;

    #[inline(always)]
    pub(crate) fn rejected(_: &'static str) {}
    #[inline(always)]
    pub(crate) fn store_lookup(_: Duration) {}
    #[inline(always)]
    pub(crate) fn feed(_: &'static str, _: bool) {}
}

pub(crate) use imp::*;

/// Whether values are recorded: work done only for the metrics (reading
/// the time, wrapping a lookup) is skipped without the feature.
pub(crate) const ON: bool = cfg!(feature = "metrics");
