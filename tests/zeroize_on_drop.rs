//! The plaintext of a minted token is wiped before its memory is freed.
//!
//! A global allocator in this test binary inspects every block as it is
//! freed and records whether it still holds the bytes being watched. The
//! control (a plain `String` copy) proves the detector sees what it should.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

struct Inspecting;

/// The 16 secret bytes being looked for (set once per check).
static WATCH: Mutex<Option<[u8; 16]>> = Mutex::new(None);
static WATCHING: AtomicBool = AtomicBool::new(false);
static SEEN: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; on `dealloc` it only reads the
// block being freed, which is still valid until `System.dealloc` returns.
unsafe impl GlobalAlloc for Inspecting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if WATCHING.load(Ordering::SeqCst) && l.size() >= 16 {
            // try_lock: never block or re-enter while inspecting.
            if let Ok(guard) = WATCH.try_lock() {
                if let Some(needle) = *guard {
                    let block = unsafe { std::slice::from_raw_parts(p, l.size()) };
                    if block.windows(16).any(|w| w == needle) {
                        SEEN.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Inspecting = Inspecting;

/// Runs `f` while watching for `needle` in freed blocks; returns how many
/// freed blocks held it.
fn freed_blocks_holding(needle: [u8; 16], f: impl FnOnce()) -> usize {
    *WATCH.lock().unwrap() = Some(needle);
    SEEN.store(0, Ordering::SeqCst);
    WATCHING.store(true, Ordering::SeqCst);
    f();
    WATCHING.store(false, Ordering::SeqCst);
    *WATCH.lock().unwrap() = None;
    SEEN.load(Ordering::SeqCst)
}

fn secret_window(token: &str) -> [u8; 16] {
    token.as_bytes()[30..46].try_into().unwrap()
}

#[test]
fn minted_plaintext_is_wiped_before_it_is_freed() {
    // The detector works: a plain copy is freed with the secret in it.
    let minted = nuvlyx::live().format().mint();
    let copy = minted.token.expose_secret().to_owned();
    let needle = secret_window(&copy);
    assert_eq!(
        freed_blocks_holding(needle, move || drop(copy)),
        1,
        "control"
    );

    // The real thing: dropping the minted token frees no block holding it.
    let needle = secret_window(minted.token.expose_secret());
    assert_eq!(freed_blocks_holding(needle, move || drop(minted)), 0);
}
