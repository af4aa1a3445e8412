//! [`Background`]: the handle of work a store runs for you (listeners,
//! scans, the last-use writer). The host owns it: the work stops when the
//! handle is dropped, and [`Background::shutdown`] also finishes what is
//! pending.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use tokio::task::AbortHandle;

use super::StoreError;

type Finish = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

/// Background work a store started: its tasks run until this handle is
/// dropped or shut down, never longer.
///
/// Keep it for as long as the work should go on (typically in `main`, until
/// the server stops), then await [`Background::shutdown`]: for the
/// last-use writer that writes the pending last-use times.
///
/// ```no_run
/// # #[cfg(feature = "sqlite")]
/// # async fn run() -> Result<(), tower_pat::store::StoreError> {
/// use std::time::Duration;
/// use tower_pat::store::SqliteStore;
///
/// let store = SqliteStore::open("tokens.db").await?;
/// let last_use = store.write_last_used_every(Duration::from_secs(10));
/// // … serve until a shutdown signal …
/// last_use.shutdown().await?; // the times noted since the last write, written
/// # Ok(()) }
/// ```
#[must_use = "the work stops when this handle is dropped: keep it while serving"]
pub struct Background {
    tasks: Vec<AbortHandle>,
    /// Run when the tasks are stopped, however (drop or shutdown).
    on_stop: Option<Box<dyn FnOnce() + Send + Sync>>,
    /// Awaited by `shutdown`, after the tasks are stopped.
    finish: Option<Box<dyn FnOnce() -> Finish + Send + Sync>>,
}

impl Background {
    pub(crate) fn new(tasks: Vec<AbortHandle>) -> Self {
        Self {
            tasks,
            on_stop: None,
            finish: None,
        }
    }

    /// Runs `f` when the tasks stop.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn on_stop(mut self, f: impl FnOnce() + Send + Sync + 'static) -> Self {
        self.on_stop = Some(Box::new(f));
        self
    }

    /// Awaits `f` at shutdown, after the tasks stopped.
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    pub(crate) fn finish_with<F>(mut self, f: impl FnOnce() -> F + Send + Sync + 'static) -> Self
    where
        F: Future<Output = Result<(), StoreError>> + Send + 'static,
    {
        self.finish = Some(Box::new(move || Box::pin(f())));
        self
    }

    /// Stops the tasks, then finishes what is pending (the last-use writer
    /// writes the times noted since its last write). An error says that
    /// pending work could not be finished.
    pub async fn shutdown(mut self) -> Result<(), StoreError> {
        self.stop();
        match self.finish.take() {
            Some(finish) => finish().await,
            None => Ok(()),
        }
    }

    fn stop(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        if let Some(f) = self.on_stop.take() {
            f();
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop();
    }
}

impl fmt::Debug for Background {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Background")
            .field("tasks", &self.tasks.len())
            .field("finishes", &self.finish.is_some())
            .finish()
    }
}
