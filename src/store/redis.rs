//! [`RedisChannel`]: cache invalidations over Redis pub/sub (feature
//! `redis`), for deployments that cannot hold a PostgreSQL `LISTEN`
//! connection (PgBouncer in transaction mode) or already run Redis.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;

use super::feed;
use super::feed_message::{parse_message, Message};
use super::invalidation::change_payload;
use super::{
    Background, Change, Invalidate, Lookup, OwnerId, StoreError, TokenAdmin, TokenRecord,
    TokenStore,
};
use crate::{store::RevocationReason, token::TokenId};

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
/// # async fn run() -> Result<(), tower_pat::store::StoreError> {
/// use std::time::Duration;
/// use tower_pat::store::{CachedStore, PostgresStore, RedisChannel};
///
/// let channel = RedisChannel::open("redis://127.0.0.1:6379", "tower_pat")?;
/// // Behind PgBouncer (transaction mode): no LISTEN, Redis instead.
/// let store = PostgresStore::connect("postgres://app@pgbouncer/tokens").await?;
/// let cached = CachedStore::new(store.clone());
/// // The cache, and the store's filter of known ids, follow the channel
/// // (`channel.listen(cached.invalidator(), …)` for a store of your own).
/// store.listen_on(&channel, cached.invalidator(), Duration::from_secs(5)).await?;
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
            }),
        })
    }

    /// Publishes `change` to every listening instance. A failure is
    /// returned (and the connection opened again on the next call); the
    /// caches catch up by their TTL or at their next reconnect.
    pub async fn announce(&self, change: &Change) -> Result<(), StoreError> {
        let payload = change_payload(change);
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
    /// listener runs until the returned handle is dropped or shut down.
    pub async fn listen(
        &self,
        target: impl Invalidate,
        heartbeat: Duration,
    ) -> Result<Background, StoreError> {
        let changes = Changes {
            target,
            channel: self.inner.channel.clone(),
            garbled: crate::trace::WarnThrottle::new(),
        };
        let task = self.listen_with(changes, heartbeat).await?;
        Ok(Background::new(vec![task]))
    }

    /// Hands what the channel carries to `receiver`, with a heartbeat, in a
    /// task the caller stops.
    pub(crate) async fn listen_with(
        &self,
        receiver: impl feed::Receiver,
        heartbeat: Duration,
    ) -> Result<tokio::task::AbortHandle, StoreError> {
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(StoreError::unavailable)?;
        let source = RedisFeed {
            client: self.inner.client.clone(),
            changes: self.inner.channel.clone(),
            own: format!(
                "{}:hb:{:016x}",
                self.inner.channel,
                u64::from_be_bytes(nonce)
            ),
            // Heartbeats go out on a connection of the listener's own.
            publisher: tokio::sync::Mutex::new(None),
        };
        feed::spawn_listener(source, receiver, heartbeat).await
    }
}

/// What [`RedisChannel::listen`] does with a message: a change of feed
/// format 1 is passed on (anyone who may publish on the channel is
/// believed: see SECURITY.md), anything else is ignored.
struct Changes<T> {
    target: T,
    channel: String,
    garbled: crate::trace::WarnThrottle,
}

impl<T: Invalidate> feed::Receiver for Changes<T> {
    fn message(&self, payload: &str) {
        match parse_message(payload) {
            Message::Change(change) => self.target.invalidate(&change),
            // Feed format 2 points at a PostgreSQL change table, which
            // only `PostgresStore::listen_on` reads.
            Message::Wake => {}
            Message::Garbled => {
                crate::trace::feed_garbled(&self.garbled, &self.channel, payload.len());
            }
        }
    }

    fn back(&self) {
        self.target.invalidate(&Change::All);
    }
}

/// Subscribed to the changes channel and this listener's heartbeat
/// channel.
struct RedisFeed {
    client: redis::Client,
    changes: String,
    own: String,
    publisher: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

impl feed::Source for RedisFeed {
    type Sub = redis::aio::PubSubStream;
    const KIND: &'static str = "redis";

    async fn subscribe(&self) -> Result<redis::aio::PubSubStream, StoreError> {
        let subscribe = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(&self.changes).await?;
            pubsub.subscribe(&self.own).await?;
            Ok::<_, redis::RedisError>(pubsub.into_on_message())
        };
        tokio::time::timeout(Duration::from_secs(5), subscribe)
            .await
            .map_err(|_| StoreError::unavailable("subscribing to Redis timed out"))?
            .map_err(redis_error)
    }

    async fn beat(&self, payload: &str) -> Result<(), String> {
        let mut slot = self.publisher.lock().await;
        publish_on(&self.client, &mut slot, &self.own, payload)
            .await
            .map_err(|e| e.to_string())
    }

    fn own(&self) -> &str {
        &self.own
    }
}

impl feed::Subscription for redis::aio::PubSubStream {
    /// A stream's `next` is cancel-safe.
    async fn next(&mut self) -> Result<(String, String), String> {
        match StreamExt::next(self).await {
            Some(msg) => Ok((
                msg.get_channel_name().to_owned(),
                msg.get_payload().unwrap_or_default(),
            )),
            None => Err("the subscription connection closed".into()),
        }
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
