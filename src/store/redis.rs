//! [`RedisChannel`]: cache invalidations over Redis pub/sub (feature
//! `redis`), for deployments that cannot hold a PostgreSQL `LISTEN`
//! connection (PgBouncer in transaction mode) or already run Redis.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use tokio::time::Instant;

use super::invalidation::parse_change;
use super::{Change, Invalidate, Lookup, OwnerId, StoreError, TokenAdmin, TokenRecord, TokenStore};
use crate::{RevocationReason, TokenId};

/// The longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A Redis pub/sub channel carrying token changes between instances, with
/// the guarantees of `PostgresStore::listen`:
///
/// - **announce on change:** [`RedisChannel::announcing`] wraps the store
///   the writers use (the `TokenManager`'s, the admin CLI's), and publishes
///   each change after it is written;
/// - **heartbeat:** [`RedisChannel::listen`] sends itself a message on a
///   private channel every `heartbeat` and expects it back on the
///   subscription within another `heartbeat`; when it does not come back,
///   or the connection closes, the subscription is declared dead;
/// - **flush after reconnect:** it then subscribes again on a new
///   connection (retrying with backoff up to 5 s) and only then tells the
///   cache that everything may have changed ([`Change::All`]), since
///   messages published meanwhile are lost.
///
/// Staleness bound: a change reaches every listening cache within about
/// `2 × heartbeat` plus the time to reconnect, or the cache TTL, whichever
/// is first. Redis pub/sub keeps nothing: a message is delivered to the
/// subscribers connected when it is published, which is why the flush
/// after a reconnect is needed.
///
/// ```no_run
/// # async fn run() -> Result<(), tower_pat::StoreError> {
/// use std::time::Duration;
/// use tower_pat::{CachedStore, PostgresStore, RedisChannel};
///
/// let channel = RedisChannel::open("redis://127.0.0.1:6379", "tower_pat")?;
/// // Behind PgBouncer (transaction mode): no LISTEN, Redis instead.
/// let store = PostgresStore::connect("postgres://app@pgbouncer/tokens").await?;
/// let cached = CachedStore::new(store.clone());
/// channel.listen(cached.invalidator(), Duration::from_secs(5)).await?;
/// // Writers (TokenManager, admin tools) use the announcing store.
/// let for_writers = channel.announcing(store);
/// # let _ = for_writers; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisChannel {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    channel: String,
    /// The connection announcements go out on, opened on first use and
    /// again after a failure.
    publisher: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    /// Listener tasks, stopped when the last handle is dropped.
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            t.abort();
        }
    }
}

impl std::fmt::Debug for RedisChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisChannel")
            .field("channel", &self.inner.channel)
            .finish_non_exhaustive()
    }
}

fn redis_error(e: redis::RedisError) -> StoreError {
    StoreError::unavailable(e)
}

impl RedisChannel {
    /// A channel named `channel` on the Redis server at `url`
    /// (`redis://host:port/db`, `rediss://` for TLS is not enabled). No
    /// connection is made until it is used.
    pub fn open(url: &str, channel: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(redis_error)?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                channel: channel.to_owned(),
                publisher: tokio::sync::Mutex::new(None),
                tasks: Mutex::default(),
            }),
        })
    }

    /// Publishes `change` to every listening instance. A failure is
    /// returned (and the connection opened again on the next call); the
    /// caches catch up by their TTL or at their next reconnect.
    pub async fn announce(&self, change: &Change) -> Result<(), StoreError> {
        let payload = match change {
            Change::Token(id) => format!("token:{id}"),
            Change::Owner(o) => format!("owner:{o}"),
            _ => "all:".to_owned(),
        };
        self.publish(&self.inner.channel, &payload).await
    }

    async fn publish(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        let mut slot = self.inner.publisher.lock().await;
        publish_on(&self.inner.client, &mut slot, channel, payload).await
    }

    /// `store`, announcing on this channel each change written through
    /// it (after the write succeeded).
    pub fn announcing<S>(&self, store: S) -> RedisAnnounced<S> {
        RedisAnnounced {
            store,
            channel: self.clone(),
        }
    }

    /// Listens for announced changes and passes them to `target` (a
    /// `CachedStore`'s invalidator), with a heartbeat every `heartbeat`
    /// (see the type's documentation). Returns once subscribed; the
    /// listener runs until the last handle of this channel is dropped.
    pub async fn listen(
        &self,
        target: impl Invalidate,
        heartbeat: Duration,
    ) -> Result<(), StoreError> {
        let heartbeat = heartbeat.max(Duration::from_millis(10));
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(StoreError::unavailable)?;
        let own = format!(
            "{}:hb:{:016x}",
            self.inner.channel,
            u64::from_be_bytes(nonce)
        );
        let client = self.inner.client.clone();
        let changes = self.inner.channel.clone();
        let mut subscription = subscribe(&client, &changes, &own).await?;
        // The task holds no handle of the channel: dropping the last one
        // stops it.
        let task = tokio::spawn(async move {
            loop {
                let why = watch(&client, subscription, &own, heartbeat, &target).await;
                crate::trace::store_warning(
                    "change notifications lost; reconnecting (caches catch up when it is back)",
                    &StoreError::unavailable(why),
                );
                let mut backoff = Duration::from_millis(100);
                subscription = loop {
                    match subscribe(&client, &changes, &own).await {
                        Ok(s) => break s,
                        Err(_) => {
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                        }
                    }
                };
                // Subscribed again: what was announced meanwhile is lost.
                target.invalidate(&Change::All);
                crate::trace::store_warning(
                    "change notifications back; cached records flushed",
                    &StoreError::unavailable("reconnected"),
                );
            }
        });
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(task.abort_handle());
        Ok(())
    }
}

/// Publishes `payload` on `channel` over the connection in `slot`, opened
/// on first use and again after a failure.
async fn publish_on(
    client: &redis::Client,
    slot: &mut Option<MultiplexedConnection>,
    channel: &str,
    payload: &str,
) -> Result<(), StoreError> {
    if slot.is_none() {
        let conn = tokio::time::timeout(
            Duration::from_secs(5),
            client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| StoreError::unavailable("connecting to Redis timed out"))?
        .map_err(redis_error)?;
        *slot = Some(conn);
    }
    let conn = slot.as_mut().expect("just opened");
    let sent: Result<i64, _> = tokio::time::timeout(
        Duration::from_secs(5),
        redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async(conn),
    )
    .await
    .unwrap_or_else(|_| {
        Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "PUBLISH timed out",
        )))
    });
    if let Err(e) = sent {
        *slot = None;
        return Err(redis_error(e));
    }
    Ok(())
}

/// A new connection subscribed to `changes` and to `own` heartbeats.
async fn subscribe(
    client: &redis::Client,
    changes: &str,
    own: &str,
) -> Result<redis::aio::PubSub, StoreError> {
    let subscribe = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(changes).await?;
        pubsub.subscribe(own).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    tokio::time::timeout(Duration::from_secs(5), subscribe)
        .await
        .map_err(|_| StoreError::unavailable("subscribing to Redis timed out"))?
        .map_err(redis_error)
}

/// Passes changes to `target` until the subscription closes or a
/// heartbeat does not come back in time; returns why. Heartbeats go out
/// on a connection of its own.
async fn watch(
    client: &redis::Client,
    subscription: redis::aio::PubSub,
    own: &str,
    heartbeat: Duration,
    target: &impl Invalidate,
) -> String {
    let mut messages = subscription.into_on_message();
    let mut publisher = None;
    let mut sent = 0u64;
    // The heartbeat awaited, and when it is due back.
    let mut awaited: Option<(String, Instant)> = None;
    let mut next_beat = Instant::now() + heartbeat;
    loop {
        let wake = awaited
            .as_ref()
            .map_or(next_beat, |(_, due)| (*due).min(next_beat));
        match tokio::time::timeout_at(wake, messages.next()).await {
            Ok(Some(msg)) => {
                let payload: String = msg.get_payload().unwrap_or_default();
                if msg.get_channel_name() == own {
                    if awaited.as_ref().is_some_and(|(p, _)| *p == payload) {
                        awaited = None;
                    }
                } else {
                    let (kind, key) = payload.split_once(':').unwrap_or(("", ""));
                    target.invalidate(&parse_change(kind, key));
                }
            }
            Ok(None) => return "the subscription connection closed".into(),
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
                        let beat = publish_on(client, &mut publisher, own, &payload);
                        match tokio::time::timeout(heartbeat, beat).await {
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

/// A store announcing each change written through it on a
/// [`RedisChannel`] (see [`RedisChannel::announcing`]). Lookups and
/// listings go straight to the store.
#[derive(Debug, Clone)]
pub struct RedisAnnounced<S> {
    store: S,
    channel: RedisChannel,
}

impl<S> RedisAnnounced<S> {
    /// The wrapped store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Announces after a successful write; a failed announcement is logged
    /// (the write stands; caches catch up by TTL or reconnect).
    async fn announce<T>(
        &self,
        result: Result<T, StoreError>,
        change: Change,
    ) -> Result<T, StoreError> {
        if result.is_ok() {
            if let Err(_e) = self.channel.announce(&change).await {
                crate::trace::store_warning(
                    "Redis PUBLISH failed; other caches catch up by TTL",
                    &_e,
                );
            }
        }
        result
    }
}

impl<S: TokenStore> TokenStore for RedisAnnounced<S> {
    fn find(&self, id: TokenId) -> Lookup {
        self.store.find(id)
    }

    fn record_use(&self, id: TokenId, at: SystemTime) {
        self.store.record_use(id, at);
    }
}

#[async_trait]
impl<S: TokenAdmin> TokenAdmin for RedisAnnounced<S> {
    async fn insert(&self, record: TokenRecord) -> Result<(), StoreError> {
        let id = record.id;
        let result = self.store.insert(record).await;
        self.announce(result, Change::Token(id)).await
    }

    async fn list(&self, owner: Option<&OwnerId>) -> Result<Vec<TokenRecord>, StoreError> {
        self.store.list(owner).await
    }

    async fn revoke(
        &self,
        id: TokenId,
        at: SystemTime,
        reason: &RevocationReason,
    ) -> Result<bool, StoreError> {
        let result = self.store.revoke(id, at, reason).await;
        self.announce(result, Change::Token(id)).await
    }

    async fn cap_expiry(&self, id: TokenId, at: SystemTime) -> Result<(), StoreError> {
        let result = self.store.cap_expiry(id, at).await;
        self.announce(result, Change::Token(id)).await
    }

    async fn set_owner_suspended(
        &self,
        owner: &OwnerId,
        suspended: bool,
    ) -> Result<(), StoreError> {
        let result = self.store.set_owner_suspended(owner, suspended).await;
        self.announce(result, Change::Owner(owner.clone())).await
    }

    async fn is_owner_suspended(&self, owner: &OwnerId) -> Result<bool, StoreError> {
        self.store.is_owner_suspended(owner).await
    }
}
