//! Login throttling, per account and per address: a few failures are free,
//! then each further failure doubles the wait (30 s up to 15 min). Pure:
//! the caller passes the time. Memory is bounded: beyond `MAX_KEYS` the
//! entries that no longer lock anything are dropped first.

use std::collections::HashMap;

/// Failures counted within this window.
const WINDOW_MS: u64 = 15 * 60_000;
const FIRST_LOCK_MS: u64 = 30_000;
const MAX_LOCK_MS: u64 = 15 * 60_000;
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    failures: u32,
    first_ms: u64,
    locked_until_ms: u64,
}

/// One throttle (the per-account one and the per-address one differ only
/// in how many failures are free).
#[derive(Debug)]
pub struct Throttle {
    free: u32,
    entries: HashMap<String, Entry>,
}

impl Throttle {
    pub fn new(free_failures: u32) -> Throttle {
        Throttle {
            free: free_failures,
            entries: HashMap::new(),
        }
    }

    /// Ok, or the seconds to wait before the next attempt.
    pub fn check(&self, key: &str, now_ms: u64) -> Result<(), u64> {
        match self.entries.get(key) {
            Some(e) if e.locked_until_ms > now_ms => {
                Err((e.locked_until_ms - now_ms).div_ceil(1000))
            }
            _ => Ok(()),
        }
    }

    /// A failed attempt; returns the lock it starts, in seconds, if any.
    pub fn failed(&mut self, key: &str, now_ms: u64) -> Option<u64> {
        if self.entries.len() >= MAX_KEYS && !self.entries.contains_key(key) {
            self.prune(now_ms);
            if self.entries.len() >= MAX_KEYS {
                // Everything is locked: keep counting the new key anyway by
                // evicting the entry closest to unlocking.
                if let Some(k) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.locked_until_ms)
                    .map(|(k, _)| k.clone())
                {
                    self.entries.remove(&k);
                }
            }
        }
        let free = self.free;
        let e = self.entries.entry(key.to_string()).or_default();
        if now_ms.saturating_sub(e.first_ms) > WINDOW_MS && e.locked_until_ms <= now_ms {
            *e = Entry {
                failures: 0,
                first_ms: now_ms,
                locked_until_ms: 0,
            };
        }
        e.failures = e.failures.saturating_add(1);
        if e.failures <= free {
            return None;
        }
        let doublings = (e.failures - free - 1).min(16);
        let lock = (FIRST_LOCK_MS << doublings).min(MAX_LOCK_MS);
        e.locked_until_ms = now_ms + lock;
        Some(lock / 1000)
    }

    /// A successful login clears the account's count (not the address's:
    /// one right password must not reset an address that guesses others).
    pub fn clear(&mut self, key: &str) {
        self.entries.remove(key);
    }

    fn prune(&mut self, now_ms: u64) {
        self.entries.retain(|_, e| {
            e.locked_until_ms > now_ms || now_ms.saturating_sub(e.first_ms) <= WINDOW_MS
        });
        if self.entries.len() >= MAX_KEYS {
            self.entries.retain(|_, e| e.locked_until_ms > now_ms);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_failures_then_doubling_locks() {
        let mut t = Throttle::new(5);
        let t0 = 1_000_000;
        for i in 0..5 {
            assert_eq!(t.check("budi", t0 + i), Ok(()));
            assert_eq!(t.failed("budi", t0 + i), None);
        }
        assert_eq!(t.failed("budi", t0 + 10), Some(30));
        assert_eq!(t.check("budi", t0 + 10), Err(30));
        assert_eq!(t.check("budi", t0 + 10 + 29_500), Err(1));
        assert_eq!(t.check("budi", t0 + 10 + 30_000), Ok(()));
        assert_eq!(t.failed("budi", t0 + 40_000), Some(60));
        assert_eq!(t.failed("budi", t0 + 110_000), Some(120));
        // Other keys are not affected.
        assert_eq!(t.check("ani", t0 + 110_000), Ok(()));
        // The lock never exceeds 15 minutes.
        let mut now = t0 + 300_000;
        for _ in 0..20 {
            now += 1;
            let _ = t.failed("budi", now);
        }
        assert_eq!(t.check("budi", now), Err(900));
    }

    #[test]
    fn the_count_restarts_after_a_quiet_window_and_on_success() {
        let mut t = Throttle::new(2);
        assert_eq!(t.failed("x", 0), None);
        assert_eq!(t.failed("x", 1), None);
        assert_eq!(t.failed("x", WINDOW_MS + 100_000), None);
        t.clear("x");
        assert!(t.is_empty());
    }

    #[test]
    fn memory_is_bounded_and_locks_survive_a_flood() {
        let mut t = Throttle::new(1);
        // A locked account before the flood.
        t.failed("budi", 0);
        assert_eq!(t.failed("budi", 1), Some(30));
        for i in 0..(MAX_KEYS as u64 + 10) {
            t.failed(&format!("10.0.{}.{}", i / 256, i % 256), 2);
            assert!(t.len() <= MAX_KEYS);
        }
        // Entries below their free failures may go; a lock never does.
        assert_eq!(t.check("budi", 3), Err(30));
        // Later, the stale entries make room.
        t.failed("fresh", WINDOW_MS * 2);
        assert!(t.len() <= MAX_KEYS);
    }
}
