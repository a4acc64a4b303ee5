//! `counter`: shows that calls do not share state.
//!
//! `next` increments a global and returns it. Because the host runs every call in a fresh
//! instance, each call starts from zero and returns 1: a guest cannot carry state from one call
//! to the next (or leak one client's data into another's) through its memory.

use std::sync::atomic::{AtomicU64, Ordering};

use fnhost_guest::export;

/// How many times `next` ran in this instance.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Increments this instance's counter and returns it.
///
/// Every call runs in a fresh instance, so this always returns 1.
#[export]
pub fn next() -> u64 {
    COUNTER.fetch_add(1, Ordering::Relaxed) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Natively the process is one long-lived "instance", so the counter does count: the
    /// isolation comes from the host, which the integration tests check.
    #[test]
    fn counts_within_one_instance() {
        let first = next();
        assert_eq!(next(), first + 1);
        assert_eq!(__fnhost_invoke_next(b"")[0], 0);
    }
}
