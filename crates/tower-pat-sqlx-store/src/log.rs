//! Warnings through `tracing` (feature `tracing`); no-ops without it. No
//! line carries a token, a digest or a message's content.
// The throttle serves the PostgreSQL follower only.
#![cfg_attr(not(feature = "postgres"), allow(dead_code))]

#[cfg(feature = "tracing")]
mod imp {
    use std::error::Error;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    /// One warning per minute; the rest at DEBUG, counted.
    #[derive(Debug, Default)]
    pub(crate) struct WarnThrottle {
        window: AtomicU64,
        held_back: AtomicU64,
    }

    impl WarnThrottle {
        pub(crate) fn new() -> Self {
            Self::default()
        }

        /// `Some(held back since the last warning)` when a warning may go
        /// out now.
        fn take(&self) -> Option<u64> {
            let minute = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() / 60 + 1);
            let last = self.window.load(Ordering::Relaxed);
            if last != minute
                && self
                    .window
                    .compare_exchange(last, minute, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                return Some(self.held_back.swap(0, Ordering::Relaxed));
            }
            self.held_back.fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    /// [`store_warning`] at most once a minute; the rest at DEBUG.
    pub(crate) fn store_warning_throttled(throttle: &WarnThrottle, what: &str, e: &dyn Error) {
        match throttle.take() {
            Some(held_back) => tracing::warn!(target: "tower_pat", error = %e, held_back, "{what}"),
            None => tracing::debug!(target: "tower_pat", error = %e, "{what}"),
        }
    }

    pub(crate) fn store_warning(what: &str, e: &dyn Error) {
        tracing::warn!(target: "tower_pat", error = %e, source = ?e.source().map(ToString::to_string), "{what}");
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn one_warning_per_window_and_the_rest_are_counted() {
            let t = WarnThrottle::new();
            assert_eq!(t.take(), Some(0));
            for _ in 0..1000 {
                assert_eq!(t.take(), None);
            }
            t.window.store(0, Ordering::Relaxed);
            assert_eq!(t.take(), Some(1000));
        }
    }
}

#[cfg(not(feature = "tracing"))]
mod imp {
    use std::error::Error;

    #[derive(Debug)]
    pub(crate) struct WarnThrottle;

    impl WarnThrottle {
        pub(crate) fn new() -> Self {
            Self
        }
    }

    #[inline(always)]
    pub(crate) fn store_warning_throttled(_: &WarnThrottle, _: &str, _: &dyn Error) {}
    #[inline(always)]
    pub(crate) fn store_warning(_: &str, _: &dyn Error) {}
}

#[allow(unused_imports)]
pub(crate) use imp::*;
