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
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_pat::store::StoreError> {
/// use std::sync::{Arc, Mutex};
/// use tower_pat::store::Background;
///
/// // A store's writer of pending work, say.
/// let pending = Arc::new(Mutex::new(vec!["a last-use time"]));
/// let written = pending.clone();
/// let work = Background::spawn(async { /* write every 10 s */ })
///     .finish_with(move || async move {
///         written.lock().unwrap().clear(); // write what is still pending
///         Ok(())
///     });
/// // … serve until a shutdown signal …
/// work.shutdown().await?;
/// assert!(pending.lock().unwrap().is_empty());
/// # Ok(()) }
/// ```
///
/// Stores return one from the calls that start work, such as
/// `tower-pat-sqlx-store`'s `write_last_used_every` and `listen`;
/// [`ChangeFeed::listen`](super::feed::ChangeFeed::listen) returns one, and
/// a store of your own can too.
#[must_use = "the work stops when this handle is dropped: keep it while serving"]
pub struct Background {
    tasks: Vec<AbortHandle>,
    /// Run when the tasks are stopped, however (drop or shutdown).
    on_stop: Option<Box<dyn FnOnce() + Send + Sync>>,
    /// Awaited by `shutdown`, after the tasks are stopped.
    finish: Option<Box<dyn FnOnce() -> Finish + Send + Sync>>,
}

impl Background {
    /// Spawns `task` on the Tokio runtime, to run until the handle is
    /// dropped or shut down (or until it ends by itself). Must be called
    /// within a Tokio runtime.
    pub fn spawn(task: impl Future<Output = ()> + Send + 'static) -> Self {
        Self {
            tasks: vec![tokio::spawn(task).abort_handle()],
            on_stop: None,
            finish: None,
        }
    }

    /// One handle for the work of both: stopping it stops both, and
    /// [`Background::shutdown`] finishes both (this one's first).
    pub fn join(mut self, mut other: Background) -> Self {
        self.tasks.append(&mut other.tasks);
        if let Some(stop) = other.on_stop.take() {
            self = self.on_stop(stop);
        }
        if let Some(finish) = other.finish.take() {
            self = self.finish_with(finish);
        }
        self
    }

    /// Runs `f` when the tasks are stopped, whether by a drop or by
    /// [`Background::shutdown`] (for example, to mark state the tasks kept
    /// current as no longer kept).
    pub fn on_stop(mut self, f: impl FnOnce() + Send + Sync + 'static) -> Self {
        let earlier = self.on_stop.take();
        self.on_stop = Some(Box::new(move || {
            if let Some(earlier) = earlier {
                earlier();
            }
            f();
        }));
        self
    }

    /// Awaits `f` in [`Background::shutdown`], after the tasks were
    /// stopped (for example, to write what they had pending).
    pub fn finish_with<F>(mut self, f: impl FnOnce() -> F + Send + Sync + 'static) -> Self
    where
        F: Future<Output = Result<(), StoreError>> + Send + 'static,
    {
        let earlier = self.finish.take();
        self.finish = Some(Box::new(move || {
            Box::pin(async move {
                let first = match earlier {
                    Some(earlier) => earlier().await,
                    None => Ok(()),
                };
                first.and(f().await)
            })
        }));
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A handle whose stop and finish append `name` to `log`.
    fn noted(name: &'static str, log: &Arc<Mutex<Vec<String>>>, fails: bool) -> Background {
        let (stop, finish) = (log.clone(), log.clone());
        Background::spawn(std::future::pending())
            .on_stop(move || stop.lock().unwrap().push(format!("stop {name}")))
            .finish_with(move || async move {
                finish.lock().unwrap().push(format!("finish {name}"));
                if fails {
                    Err(StoreError::unavailable(name))
                } else {
                    Ok(())
                }
            })
    }

    #[tokio::test]
    async fn a_joined_handle_stops_and_finishes_both_in_order() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let joined = noted("a", &log, false).join(noted("b", &log, true));
        // Both finishes run even though the second fails; the error is kept.
        assert!(joined.shutdown().await.is_err());
        assert_eq!(
            *log.lock().unwrap(),
            ["stop a", "stop b", "finish a", "finish b"]
        );
    }

    #[tokio::test]
    async fn dropping_a_joined_handle_stops_both_tasks_and_finishes_nothing() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let polled = Arc::new(AtomicUsize::new(0));
        let counter = polled.clone();
        let ticking = Background::spawn(async move {
            loop {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        });
        drop(ticking.join(noted("a", &log, false)));
        tokio::task::yield_now().await;
        let after_drop = polled.load(Ordering::SeqCst);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(polled.load(Ordering::SeqCst), after_drop, "still running");
        assert_eq!(*log.lock().unwrap(), ["stop a"]);
    }
}
