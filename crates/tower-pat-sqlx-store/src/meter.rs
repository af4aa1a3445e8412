//! The PostgreSQL filter's counters through the `metrics` facade (feature
//! `metrics`); no-ops without it. The names are tower-pat's (see its
//! "Metrics" documentation); no value carries an id.

#[cfg(all(feature = "metrics", feature = "postgres"))]
mod imp {
    /// A scan of the token ids for the filter of known ids finished
    /// (`ok`) or failed.
    pub(crate) fn filter_scan(ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        metrics::counter!("tower_pat_filter_scans_total", "outcome" => outcome).increment(1);
    }

    /// An id the filter did not hold: answered without the token table
    /// (`reached_store == false`), or asked after all because it may have
    /// been created since the last read.
    pub(crate) fn filter_refused(reached_store: bool) {
        let answer = if reached_store {
            "asked_store"
        } else {
            "refused"
        };
        metrics::counter!("tower_pat_filter_unknown_ids_total", "answer" => answer).increment(1);
    }

    /// An id the filter let through that the token table does not hold.
    pub(crate) fn filter_false_positive() {
        metrics::counter!("tower_pat_filter_false_positives_total").increment(1);
    }
}

#[cfg(not(all(feature = "metrics", feature = "postgres")))]
#[allow(dead_code)]
mod imp {
    #[inline(always)]
    pub(crate) fn filter_scan(_: bool) {}
    #[inline(always)]
    pub(crate) fn filter_refused(_: bool) {}
    #[inline(always)]
    pub(crate) fn filter_false_positive() {}
}

#[allow(unused_imports)]
pub(crate) use imp::*;

/// Whether values are recorded: work done only for the metrics is skipped
/// without the feature.
#[allow(dead_code)]
pub(crate) const ON: bool = cfg!(feature = "metrics");
