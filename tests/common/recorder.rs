//! Runs a test with a `metrics` recorder of its own (`metrics-util`'s
//! debugging recorder) and reads back what it recorded.
#![allow(dead_code)]

use std::collections::HashMap;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::{CompositeKey, MetricKind};

/// Runs `test` on a current-thread runtime with a recorder of its own,
/// and returns what was recorded.
pub fn recorded<F: std::future::Future<Output = ()>>(test: impl FnOnce() -> F) -> Snapshot {
    let recorder = DebuggingRecorder::new();
    let snapshotter: Snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(test())
    });
    Snapshot(
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| (key, value))
            .collect(),
    )
}

pub struct Snapshot(pub HashMap<CompositeKey, DebugValue>);

impl Snapshot {
    /// The value of counter `name` whose labels are exactly `labels`.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.find(MetricKind::Counter, name, labels)
            .map(|v| match v {
                DebugValue::Counter(n) => *n,
                other => panic!("{name} is not a counter: {other:?}"),
            })
            .unwrap_or(0)
    }

    pub fn histogram_len(&self, name: &str) -> usize {
        match self.find(MetricKind::Histogram, name, &[]) {
            Some(DebugValue::Histogram(values)) => values.len(),
            Some(other) => panic!("{name} is not a histogram: {other:?}"),
            None => 0,
        }
    }

    pub fn find(
        &self,
        kind: MetricKind,
        name: &str,
        labels: &[(&str, &str)],
    ) -> Option<&DebugValue> {
        self.0
            .iter()
            .find(|(key, _)| {
                let k = key.key();
                key.kind() == kind
                    && k.name() == name
                    && k.labels().count() == labels.len()
                    && labels
                        .iter()
                        .all(|(n, v)| k.labels().any(|l| l.key() == *n && l.value() == *v))
            })
            .map(|(_, v)| v)
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.0.keys().map(|k| k.key().name().to_owned()).collect();
        names.sort();
        names.dedup();
        names
    }
}
