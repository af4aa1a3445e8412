//! The listening side of a change feed, shared by PostgreSQL
//! `LISTEN/NOTIFY` and Redis pub/sub: hand each message to a [`Receiver`]
//! (which decides what, if anything, it may believe), send this listener a
//! heartbeat on a private channel and expect it back, declare the
//! subscription dead when it closes or stays silent, subscribe again with
//! backoff, and then tell the receiver (what was sent meanwhile is lost).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::StoreError;

/// The longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A live subscription to the changes channel and to the listener's own
/// heartbeat channel.
pub(crate) trait Subscription: Send + 'static {
    /// The next message, as (channel, payload); `Err(why)` once the
    /// connection failed or closed. Must be cancel-safe: a timeout loses
    /// no message.
    fn next(&mut self) -> impl Future<Output = Result<(String, String), String>> + Send;
}

/// Where subscriptions and heartbeats come from.
pub(crate) trait Source: Send + Sync + 'static {
    /// A subscription.
    type Sub: Subscription;

    /// What carries the feed (`"postgres"`, `"redis"`), for the metrics.
    const KIND: &'static str;

    /// A new connection subscribed to the changes and to [`Source::own`].
    fn subscribe(&self) -> impl Future<Output = Result<Self::Sub, StoreError>> + Send;

    /// Sends `payload` on [`Source::own`], by another connection.
    fn beat(&self, payload: &str) -> impl Future<Output = Result<(), String>> + Send;

    /// This listener's private heartbeat channel.
    fn own(&self) -> &str;
}

/// What a listener does with what it hears. Messages come from whoever can
/// send on the channel: a receiver must not believe them blindly.
pub(crate) trait Receiver: Send + Sync + 'static {
    /// A message on the changes channel.
    fn message(&self, payload: &str);
    /// Subscribed again after a loss: what was sent meanwhile is lost.
    fn back(&self);
}

/// Subscribes (failing if that fails), then spawns the task that hands
/// messages to `receiver` and keeps the subscription alive.
pub(crate) async fn spawn_listener<S: Source>(
    source: S,
    receiver: impl Receiver,
    heartbeat: Duration,
) -> Result<tokio::task::AbortHandle, StoreError> {
    let heartbeat = heartbeat.max(Duration::from_millis(10));
    let mut subscription = source.subscribe().await?;
    crate::meter::feed(S::KIND, true);
    let task = tokio::spawn(async move {
        loop {
            let why = watch(&source, &mut subscription, heartbeat, &receiver).await;
            crate::meter::feed(S::KIND, false);
            crate::trace::store_warning(
                "change notifications lost; reconnecting (caches catch up when it is back)",
                &StoreError::unavailable(why),
            );
            let mut backoff = Duration::from_millis(100);
            subscription = loop {
                match source.subscribe().await {
                    Ok(s) => break s,
                    Err(_) => {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            };
            receiver.back();
            crate::meter::feed(S::KIND, true);
            crate::trace::store_warning(
                "change notifications back; caught up",
                &StoreError::unavailable("reconnected"),
            );
        }
    });
    Ok(task.abort_handle())
}

/// Hands messages to `receiver` until the subscription fails or a
/// heartbeat does not come back in time; returns why.
async fn watch<S: Source>(
    source: &S,
    subscription: &mut S::Sub,
    heartbeat: Duration,
    receiver: &impl Receiver,
) -> String {
    let mut sent = 0u64;
    // The heartbeat awaited, and when it is due back.
    let mut awaited: Option<(String, Instant)> = None;
    let mut next_beat = Instant::now() + heartbeat;
    loop {
        let wake = awaited
            .as_ref()
            .map_or(next_beat, |(_, due)| (*due).min(next_beat));
        match tokio::time::timeout_at(wake, subscription.next()).await {
            Ok(Ok((channel, payload))) if channel == source.own() => {
                if awaited.as_ref().is_some_and(|(p, _)| *p == payload) {
                    awaited = None;
                }
            }
            Ok(Ok((_, payload))) => receiver.message(&payload),
            Ok(Err(why)) => return why,
            Err(_) => {
                let now = Instant::now();
                if awaited.as_ref().is_some_and(|(_, due)| now >= *due) {
                    return format!("a heartbeat did not come back within {heartbeat:?}");
                }
                if now >= next_beat {
                    next_beat = now + heartbeat;
                    if awaited.is_none() {
                        sent += 1;
                        let payload = sent.to_string();
                        match tokio::time::timeout(heartbeat, source.beat(&payload)).await {
                            Ok(Ok(())) => awaited = Some((payload, Instant::now() + heartbeat)),
                            Ok(Err(e)) => return format!("sending a heartbeat failed: {e}"),
                            Err(_) => return "sending a heartbeat timed out".into(),
                        }
                    }
                }
            }
        }
    }
}
