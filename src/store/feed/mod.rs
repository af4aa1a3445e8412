//! Change feeds: how instances tell each other's caches of a change, over
//! PostgreSQL `LISTEN/NOTIFY`, Redis pub/sub or a channel of your own.
//!
//! A [`ChangeFeed`] is the transport: it subscribes, and sends a listener's
//! heartbeats. [`ChangeFeed::listen`] does the rest, the same for every
//! transport: it hands each readable message to a [`Receiver`] (which
//! decides what, if anything, it may believe), sends itself a heartbeat on
//! a private channel every `heartbeat` and expects it back within another
//! `heartbeat`, declares the subscription dead when it closes or stays
//! silent, subscribes again with backoff (up to 5 s), and then tells the
//! receiver that what was sent meanwhile is lost.
//!
//! The companion crates meet here: `tower-pat-redis`'s `RedisChannel::feed()`
//! is a feed, and `tower-pat-sqlx-store`'s `PostgresStore::listen_on` follows
//! any feed.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::{Background, StoreError};

mod message;

pub use self::message::Message;

/// The longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A transport for change messages between instances: a channel anyone
/// listening hears, plus private channels for heartbeats.
pub trait ChangeFeed: Send + Sync + 'static {
    /// A live subscription.
    type Subscription: Subscription;

    /// What carries the feed (`"postgres"`, `"redis"`), for the logs and
    /// the `tower_pat_feed_up{channel}` metric.
    const KIND: &'static str;

    /// A new connection, subscribed to the changes channel and to
    /// `heartbeats` (a private channel of this listener's).
    fn subscribe(
        &self,
        heartbeats: &str,
    ) -> impl Future<Output = Result<Self::Subscription, StoreError>> + Send;

    /// Sends `payload` on the channel `heartbeats`, by another connection
    /// than the subscription's.
    fn beat(
        &self,
        heartbeats: &str,
        payload: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Subscribes (failing if that fails), then hands every readable
    /// message on the changes channel to `receiver`, in a task that keeps
    /// the subscription alive (see the [module](self) documentation) until
    /// the returned handle is dropped or shut down. Garbled messages are
    /// ignored, with a rate-limited warning that never shows their content.
    fn listen(
        self,
        receiver: impl Receiver,
        heartbeat: Duration,
    ) -> impl Future<Output = Result<Background, StoreError>> + Send
    where
        Self: Sized,
    {
        async move {
            let heartbeat = heartbeat.max(Duration::from_millis(10));
            let mut nonce = [0u8; 8];
            getrandom::fill(&mut nonce).map_err(StoreError::unavailable)?;
            let own = format!("tower_pat_hb:{:016x}", u64::from_be_bytes(nonce));
            let mut subscription = self.subscribe(&own).await?;
            crate::meter::feed(Self::KIND, true);
            Ok(Background::spawn(async move {
                let listener = Listener {
                    feed: self,
                    own,
                    heartbeat,
                    receiver,
                    garbled: crate::trace::WarnThrottle::new(),
                };
                listener.run(&mut subscription).await;
            }))
        }
    }
}

/// A live subscription of a [`ChangeFeed`].
pub trait Subscription: Send + 'static {
    /// The next message, as (channel, payload); `Err` once the connection
    /// failed or closed. Must be cancel-safe: a timeout loses no message.
    fn next(&mut self) -> impl Future<Output = Result<(String, String), StoreError>> + Send;
}

/// What a listener does with what it hears. Messages come from whoever can
/// send on the channel: a receiver must not believe them blindly.
pub trait Receiver: Send + Sync + 'static {
    /// A readable message on the changes channel.
    fn message(&self, message: Message);
    /// Subscribed again after a loss: what was sent meanwhile is lost.
    fn reconnected(&self);
}

struct Listener<F, R> {
    feed: F,
    own: String,
    heartbeat: Duration,
    receiver: R,
    garbled: crate::trace::WarnThrottle,
}

impl<F: ChangeFeed, R: Receiver> Listener<F, R> {
    async fn run(self, subscription: &mut F::Subscription) {
        loop {
            let why = self.watch(subscription).await;
            crate::meter::feed(F::KIND, false);
            crate::trace::store_warning(
                "change notifications lost; reconnecting (caches catch up when it is back)",
                &StoreError::unavailable(why),
            );
            let mut backoff = Duration::from_millis(100);
            *subscription = loop {
                match self.feed.subscribe(&self.own).await {
                    Ok(s) => break s,
                    Err(_) => {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            };
            self.receiver.reconnected();
            crate::meter::feed(F::KIND, true);
            crate::trace::store_warning(
                "change notifications back; caught up",
                &StoreError::unavailable("reconnected"),
            );
        }
    }

    /// Hands messages to the receiver until the subscription fails or a
    /// heartbeat does not come back in time; returns why.
    async fn watch(&self, subscription: &mut F::Subscription) -> String {
        let heartbeat = self.heartbeat;
        let mut sent = 0u64;
        // The heartbeat awaited, and when it is due back.
        let mut awaited: Option<(String, Instant)> = None;
        let mut next_beat = Instant::now() + heartbeat;
        loop {
            let wake = awaited
                .as_ref()
                .map_or(next_beat, |(_, due)| (*due).min(next_beat));
            match tokio::time::timeout_at(wake, subscription.next()).await {
                Ok(Ok((channel, payload))) if channel == self.own => {
                    if awaited.as_ref().is_some_and(|(p, _)| *p == payload) {
                        awaited = None;
                    }
                }
                Ok(Ok((channel, payload))) => match Message::parse(&payload) {
                    Some(message) => self.receiver.message(message),
                    None => crate::trace::feed_garbled(&self.garbled, &channel, payload.len()),
                },
                Ok(Err(why)) => return describe(&why),
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
                            match tokio::time::timeout(
                                heartbeat,
                                self.feed.beat(&self.own, &payload),
                            )
                            .await
                            {
                                Ok(Ok(())) => {
                                    awaited = Some((payload, Instant::now() + heartbeat));
                                }
                                Ok(Err(e)) => {
                                    return format!("sending a heartbeat failed: {}", describe(&e));
                                }
                                Err(_) => return "sending a heartbeat timed out".into(),
                            }
                        }
                    }
                }
            }
        }
    }
}

/// An error with its cause, for the log line of a lost subscription.
fn describe(e: &StoreError) -> String {
    match std::error::Error::source(e) {
        Some(source) => format!("{e}: {source}"),
        None => e.to_string(),
    }
}
