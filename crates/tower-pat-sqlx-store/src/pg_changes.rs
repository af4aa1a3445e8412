//! Following a PostgreSQL store's change table (feed format 2).
//!
//! Triggers on the token tables write each change into
//! `tower_pat_changes`, numbered in commit order, in the transaction that
//! makes it (migration 0004). The table is the only source of changes this
//! instance believes: a notification (`NOTIFY`, or a Redis message) only
//! asks for a read, so whoever can send one can at most cause reads of an
//! indexed range, merged and spaced out, by a connection of the
//! follower's own.
//!
//! Two tasks per listening store, each on a connection of its own (never
//! the request pool):
//!
//! - the **reader** reads the changes past its cursor when asked, adds
//!   created ids to the filter of known ids and tells the cache. A lookup
//!   whose id the filter does not hold asks for a read that starts after
//!   it and waits for it ([`Follower::caught_up`]): a token committed
//!   before the lookup began is then in the filter, so a fresh token works
//!   on every instance as soon as its `create` returned, and forged ids
//!   cost one shared read instead of one query each;
//! - the **scanner** rebuilds the filter when asked (a full filter, a bulk
//!   load): one scan running and at most one queued; a scan asked for
//!   while one runs supersedes it; failures are retried with backoff.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::future::{select, Either};
use futures_util::TryStreamExt;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use tower_pat::store::feed::{Message, Receiver};
use tower_pat::store::{Background, Change, Invalidate, OwnerId, StoreError};

use crate::engine::Engine;
use crate::log::WarnThrottle;
use crate::postgres::Postgres;
use crate::sql::{db_error, db_to_id};

/// The shortest time between the starts of two reads: however many
/// lookups and notifications ask, an instance reads at most 100 times a
/// second.
const READ_SPACING: Duration = Duration::from_millis(10);

/// Rows read per query.
const READ_BATCH: i64 = 1000;

/// How long one read (or the gap check) may take before its connection is
/// given up.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a lookup waits for a read before asking the table itself.
const WAIT_FOR_READ: Duration = Duration::from_secs(5);

/// How often old changes are deleted, and how old they must be.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
const PRUNE_OLDER_THAN: &str = "DELETE FROM tower_pat_changes WHERE at < now() - interval '1 hour'";

/// How long a scan waits after it was asked for, so that a burst of asks
/// starts one scan.
const SCAN_SETTLE: Duration = Duration::from_millis(50);

/// The longest wait between two attempts at a failing scan.
const MAX_SCAN_BACKOFF: Duration = Duration::from_secs(30);

/// What the store and the two tasks share.
#[derive(Debug)]
pub(crate) struct Follower {
    /// Reads asked for so far (each ask is a ticket).
    asked: AtomicU64,
    wake: Notify,
    /// The last ticket a finished read served, and whether it succeeded.
    done: watch::Sender<(u64, bool)>,
    /// Subscribed again after a loss: check that no change was pruned
    /// before it was read.
    check_gap: AtomicBool,
    scan_wanted: Notify,
    scans: AtomicU64,
    reads: AtomicU64,
    failures: WarnThrottle,
    /// The listener's handle stopped the tasks: nothing reads any more.
    stopped: AtomicBool,
}

impl Follower {
    /// Marks the follower stopped (its tasks were aborted).
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        // Lookups waiting for a read ask the table now.
        self.done.send_replace((u64::MAX, false));
    }

    /// Whether the tasks were stopped.
    pub(crate) fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Asks for a read (merged with any other ask not yet served).
    pub(crate) fn wake(&self) {
        self.asked.fetch_add(1, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Waits for a read that started after this call; `true` if it
    /// succeeded in time.
    pub(crate) fn caught_up(&self) -> impl Future<Output = bool> + Send + 'static {
        let mut done = self.done.subscribe();
        let ticket = self.asked.fetch_add(1, Ordering::SeqCst) + 1;
        self.wake.notify_one();
        async move {
            match tokio::time::timeout(WAIT_FOR_READ, done.wait_for(|(t, _)| *t >= ticket)).await {
                Ok(Ok(served)) => served.1,
                _ => false,
            }
        }
    }

    /// Asks for a new scan (superseding one in progress).
    pub(crate) fn ask_scan(&self) {
        self.scan_wanted.notify_one();
    }

    /// (scans started, reads made), for the tests and the scale bench.
    pub(crate) fn stats(&self) -> (u64, u64) {
        (
            self.scans.load(Ordering::Relaxed),
            self.reads.load(Ordering::Relaxed),
        )
    }
}

/// The feed's receiver: every readable message, of either format, only
/// asks for a read.
pub(crate) struct Wakes(pub(crate) Arc<Follower>);

impl Receiver for Wakes {
    /// Format 1 comes from instances of before format 2 (during a rolling
    /// upgrade) and from `RedisAnnounced`; their writes went through the
    /// triggers too. Garbled messages never get here.
    fn message(&self, _: Message) {
        self.0.wake();
    }

    fn reconnected(&self) {
        self.0.check_gap.store(true, Ordering::SeqCst);
        self.0.wake();
    }
}

/// Starts following: reads the cursor, scans the ids (returning an error if
/// that fails), then spawns the reader and the scanner. Returns the shared
/// state and the tasks to abort with the store.
pub(crate) async fn follow(
    engine: &Arc<Engine<Postgres>>,
    options: PgConnectOptions,
    target: impl Invalidate,
) -> Result<(Arc<Follower>, Background), StoreError> {
    let follower = Arc::new(Follower {
        asked: AtomicU64::new(0),
        wake: Notify::new(),
        done: watch::Sender::new((0, true)),
        check_gap: AtomicBool::new(false),
        scan_wanted: Notify::new(),
        scans: AtomicU64::new(0),
        reads: AtomicU64::new(0),
        failures: WarnThrottle::new(),
        stopped: AtomicBool::new(false),
    });
    let mut conn = PgConnection::connect_with(&options)
        .await
        .map_err(db_error)?;
    // Changes from here on are read; the scan that follows sees at least
    // everything committed up to here.
    let (cursor,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM tower_pat_changes")
        .fetch_one(&mut conn)
        .await
        .map_err(db_error)?;
    let first = scan_ids(engine, &options, &follower).await;
    crate::meter::filter_scan(first.is_ok());
    first?;
    let reader = Reader {
        follower: follower.clone(),
        engine: Arc::downgrade(engine),
        options: options.clone(),
        conn: Some(conn),
        cursor,
        target,
    };
    let tasks = Background::spawn(reader.run()).join(Background::spawn(run_scanner(
        follower.clone(),
        Arc::downgrade(engine),
        options,
    )));
    Ok((follower, tasks))
}

struct Reader<T> {
    follower: Arc<Follower>,
    engine: Weak<Engine<Postgres>>,
    options: PgConnectOptions,
    conn: Option<PgConnection>,
    /// The last change read.
    cursor: i64,
    target: T,
}

impl<T: Invalidate> Reader<T> {
    async fn run(mut self) {
        let mut next_prune = Instant::now() + PRUNE_EVERY;
        loop {
            let woken = tokio::time::timeout_at(next_prune, self.follower.wake.notified())
                .await
                .is_ok();
            let Some(engine) = self.engine.upgrade() else {
                return;
            };
            if !woken {
                next_prune = Instant::now() + PRUNE_EVERY;
                if let Some(conn) = self.conn.as_mut() {
                    let _ = tokio::time::timeout(
                        READ_TIMEOUT,
                        sqlx::query(PRUNE_OLDER_THAN).execute(&mut *conn),
                    )
                    .await;
                }
                continue;
            }
            let serving = self.follower.asked.load(Ordering::SeqCst);
            let started = Instant::now();
            self.follower.reads.fetch_add(1, Ordering::Relaxed);
            let read = match tokio::time::timeout(READ_TIMEOUT, self.read(&engine)).await {
                Ok(r) => r,
                Err(_) => Err(StoreError::unavailable(
                    "reading the change table timed out",
                )),
            };
            drop(engine);
            let ok = match read {
                Ok(()) => true,
                Err(e) => {
                    self.conn = None;
                    crate::log::store_warning_throttled(
                        &self.follower.failures,
                        "reading the change table failed; lookups of ids the filter does not hold ask the database",
                        &e,
                    );
                    false
                }
            };
            self.follower.done.send_replace((serving, ok));
            tokio::time::sleep_until(started + READ_SPACING).await;
        }
    }

    /// Reads and applies every change past the cursor.
    async fn read(&mut self, engine: &Engine<Postgres>) -> Result<(), StoreError> {
        if self.conn.is_none() {
            let conn = PgConnection::connect_with(&self.options)
                .await
                .map_err(db_error)?;
            self.conn = Some(conn);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        if self.follower.check_gap.swap(false, Ordering::SeqCst) {
            let oldest: Result<(i64,), _> =
                sqlx::query_as("SELECT COALESCE(MIN(seq), 0) FROM tower_pat_changes")
                    .fetch_one(&mut *conn)
                    .await;
            match oldest {
                // Changes past the cursor were deleted unread.
                Ok((oldest,)) if oldest > self.cursor + 1 => {
                    apply(&self.follower, engine, &self.target, "all", "");
                }
                Ok(_) => {}
                Err(e) => {
                    self.follower.check_gap.store(true, Ordering::SeqCst);
                    return Err(db_error(e));
                }
            }
        }
        loop {
            let rows: Vec<(i64, String, String)> = sqlx::query_as(
                "SELECT seq, kind, key FROM tower_pat_changes WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
            .bind(self.cursor)
            .bind(READ_BATCH)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
            let n = rows.len();
            for (seq, kind, key) in rows {
                apply(&self.follower, engine, &self.target, &kind, &key);
                self.cursor = seq;
            }
            if (n as i64) < READ_BATCH {
                return Ok(());
            }
        }
    }
}

/// Applies one change row: the filter first, then the cache, so a lookup
/// that follows the cache's invalidation finds the id in the filter.
fn apply(
    follower: &Follower,
    engine: &Engine<Postgres>,
    target: &impl Invalidate,
    kind: &str,
    key: &str,
) {
    let known = &engine.backend.known;
    let change = match kind {
        "token" => key
            .parse::<i64>()
            .ok()
            .map(|id| Change::Token(db_to_id(id))),
        "owner" => OwnerId::new(key).ok().map(Change::Owner),
        _ => None,
    };
    match change {
        Some(Change::Token(id)) => {
            if known.add(id) && known.claim_rescan() {
                follower.ask_scan();
            }
            target.invalidate(&Change::Token(id));
        }
        Some(change) => target.invalidate(&change),
        // A bulk load, or a row this version cannot read: no filter until
        // a new scan has finished, and nothing cached is trusted.
        None => {
            known.drop_filter();
            follower.ask_scan();
            target.invalidate(&Change::All);
        }
    }
}

/// Scans when asked: one scan at a time, a new ask supersedes the scan in
/// progress, failures are retried with backoff.
async fn run_scanner(
    follower: Arc<Follower>,
    engine: Weak<Engine<Postgres>>,
    options: PgConnectOptions,
) {
    loop {
        follower.scan_wanted.notified().await;
        let mut backoff = Duration::from_millis(200);
        loop {
            // Asks that come in a burst (bulk loads one after another)
            // start one scan.
            tokio::time::sleep(SCAN_SETTLE).await;
            let Some(e) = engine.upgrade() else {
                return;
            };
            let outcome = {
                let scan = pin!(scan_ids(&e, &options, &follower));
                let superseded = pin!(follower.scan_wanted.notified());
                match select(scan, superseded).await {
                    Either::Left((outcome, _)) => Some(outcome),
                    Either::Right(_) => None,
                }
            };
            drop(e);
            match outcome {
                Some(Ok(())) => {
                    crate::meter::filter_scan(true);
                    break;
                }
                None => {}
                Some(Err(err)) => {
                    crate::meter::filter_scan(false);
                    crate::log::store_warning_throttled(
                        &follower.failures,
                        "scanning token ids failed; retrying with backoff (lookups ask the database until it works)",
                        &err,
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_SCAN_BACKOFF);
                }
            }
        }
    }
}

/// Fills a new filter of known ids from one scan of the table, on a
/// connection of its own, and makes it the one lookups consult (unless a
/// bulk load or another scan came meanwhile).
async fn scan_ids(
    engine: &Engine<Postgres>,
    options: &PgConnectOptions,
    follower: &Follower,
) -> Result<(), StoreError> {
    follower.scans.fetch_add(1, Ordering::Relaxed);
    let mut conn = PgConnection::connect_with(options)
        .await
        .map_err(db_error)?;
    let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM tower_pat_tokens")
        .fetch_one(&mut conn)
        .await
        .map_err(db_error)?;
    let known = &engine.backend.known;
    let (generation, filter) = known.begin(usize::try_from(rows).unwrap_or(0));
    {
        let mut ids =
            sqlx::query_as::<_, (i64,)>("SELECT id FROM tower_pat_tokens").fetch(&mut conn);
        while let Some((id,)) = ids.try_next().await.map_err(db_error)? {
            filter.add(db_to_id(id));
        }
    }
    known.publish(generation);
    let _ = conn.close().await;
    Ok(())
}
