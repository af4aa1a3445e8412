use std::num::NonZeroU32;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;

use super::gcra::{step, Outcome};
use super::*;

/// Runs `gaps` (nanoseconds between arrivals) through one cell; returns
/// the arrival times and whether each was accepted.
fn run(limit: RateLimit, gaps: &[u64]) -> Vec<(u64, bool)> {
    let (interval, tolerance) = limit.gcra_nanos();
    let (mut tat, mut now) = (0u64, 1_000_000_000_000u64);
    let mut out = Vec::new();
    for gap in gaps {
        now += gap;
        let (outcome, next) = step(tat, now, interval, tolerance);
        if let Some(next) = next {
            tat = next;
        }
        out.push((now, matches!(outcome, Outcome::Allowed { .. })));
    }
    out
}

proptest! {
    /// Over any window of length W, at most burst + requests × W / period
    /// arrivals are accepted.
    #[test]
    fn no_window_accepts_more_than_burst_plus_rate_times_width(
        requests in 1u32..50,
        period in 1u64..120,
        burst_pick in 0u32..50,
        gaps in prop::collection::vec(prop_oneof![
            Just(0u64),
            0u64..1_000_000,
            0u64..2_000_000_000,
        ], 1..300),
    ) {
        let limit = RateLimit::new(requests, Duration::from_secs(period)).unwrap()
            .with_burst(burst_pick % requests + 1).unwrap();
        let arrivals = run(limit, &gaps);
        let accepted: Vec<u64> = arrivals.iter().filter(|(_, ok)| *ok).map(|(t, _)| *t).collect();
        let period_ns = u128::from(period) * 1_000_000_000;
        for i in 0..accepted.len() {
            for j in i..accepted.len() {
                let width = u128::from(accepted[j] - accepted[i]);
                let count = (j - i + 1) as u128;
                let burst = u128::from(limit.burst());
                prop_assert!(
                    count <= burst || (count - burst) * period_ns <= width * u128::from(requests),
                    "{count} accepted within {width} ns under {limit}"
                );
            }
        }
    }

    /// A client that keeps to the sustained rate is never refused.
    #[test]
    fn a_client_at_the_rate_is_never_refused(requests in 1u32..50, period in 1u64..120, n in 1usize..200) {
        let limit = RateLimit::new(requests, Duration::from_secs(period)).unwrap();
        let (interval, _) = limit.gcra_nanos();
        let arrivals = run(limit, &vec![interval; n]);
        prop_assert!(arrivals.iter().all(|(_, ok)| *ok));
    }
}

fn at(secs: f64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_secs_f64(secs)
}

#[test]
fn a_burst_then_one_per_interval() {
    let limiter = MemoryRateLimiter::new();
    let id = TokenId::from_bytes([7; 8]);
    let limit: RateLimit = "60/min burst 3".parse().unwrap();
    let spent: Vec<Budget> = (0..4)
        .map(|_| limiter.spend_now(id, limit, at(0.0)))
        .collect();
    assert_eq!(
        spent[..3].iter().map(Budget::remaining).collect::<Vec<_>>(),
        [2, 1, 0]
    );
    assert_eq!(spent[3].retry_after(), Some(Duration::from_secs(1)));
    assert_eq!(spent[3].reset(), Duration::from_secs(3));
    // At the window's edge: just before the interval, still refused; at
    // it, one more.
    assert!(!limiter.spend_now(id, limit, at(0.999)).is_allowed());
    let edge = limiter.spend_now(id, limit, at(1.0));
    assert_eq!((edge.is_allowed(), edge.remaining()), (true, 0));
    assert!(!limiter.spend_now(id, limit, at(1.0)).is_allowed());
}

#[test]
fn two_tokens_do_not_share_a_budget() {
    let limiter = MemoryRateLimiter::new();
    let limit: RateLimit = "1/min".parse().unwrap();
    let (a, b) = (TokenId::from_bytes([1; 8]), TokenId::from_bytes([2; 8]));
    assert!(limiter.spend_now(a, limit, at(0.0)).is_allowed());
    assert!(!limiter.spend_now(a, limit, at(0.0)).is_allowed());
    assert!(limiter.spend_now(b, limit, at(0.0)).is_allowed());
}

#[test]
fn idle_tokens_are_dropped() {
    let limiter = MemoryRateLimiter::new();
    let limit: RateLimit = "10/s".parse().unwrap();
    for i in 0..10_000u64 {
        limiter.spend_now(TokenId::from_bytes(i.to_le_bytes()), limit, at(0.0));
    }
    assert_eq!(limiter.len(), 10_000);
    // Two seconds on, every budget is full again: as new tokens arrive,
    // each shard drops its idle cells when it has doubled since its last
    // sweep, so idle cells never outnumber live ones by more than that.
    for i in 0..10_000u64 {
        limiter.spend_now(
            TokenId::from_bytes(((i + 1) << 40).to_le_bytes()),
            limit,
            at(2.0),
        );
    }
    assert!(limiter.len() <= 10_000 + 32 * 64, "{} cells", limiter.len());
}

#[test]
fn concurrent_spends_accept_exactly_the_burst() {
    let limiter = MemoryRateLimiter::new();
    let limit: RateLimit = "100/h burst 50".parse().unwrap();
    let id = TokenId::from_bytes([9; 8]);
    let accepted: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let limiter = limiter.clone();
                s.spawn(move || {
                    (0..100)
                        .filter(|_| limiter.spend_now(id, limit, at(0.0)).is_allowed())
                        .count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(accepted, 50);
}

#[test]
fn headers_follow_the_draft() {
    let limit: RateLimit = "600/min burst 100".parse().unwrap();
    let h = RateHeaders::new(
        "token",
        limit,
        &Budget::allowed(99, Duration::from_millis(100)),
    );
    assert_eq!(h.policy, "\"token\";q=600;w=60");
    assert_eq!(h.state, "\"token\";r=99;t=1");
    let h = RateHeaders::new(
        "token",
        limit,
        &Budget::refused(Duration::from_millis(100), Duration::from_secs(10)),
    );
    assert_eq!(h.state, "\"token\";r=0;t=10");
}

#[test]
fn failures_are_counted_per_ipv4_address_and_ipv6_64() {
    let f = FailureLimiter::new("2/min".parse().unwrap());
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    for _ in 0..2 {
        assert!(f.blocked(ip("203.0.113.1"), at(0.0)).is_none());
        f.failed(ip("203.0.113.1"), at(0.0));
    }
    assert!(f.blocked(ip("203.0.113.1"), at(0.0)).is_some());
    assert!(f.blocked(ip("::ffff:203.0.113.1"), at(0.0)).is_some());
    assert!(f.blocked(ip("203.0.113.2"), at(0.0)).is_none());
    f.failed(ip("2001:db8:0:1::1"), at(0.0));
    f.failed(ip("2001:db8:0:1::2"), at(0.0));
    assert!(f.blocked(ip("2001:db8:0:1:ffff::9"), at(0.0)).is_some());
    assert!(f.blocked(ip("2001:db8:0:2::1"), at(0.0)).is_none());
    assert!(f.blocked(ip("203.0.113.1"), at(30.0)).is_none());
    let _ = NonZeroU32::MIN;
}
