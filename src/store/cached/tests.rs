use std::future::Future;
use std::pin::pin;
use std::task::{Context, Waker};

use super::*;

/// A store whose lookups never finish (a hung database).
#[derive(Debug)]
struct Hung;

impl TokenStore for Hung {
    fn find(&self, _: TokenId) -> Lookup {
        Lookup::pending(std::future::pending())
    }
}

fn in_flight<S>(cache: &CachedStore<S>) -> usize {
    cache.state.fills.lock().unwrap().len()
}

#[test]
fn cancelled_fills_leave_the_in_flight_map() {
    let cache = CachedStore::new(Hung);
    let mut cx = Context::from_waker(Waker::noop());
    for i in 0..100_000u64 {
        let id = TokenId::from_u64(i);
        let mut lookup = pin!(cache.find(id));
        assert!(lookup.as_mut().poll(&mut cx).is_pending());
        assert_eq!(in_flight(&cache), 1, "the fill is registered while it runs");
        // Dropped here, as a store timeout or a closed connection does.
    }
    assert_eq!(in_flight(&cache), 0);
}

#[test]
fn a_cancelled_caller_does_not_strand_the_callers_sharing_its_fill() {
    let cache = CachedStore::new(Hung);
    let mut cx = Context::from_waker(Waker::noop());
    let id = TokenId::from_u64(7);
    let mut first = Box::pin(cache.find(id));
    let mut second = Box::pin(cache.find(id));
    assert!(first.as_mut().poll(&mut cx).is_pending());
    assert!(second.as_mut().poll(&mut cx).is_pending());
    drop(first);
    drop(second);
    assert_eq!(in_flight(&cache), 0);
}

#[test]
fn floors_forget_expired_raises_in_order_and_keep_the_newest_epoch() {
    let floors = Floors::new(Duration::ZERO);
    for i in 0..100_000u64 {
        floors.raise(TokenId::from_u64(i), i + 1);
    }
    // With nothing kept, each raise forgets all earlier ones: the
    // structure never grows with history.
    assert_eq!(floors.sizes(), (1, 1));

    let floors = Floors::new(Duration::from_secs(3600));
    let k = TokenId::from_u64(1);
    floors.raise(k, 5);
    floors.raise(TokenId::from_u64(2), 6);
    floors.raise(k, 9);
    assert_eq!(floors.get(&k), 9);
    assert_eq!(floors.get(&TokenId::from_u64(2)), 6);
    assert_eq!(floors.get(&TokenId::from_u64(3)), 0);
    assert_eq!(floors.sizes(), (2, 3));
}

#[test]
fn an_expired_older_raise_does_not_forget_a_newer_one() {
    let keep = Duration::from_millis(40);
    let floors = Floors::new(keep);
    let k = TokenId::from_u64(1);
    floors.raise(k, 1);
    std::thread::sleep(keep / 2);
    floors.raise(k, 2);
    std::thread::sleep(keep / 2 + Duration::from_millis(5));
    // The first raise of `k` has expired; the second has not.
    floors.raise(TokenId::from_u64(2), 3);
    assert_eq!(floors.get(&k), 2);
    assert_eq!(floors.sizes(), (2, 2));
}
