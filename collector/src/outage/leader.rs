//! Leadership through a lease in the control store: of several collectors,
//! the one holding the lease leads (opens incidents, alerts), the others
//! follow and take over once it stops renewing.
//!
//! A leader renews every third of the lease and counts itself leader only
//! until `ttl - margin` after it *sent* its last successful renewal. The
//! store dates the lease from when it ran the statement, which is later, so
//! a leader stops believing before anyone else can take the lease: even a
//! stalled leader thread, or one cut off from the database, never overlaps
//! its successor. The cost is a gap of at most `margin` plus one renewal
//! period with no leader after a crash.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::store::ControlStore;

/// The outage detector's lease.
pub const OUTAGE_LEASE: &str = "outage-detector";

/// This collector's name in the lease: `[storage.control] collector_id`,
/// else `HOSTNAME:PID` (a second collector in the same process, as tests
/// run them: `HOSTNAME:PID:2`, so the two never share a name).
pub fn collector_id(configured: &str) -> String {
    static STARTED: AtomicU64 = AtomicU64::new(0);
    if !configured.is_empty() {
        return configured.to_owned();
    }
    match STARTED.fetch_add(1, Ordering::Relaxed) {
        0 => host_pid(),
        n => format!("{}:{}", host_pid(), n + 1),
    }
}

/// `HOSTNAME:PID`: what a collector is called when it has no
/// `collector_id` (also one alone on SQLite, which holds no lease).
pub fn host_pid() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "collector".into());
    format!("{host}:{}", std::process::id())
}

/// A lease holder's collector id and instance tag (`lease_holder` undone);
/// a month's mailing claim carries the bare collector id, no tag.
pub fn split_holder(holder: &str) -> (&str, Option<&str>) {
    match holder.rsplit_once('#') {
        Some((id, tag)) if tag.len() == 16 && tag.bytes().all(|b| b.is_ascii_hexdigit()) => {
            (id, Some(tag))
        }
        _ => (holder, None),
    }
}

pub struct Leader {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    store: Arc<dyn ControlStore>,
    name: String,
    holder: String,
    /// What the lease row holds: `holder#instance`, so two processes given
    /// the same `collector_id` (a copied config) are still two rivals, and
    /// one of them leads, instead of both renewing "their" lease.
    lease_holder: String,
}

/// `holder` plus a random instance tag for this process's lease.
fn lease_holder(holder: &str) -> String {
    format!("{holder}#{:016x}", rand::random::<u64>())
}

struct Shared {
    base: Instant,
    /// Leading until this many ms after `base` (0: not leading).
    until_ms: AtomicU64,
    stop: AtomicBool,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn is_leading(&self) -> bool {
        self.now_ms() < self.until_ms.load(Ordering::Acquire)
    }
}

impl Leader {
    /// Start contending for `name` as `holder` (unique per collector: its
    /// host name and process id, say), with leases of `ttl`.
    pub fn start(
        store: Arc<dyn ControlStore>,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> std::io::Result<Leader> {
        let shared = Arc::new(Shared {
            base: Instant::now(),
            until_ms: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(3);
        let believe_ms = ttl_ms - (ttl_ms / 4).max(1);
        let period = Duration::from_millis(ttl_ms / 3);
        let lease_holder = lease_holder(holder);
        let thread = {
            let (shared, store) = (shared.clone(), store.clone());
            let (name, holder) = (name.to_owned(), lease_holder.clone());
            std::thread::Builder::new()
                .name("simpul-leader".into())
                .spawn(move || {
                    while !shared.stop.load(Ordering::Acquire) {
                        let sent = shared.now_ms();
                        match store.try_lease(&name, &holder, ttl) {
                            Ok(true) => {
                                if shared.until_ms.load(Ordering::Acquire) <= sent {
                                    tracing::info!(lease = %name, %holder, "now leading");
                                }
                                shared.until_ms.store(sent + believe_ms, Ordering::Release);
                            }
                            Ok(false) => shared.until_ms.store(0, Ordering::Release),
                            // Unknown: keep what the last renewal bought,
                            // which runs out on its own.
                            Err(e) => {
                                tracing::warn!(lease = %name, error = %e, "cannot renew the lease")
                            }
                        }
                        std::thread::park_timeout(period);
                    }
                })?
        };
        Ok(Leader {
            shared,
            thread: Some(thread),
            store,
            name: name.to_owned(),
            holder: holder.to_owned(),
            lease_holder,
        })
    }

    /// Whether this collector leads now.
    pub fn is_leading(&self) -> bool {
        self.shared.is_leading()
    }

    /// [`Self::is_leading`] for the outage monitor, without owning the
    /// leader (whose drop releases the lease).
    pub fn gate(&self) -> crate::outage::monitor::LeaderGate {
        let shared = self.shared.clone();
        Arc::new(move || shared.is_leading())
    }

    /// The name this collector holds the lease under.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    fn stop_thread(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        self.shared.until_ms.store(0, Ordering::Release);
    }

    /// Stop renewing without giving the lease up, as a crashed collector
    /// does (tests).
    pub fn abandon(mut self) {
        self.stop_thread();
    }
}

impl Drop for Leader {
    /// A clean stop hands the lease over at once.
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop_thread();
            if let Err(e) = self.store.release_lease(&self.name, &self.lease_holder) {
                tracing::warn!(lease = %self.name, error = %e, "cannot release the lease");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::server::TempPostgres;
    use crate::store::postgres::{ControlBackend, PgStore, PostgresConfig};
    use crate::store::{Store, StoreConfig};

    fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
        let end = Instant::now() + Duration::from_secs(20);
        while !ok() {
            assert!(Instant::now() < end, "{what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The one of `all` that leads, once one does.
    fn leading(all: &mut Vec<Leader>) -> Leader {
        wait_for("someone leads", || all.iter().any(Leader::is_leading));
        let i = all.iter().position(Leader::is_leading).unwrap_or(0);
        all.remove(i)
    }

    fn never_both(a: &Leader, b: &Leader, for_ms: u64) {
        let end = Instant::now() + Duration::from_millis(for_ms);
        while Instant::now() < end {
            assert!(!(a.is_leading() && b.is_leading()), "two leaders");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Two collectors: one leads, never both; the follower takes over when
    /// the leader dies without a word, and when it stops cleanly. (Only
    /// "never both" is asserted at every instant: which one leads may move
    /// if the machine stalls a renewal past the lease.)
    fn hand_over(a: Arc<dyn ControlStore>, b: Arc<dyn ControlStore>) {
        let ttl = Duration::from_millis(900);
        let mut all = vec![
            Leader::start(a.clone(), OUTAGE_LEASE, "collector-a", ttl).unwrap(),
            Leader::start(b.clone(), OUTAGE_LEASE, "collector-b", ttl).unwrap(),
        ];
        never_both(&all[0], &all[1], 1500);
        let leader = leading(&mut all);
        let follower = all.pop().unwrap();
        leader.abandon();
        wait_for("the follower takes over after a crash", || {
            follower.is_leading()
        });
        let third = Leader::start(a, OUTAGE_LEASE, "collector-c", ttl).unwrap();
        never_both(&follower, &third, 1000);
        let mut all = vec![follower, third];
        let leader = leading(&mut all);
        let next = all.pop().unwrap();
        drop(leader);
        wait_for("the other takes over after a clean stop", || {
            next.is_leading()
        });
        drop(b);
    }

    #[test]
    fn holders_split_into_collector_and_instance() {
        let h = lease_holder("noc#a");
        let (id, tag) = split_holder(&h);
        assert_eq!(id, "noc#a");
        assert_eq!(tag.map(str::len), Some(16));
        assert_eq!(split_holder("noc-a"), ("noc-a", None));
        assert_eq!(split_holder("noc#b"), ("noc#b", None));
    }

    /// A copied config gives two processes one `collector_id`: they must
    /// still be rivals, or both lead and every outage alerts twice.
    #[test]
    fn one_collector_id_in_two_processes_still_has_one_leader() {
        let dir = tempfile::tempdir().unwrap();
        let s: Arc<dyn ControlStore> =
            Arc::new(Store::open(dir.path(), StoreConfig::default()).unwrap());
        let ttl = Duration::from_millis(900);
        let a = Leader::start(s.clone(), OUTAGE_LEASE, "collector-a", ttl).unwrap();
        let b = Leader::start(s, OUTAGE_LEASE, "collector-a", ttl).unwrap();
        wait_for("someone leads", || a.is_leading() || b.is_leading());
        never_both(&a, &b, 1500);
        assert_eq!(
            a.holder(),
            b.holder(),
            "both still show the configured name"
        );
    }

    #[test]
    fn leadership_hands_over_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let s: Arc<dyn ControlStore> =
            Arc::new(Store::open(dir.path(), StoreConfig::default()).unwrap());
        hand_over(s.clone(), s);
    }

    #[test]
    fn leadership_hands_over_between_collectors_on_postgres() {
        let server = TempPostgres::start()
            .unwrap_or_else(|e| panic!("the lease tests need PostgreSQL: {e}"));
        let url = server.database("lease").unwrap();
        let open = || -> Arc<dyn ControlStore> {
            Arc::new(
                PgStore::open(&PostgresConfig {
                    backend: ControlBackend::Postgres,
                    url: url.clone(),
                    ..PostgresConfig::default()
                })
                .unwrap(),
            )
        };
        hand_over(open(), open());
    }
}
