#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;

use tower_pat::store::feed::{ChangeFeed, Message, Receiver, Subscription};
use tower_pat::store::{
    Background, Change, Invalidate, Lookup, OwnerId, RevocationReason, StoreError, TokenAdmin,
    TokenRecord, TokenStore,
};
use tower_pat::token::TokenId;

mod limiter;
pub use limiter::RedisRateLimiter;

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
/// use tower_pat::{store::CachedStore, MemoryStore};
/// use tower_pat_redis::RedisChannel;
///
/// let channel = RedisChannel::open("redis://127.0.0.1:6379", "tower_pat")?;
/// let store = MemoryStore::new(); // your shared store
/// let cached = CachedStore::new(store.clone());
/// let listening = channel.listen(cached.invalidator(), Duration::from_secs(5)).await?;
/// // Writers (TokenManager, admin tools) use the announcing store.
/// let for_writers = channel.announcing(store);
/// # let _ = (for_writers, listening); Ok(()) }
/// ```
///
/// For `tower-pat-sqlx-store`'s `PostgresStore` behind PgBouncer, give
/// [`RedisChannel::feed`] to `PostgresStore::listen_on` instead of calling
/// `listen`: the store then reads each change from its change table, and
/// a message only asks for a read.
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
        self.publish(&self.inner.channel, &change.to_string()).await
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
        self.feed().listen(Changes(target), heartbeat).await
    }

    /// This channel as a [`ChangeFeed`] of tower-pat's, for a store that
    /// follows a feed of its own accord, such as `tower-pat-sqlx-store`'s
    /// `PostgresStore::listen_on`. Its listener keeps a connection of its
    /// own for heartbeats.
    pub fn feed(&self) -> RedisFeed {
        RedisFeed {
            client: self.inner.client.clone(),
            changes: self.inner.channel.clone(),
            publisher: tokio::sync::Mutex::new(None),
        }
    }
}

/// What [`RedisChannel::listen`] does with a message: a change of feed
/// format 1 is passed on (anyone who may publish on the channel is
/// believed: see SECURITY.md); format 2 points at a PostgreSQL change
/// table, which only `PostgresStore::listen_on` reads.
struct Changes<T>(T);

impl<T: Invalidate> Receiver for Changes<T> {
    fn message(&self, message: Message) {
        if let Message::Change(change) = message {
            self.0.invalidate(&change);
        }
    }

    fn reconnected(&self) {
        self.0.invalidate(&Change::All);
    }
}

/// A [`RedisChannel`] as a [`ChangeFeed`] (see [`RedisChannel::feed`]):
/// subscribed to the changes channel and to the listener's heartbeat
/// channel.
pub struct RedisFeed {
    client: redis::Client,
    changes: String,
    publisher: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

impl std::fmt::Debug for RedisFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisFeed")
            .field("channel", &self.changes)
            .finish_non_exhaustive()
    }
}

impl ChangeFeed for RedisFeed {
    type Subscription = Subscribed;
    const KIND: &'static str = "redis";

    async fn subscribe(&self, heartbeats: &str) -> Result<Subscribed, StoreError> {
        let subscribe = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(&self.changes).await?;
            pubsub.subscribe(heartbeats).await?;
            Ok::<_, redis::RedisError>(pubsub.into_on_message())
        };
        tokio::time::timeout(Duration::from_secs(5), subscribe)
            .await
            .map_err(|_| StoreError::unavailable("subscribing to Redis timed out"))?
            .map(Subscribed)
            .map_err(redis_error)
    }

    async fn beat(&self, heartbeats: &str, payload: &str) -> Result<(), StoreError> {
        let mut slot = self.publisher.lock().await;
        publish_on(&self.client, &mut slot, heartbeats, payload).await
    }
}

/// A live Redis subscription of a [`RedisFeed`].
pub struct Subscribed(redis::aio::PubSubStream);

impl std::fmt::Debug for Subscribed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscribed").finish_non_exhaustive()
    }
}

impl Subscription for Subscribed {
    /// A stream's `next` is cancel-safe.
    async fn next(&mut self) -> Result<(String, String), StoreError> {
        match StreamExt::next(&mut self.0).await {
            Some(msg) => Ok((
                msg.get_channel_name().to_owned(),
                msg.get_payload().unwrap_or_default(),
            )),
            None => Err(StoreError::unavailable(
                "the subscription connection closed",
            )),
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
                #[cfg(feature = "tracing")]
                tracing::warn!(target: "tower_pat", error = %_e, "Redis PUBLISH failed; other caches catch up by TTL");
            }
        }
        result
    }
}

impl<S: TokenStore> TokenStore for RedisAnnounced<S> {
    fn find(&self, id: TokenId) -> Lookup {
        self.store.find(id)
    }

    fn record_use(&self, id: TokenId, at: SystemTime, from: Option<std::net::IpAddr>) {
        self.store.record_use(id, at, from);
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

    async fn set_limits(
        &self,
        id: TokenId,
        rate_limit: Option<tower_pat::limit::RateLimit>,
        allowed_ips: Option<tower_pat::limit::IpAllowlist>,
    ) -> Result<(), StoreError> {
        let result = self.store.set_limits(id, rate_limit, allowed_ips).await;
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
