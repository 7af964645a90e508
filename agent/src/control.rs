//! What this node attributes and enforces with, and where that comes from:
//! one thread that owns the inventory, the policy in force and the
//! [`Enforcer`], and publishes the result to the packet path ([`InForce`]).
//!
//! Sources, exactly one per node:
//! - **Collector**: the inventory and Ed25519-signed policies arrive over the
//!   link. A policy is verified with the key pinned at enrollment, refused
//!   if older than the one in force (replay), validated against the node's
//!   inventory (the same core code the collector ran), applied atomically,
//!   and its state reported back at once. The last inventory and the last
//!   good signed policy are kept in the state directory, so a restarted
//!   agent enforces them before the collector is reachable.
//! - **Standalone**: the inventory and policy files of `[standalone]`,
//!   re-read when they change; the last good policy is kept too.
//! - **Fixed**: a policy given for checks only (`replay --policy`), nothing
//!   enforced.
//!
//! Without an inventory every address is "unknown" and nothing is enforced;
//! the agent says so and keeps capturing.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use simpul_core::inventory::NodeView;
use simpul_core::policy::matcher::{BlockMatcher, Exemptions};
use simpul_core::policy::{validate, PolicyScope};
use simpul_proto::inventory::Inventory;
use simpul_proto::policy::Policy;
use simpul_proto::signed::SignedPolicy;
use simpul_proto::wire::{PolicyOutcome, PolicyState};
use simpul_proto::Problem;
use time::OffsetDateTime;

use crate::enforce::{EnforceError, Enforcer};
use crate::link::{FromCollector, HealthState, LinkControl};
use crate::lists::{ListFiles, Progress};
use crate::state_files;

/// A list transfer with no chunk for this long is asked for again (the
/// request or its answer went down with a connection).
const LIST_STALL: Duration = Duration::from_secs(10);
/// A list whose content fails its hash this many times in a row makes the
/// policy fail (a collector serving corrupt content).
const LIST_FAILURES: u32 = 3;

/// How often schedules, suspensions and standalone files are looked at.
const TICK: Duration = Duration::from_millis(250);

/// Files in the state directory.
pub const INVENTORY_FILE: &str = "inventory.json";
pub const SIGNED_POLICY_FILE: &str = "policy.signed.json";
pub const POLICY_KEY_FILE: &str = "policy-key";
pub const LAST_GOOD_FILE: &str = "last-good-policy.toml";

/// Where the inventory and policy come from.
pub enum Source {
    Collector {
        inbox: Receiver<FromCollector>,
    },
    Standalone {
        inventory_file: Option<PathBuf>,
        policy_file: Option<PathBuf>,
    },
    /// A policy for checks only (no kernel), with an optional inventory.
    Fixed {
        inventory: Option<Box<Inventory>>,
        policy: Option<Box<Policy>>,
    },
}

/// What the packet path works with now.
#[derive(Clone, Default)]
pub struct Snapshot {
    pub node: Option<Arc<NodeView>>,
    pub matcher: Option<Arc<BlockMatcher>>,
}

/// The published [`Snapshot`] and a generation number that changes with it.
#[derive(Default)]
pub struct InForce {
    snapshot: Mutex<Snapshot>,
    generation: AtomicU64,
}

impl InForce {
    fn publish(&self, s: Snapshot) {
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = s;
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The snapshot, if it changed since generation `*seen`.
    pub fn changed(&self, seen: &mut u64) -> Option<Snapshot> {
        let g = self.generation.load(Ordering::Acquire);
        if g == *seen {
            return None;
        }
        *seen = g;
        Some(self.current())
    }

    pub fn current(&self) -> Snapshot {
        self.snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

pub struct ControlSettings {
    pub node_id: String,
    pub state_dir: PathBuf,
    /// Where the node enforces (None: it does not touch the kernel).
    pub enforcer: Option<Enforcer>,
    /// Never blocked (the collector's address, `always_allow`).
    pub always_allow: Vec<ipnetwork::IpNetwork>,
    pub health: Arc<HealthState>,
    /// Collector mode: the versions for Hello and the policy states.
    pub link: Option<Arc<LinkControl>>,
}

/// The running control thread.
pub struct Control {
    in_force: Arc<InForce>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Control {
    /// Restore what the state directory and the source hold (applied before
    /// this returns, so the last good policy is in force before the first
    /// packet), then follow the source on a thread.
    pub fn start(settings: ControlSettings, source: Source) -> std::io::Result<Control> {
        let in_force = Arc::new(InForce::default());
        let mut state = State {
            s: settings,
            node: None,
            policy: None,
            signed: None,
            pending: None,
            key: None,
            seen_inventory: None,
            seen_policy: None,
            in_force: in_force.clone(),
            published: (0, 0),
            awaiting: None,
            matcher_basis: None,
        };
        let mut source = source;
        state.restore(&mut source);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("simpul-control".into())
                .spawn(move || state.run(source, &stop))?
        };
        Ok(Control {
            in_force,
            stop,
            thread: Some(thread),
        })
    }

    pub fn in_force(&self) -> Arc<InForce> {
        self.in_force.clone()
    }

    /// End the thread; the kernel keeps what is in force.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

struct State {
    s: ControlSettings,
    node: Option<NodeView>,
    /// The policy in force.
    policy: Option<Policy>,
    /// Its signed form (collector mode).
    signed: Option<SignedPolicy>,
    /// A signed policy that arrived before any inventory.
    pending: Option<SignedPolicy>,
    /// The collector's policy key, pinned.
    key: Option<Vec<u8>>,
    /// Standalone file contents last read.
    seen_inventory: Option<String>,
    seen_policy: Option<String>,
    in_force: Arc<InForce>,
    /// (inventory version, policy version) last published.
    published: (u64, u64),
    /// A valid signed policy waiting for named lists it names.
    awaiting: Option<Awaiting>,
    /// The blocking rules and exemptions the last matcher was built from
    /// (a policy changing only its allocation reuses its domain set).
    matcher_basis: Option<(MatcherBasis, Arc<BlockMatcher>)>,
}

type MatcherBasis = (simpul_proto::policy::Blocking, Exemptions);

/// A policy whose named lists are being fetched.
struct Awaiting {
    signed: SignedPolicy,
    version: u64,
    restoring: bool,
    /// sha256 → list name, still to fetch.
    missing: std::collections::BTreeMap<String, String>,
    last_progress: std::time::Instant,
    failures: u32,
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn now_ms() -> u64 {
    u64::try_from(now().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

impl State {
    fn path(&self, name: &str) -> PathBuf {
        self.s.state_dir.join(name)
    }

    fn restore(&mut self, source: &mut Source) {
        match source {
            Source::Collector { .. } => {
                self.key = state_files::read_hex(&self.path(POLICY_KEY_FILE));
                match state_files::read_json::<Inventory>(&self.path(INVENTORY_FILE)) {
                    Ok(Some(inv)) => self.take_inventory(inv, false),
                    Ok(None) => tracing::warn!(
                        "no inventory yet: every address is attributed to \"unknown\" and nothing is enforced until the collector sends it"
                    ),
                    Err(e) => tracing::error!(error = %e, "the kept inventory is unreadable; waiting for the collector's"),
                }
                match state_files::read_json::<SignedPolicy>(&self.path(SIGNED_POLICY_FILE)) {
                    Ok(Some(sp)) => self.take_signed(sp, true),
                    Ok(None) => {
                        tracing::info!("no signed policy kept; waiting for the collector's")
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the kept policy is unreadable; waiting for the collector's")
                    }
                }
            }
            Source::Standalone { .. } => {
                // The last good policy first: in force even if the files are
                // broken now.
                self.standalone_files(source);
            }
            Source::Fixed { inventory, policy } => {
                if let Some(inv) = inventory.take() {
                    self.take_inventory(*inv, false);
                }
                if let Some(p) = policy.take().map(|p| *p) {
                    match self.check(&p) {
                        Ok(()) => self.policy = Some(p),
                        Err(problems) => tracing::error!(
                            "policy refused: {}",
                            simpul_proto::problem::describe(&problems)
                        ),
                    }
                }
            }
        }
        self.publish();
    }

    fn run(mut self, mut source: Source, stop: &AtomicBool) {
        while !stop.load(Ordering::Acquire) {
            match &source {
                Source::Collector { inbox, .. } => match inbox.recv_timeout(TICK) {
                    Ok(msg) => self.on_message(msg),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => std::thread::park_timeout(TICK),
                },
                Source::Standalone { .. } => {
                    std::thread::park_timeout(TICK);
                    self.standalone_files(&mut source);
                }
                // Parked rather than asleep: `stop` unparks, so a replay's
                // process does not wait out a tick before it exits.
                Source::Fixed { .. } => std::thread::park_timeout(TICK),
            }
            self.tick();
            self.publish();
        }
    }

    /// Schedule windows and suspension expiry; stalled list transfers.
    fn tick(&mut self) {
        self.resume_lists();
        if let Some(e) = self.s.enforcer.as_mut() {
            if let Err(err) = e.tick(now()) {
                self.s
                    .health
                    .policy_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %err, "cannot apply the policy for the current time");
            }
        }
    }

    fn publish(&mut self) {
        let inv = self.node.as_ref().map_or(0, |n| n.inventory_version);
        let pol = self.policy.as_ref().map_or(0, |p| p.version);
        self.s
            .health
            .inventory_version
            .store(inv, Ordering::Relaxed);
        self.s.health.policy_version.store(pol, Ordering::Relaxed);
        if (inv, pol) == self.published && self.published != (0, 0) {
            return;
        }
        self.published = (inv, pol);
        let exempt = Exemptions {
            always_allow: self.s.always_allow.clone(),
            intranet: self
                .node
                .as_ref()
                .map(|n| n.intranet.clone())
                .unwrap_or_default(),
        };
        let matcher = self.policy.as_ref().map(|p| {
            let basis = (p.blocking.clone(), exempt.clone());
            match &self.matcher_basis {
                Some((b, m)) if *b == basis => (None, Arc::new(m.for_version(p.version))),
                _ => {
                    let lists = self.lists();
                    let m = Arc::new(BlockMatcher::with_lists(p, &exempt, &mut |r| {
                        lists.open(&r.sha256)
                    }));
                    (Some(basis), m)
                }
            }
        });
        let matcher = matcher.map(|(basis, m)| {
            if let Some(basis) = basis {
                self.matcher_basis = Some((basis, m.clone()));
            }
            m
        });
        self.in_force.publish(Snapshot {
            node: self.node.clone().map(Arc::new),
            matcher,
        });
    }

    fn scope(&self) -> PolicyScope<'_> {
        PolicyScope {
            agency: self.node.as_ref().map(|n| &n.agency),
            uplink: self.node.as_ref().and_then(|n| n.uplink),
        }
    }

    fn check(&self, p: &Policy) -> Result<(), Vec<Problem>> {
        validate(p, &self.scope())
    }

    /// Put `policy` in force: the kernel when this node enforces (needs an
    /// inventory), the checks in any case.
    fn enforce(&mut self, policy: &Policy) -> Result<(), EnforceError> {
        if let (Some(e), Some(node)) = (self.s.enforcer.as_mut(), self.node.as_ref()) {
            e.enforce(policy.clone(), node.clone(), now())?;
        }
        Ok(())
    }

    fn take_inventory(&mut self, inv: Inventory, persist: bool) {
        let view = match NodeView::from_inventory(&inv, &self.s.node_id) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(version = inv.version, error = %e, "inventory refused; the previous one stays");
                return;
            }
        };
        if persist {
            if let Err(e) = state_files::write_json(&self.path(INVENTORY_FILE), &inv) {
                tracing::error!(error = %e, "cannot keep the inventory on disk");
            }
        }
        tracing::info!(
            version = inv.version,
            agency = %view.agency.code,
            units = view.agency.units.len(),
            "inventory in force"
        );
        self.node = Some(view);
        // The policy in force follows the new inventory (units, uplink).
        if let Some(p) = self.policy.clone() {
            match self.check(&p) {
                Ok(()) => {
                    if let Err(e) = self.enforce(&p) {
                        self.s.health.policy_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(error = %e, "cannot apply the policy with the new inventory");
                    }
                }
                Err(problems) => tracing::error!(
                    "the policy in force does not fit the new inventory ({}); the kernel keeps its current state",
                    simpul_proto::problem::describe(&problems)
                ),
            }
        }
        if let Some(sp) = self.pending.take() {
            self.take_signed(sp, false);
        }
        self.report_versions();
    }

    fn report_versions(&self) {
        let inv = self.node.as_ref().map_or(0, |n| n.inventory_version);
        let pol = self.policy.as_ref().map_or(0, |p| p.version);
        if let Some(link) = self.link() {
            link.set_versions(inv, pol);
        }
    }

    fn link(&self) -> Option<&Arc<LinkControl>> {
        self.s.link.as_ref()
    }

    fn lists(&self) -> ListFiles {
        ListFiles::new(&self.s.state_dir)
    }

    /// The named lists `policy` enables that this node does not hold:
    /// sha256 → name.
    fn missing_lists(&self, policy: &Policy) -> std::collections::BTreeMap<String, String> {
        let files = self.lists();
        let b = &policy.blocking;
        b.enabled_categories
            .iter()
            .filter(|c| !b.categories.contains_key(*c))
            .filter_map(|c| b.lists.get(c).map(|r| (r.sha256.clone(), c.clone())))
            .filter(|(sha, _)| !files.has(sha))
            .collect()
    }

    /// Ask for the lists `policy` lacks; the policy waits for them.
    fn fetch_lists(
        &mut self,
        sp: SignedPolicy,
        version: u64,
        restoring: bool,
        missing: std::collections::BTreeMap<String, String>,
    ) {
        let Some(link) = self.link().cloned() else {
            self.report(
                version,
                PolicyOutcome::Rejected,
                vec![],
                Some(format!(
                    "named lists not held and no collector to fetch them from: {}",
                    missing.values().cloned().collect::<Vec<_>>().join(", ")
                )),
            );
            return;
        };
        if link.declined(simpul_proto::wire::feature::LISTS) {
            self.report(
                version,
                PolicyOutcome::Rejected,
                vec![],
                Some("the policy names lists but the collector does not serve them".into()),
            );
            return;
        }
        let files = self.lists();
        for sha in missing.keys() {
            link.fetch_list(sha, files.resume_at(sha));
        }
        tracing::info!(
            version,
            lists = %missing.values().cloned().collect::<Vec<_>>().join(","),
            "policy waits for its named lists"
        );
        self.awaiting = Some(Awaiting {
            signed: sp,
            version,
            restoring,
            missing,
            last_progress: std::time::Instant::now(),
            failures: 0,
        });
    }

    fn take_list_chunk(&mut self, sha256: &str, offset: u64, total: u64, data: &[u8]) {
        let files = self.lists();
        let Some(a) = self.awaiting.as_mut() else {
            return;
        };
        let Some(name) = a.missing.get(sha256).cloned() else {
            return;
        };
        let link = self.s.link.clone();
        a.last_progress = std::time::Instant::now();
        match files.accept(sha256, offset, total, data) {
            Ok(Progress::Need(next)) => {
                if let Some(l) = &link {
                    l.fetch_list(sha256, next);
                }
            }
            Ok(Progress::Complete) => {
                tracing::info!(list = %name, sha256, bytes = total, "named list received and verified");
                a.missing.remove(sha256);
                if a.missing.is_empty() {
                    if let Some(a) = self.awaiting.take() {
                        self.take_signed(a.signed, a.restoring);
                    }
                }
            }
            Err(e) => {
                a.failures += 1;
                tracing::error!(list = %name, error = %e, failures = a.failures, "named list transfer failed");
                if a.failures >= LIST_FAILURES {
                    let version = a.version;
                    self.awaiting = None;
                    self.s
                        .health
                        .policy_failures
                        .fetch_add(1, Ordering::Relaxed);
                    self.report(
                        version,
                        PolicyOutcome::Failed,
                        vec![],
                        Some(format!("list {name}: {e}")),
                    );
                } else if let Some(l) = &link {
                    l.fetch_list(sha256, files.resume_at(sha256));
                }
            }
        }
    }

    fn list_unavailable(&mut self, sha256: &str, reason: &str) {
        let Some(a) = self.awaiting.as_ref() else {
            return;
        };
        let Some(name) = a.missing.get(sha256).cloned() else {
            return;
        };
        let version = a.version;
        self.awaiting = None;
        self.report(
            version,
            PolicyOutcome::Rejected,
            vec![],
            Some(format!(
                "list {name}: the collector cannot send it: {}",
                simpul_proto::problem::clean_text(reason, 200)
            )),
        );
    }

    /// Ask again for lists whose transfer stalled (a reconnect lost the
    /// request or its answer).
    fn resume_lists(&mut self) {
        let files = self.lists();
        let Some(a) = self.awaiting.as_mut() else {
            return;
        };
        if a.last_progress.elapsed() < LIST_STALL {
            return;
        }
        a.last_progress = std::time::Instant::now();
        if let Some(l) = &self.s.link {
            for sha in a.missing.keys() {
                tracing::info!(sha256 = %sha, "list transfer stalled; asking again");
                l.fetch_list(sha, files.resume_at(sha));
            }
        }
    }

    fn report(
        &self,
        version: u64,
        state: PolicyOutcome,
        problems: Vec<Problem>,
        error: Option<String>,
    ) {
        match state {
            PolicyOutcome::Applied => tracing::info!(version, "policy applied"),
            _ => tracing::error!(
                version,
                state = state.name(),
                error = error.as_deref().unwrap_or(""),
                problems = %problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
                "policy not applied; the previous one stays in force"
            ),
        }
        if let Some(link) = self.link() {
            link.report(PolicyState {
                version,
                state,
                problems,
                error,
                at_ms: now_ms(),
            });
        }
    }

    fn on_message(&mut self, msg: FromCollector) {
        match msg {
            FromCollector::PolicyKey(k) => self.pin_key(k),
            FromCollector::Inventory(inv) => self.take_inventory(inv, true),
            FromCollector::Policy(sp) => self.take_signed(sp, false),
            FromCollector::ListChunk {
                sha256,
                offset,
                total,
                data,
            } => self.take_list_chunk(&sha256, offset, total, &data),
            FromCollector::ListUnavailable { sha256, reason } => {
                self.list_unavailable(&sha256, &reason)
            }
        }
    }

    fn pin_key(&mut self, key: Vec<u8>) {
        if key.len() != 32 {
            tracing::error!(
                len = key.len(),
                "the collector sent a policy key that is not an Ed25519 key; ignored"
            );
            return;
        }
        match &self.key {
            Some(k) if *k == key => {}
            Some(k) => tracing::error!(
                pinned = %simpul_core::signing::key_id(k),
                offered = %simpul_core::signing::key_id(&key),
                "the collector offers another policy key than the one pinned; keeping the pinned key (see README: key rotation)"
            ),
            None => {
                if let Err(e) = state_files::write_hex(&self.path(POLICY_KEY_FILE), &key) {
                    tracing::error!(error = %e, "cannot keep the policy key on disk");
                }
                tracing::info!(key = %simpul_core::signing::key_id(&key), "collector policy key pinned");
                self.key = Some(key);
            }
        }
    }

    /// A signed policy from the collector (or the state directory when
    /// `restoring`): verify, refuse replays, validate, apply, keep, report.
    fn take_signed(&mut self, sp: SignedPolicy, restoring: bool) {
        let claimed = claimed_version(&sp);
        let Some(key) = self.key.clone() else {
            self.report(
                claimed,
                PolicyOutcome::Rejected,
                vec![],
                Some("no collector policy key is pinned yet".into()),
            );
            return;
        };
        let policy = match simpul_core::signing::verify(&sp, &key) {
            Ok(p) => p,
            Err(e) => {
                self.s
                    .health
                    .policy_failures
                    .fetch_add(1, Ordering::Relaxed);
                self.report(
                    claimed,
                    PolicyOutcome::Rejected,
                    vec![],
                    Some(e.to_string()),
                );
                return;
            }
        };
        let version = policy.version;
        if let Some(current) = &self.signed {
            let held = self.policy.as_ref().map_or(0, |p| p.version);
            if version < held {
                self.report(
                    version,
                    PolicyOutcome::Rejected,
                    vec![],
                    Some(format!(
                        "version {version} is older than the policy in force ({held}): a replay is refused"
                    )),
                );
                return;
            }
            if version == held {
                if current.policy_json == sp.policy_json {
                    self.report(version, PolicyOutcome::Applied, vec![], None);
                } else {
                    self.report(
                        version,
                        PolicyOutcome::Rejected,
                        vec![],
                        Some(format!("version {version} is in force with other content")),
                    );
                }
                return;
            }
        }
        if self.node.is_none() {
            tracing::info!(version, "policy held until the inventory arrives");
            self.pending = Some(sp);
            return;
        }
        if let Err(problems) = self.check(&policy) {
            self.s
                .health
                .policy_failures
                .fetch_add(1, Ordering::Relaxed);
            self.report(version, PolicyOutcome::Rejected, problems, None);
            return;
        }
        // A newer version replaces one still waiting for its lists.
        if self.awaiting.as_ref().is_some_and(|a| a.version <= version) {
            self.awaiting = None;
        }
        let missing = self.missing_lists(&policy);
        if !missing.is_empty() {
            self.fetch_lists(sp, version, restoring, missing);
            return;
        }
        if let Err(e) = self.enforce(&policy) {
            self.s
                .health
                .policy_failures
                .fetch_add(1, Ordering::Relaxed);
            self.report(version, PolicyOutcome::Failed, vec![], Some(e.to_string()));
            return;
        }
        if !restoring {
            if let Err(e) = state_files::write_json(&self.path(SIGNED_POLICY_FILE), &sp) {
                tracing::error!(error = %e, "cannot keep the policy on disk");
            }
        } else {
            tracing::info!(version, "last good policy restored");
        }
        let keep: Vec<String> = policy
            .blocking
            .lists
            .values()
            .map(|r| r.sha256.clone())
            .chain(self.awaiting.iter().flat_map(|a| a.missing.keys().cloned()))
            .collect();
        self.lists()
            .keep_only(&keep.iter().map(String::as_str).collect::<Vec<_>>());
        self.policy = Some(policy);
        self.signed = Some(sp);
        self.report_versions();
        // The packet path and the DNS responder take the new rules (a named
        // list's domain set built) before the collector hears `applied`.
        self.publish();
        self.report(version, PolicyOutcome::Applied, vec![], None);
    }

    /// Standalone: (re)read the inventory and policy files when they change.
    fn standalone_files(&mut self, source: &mut Source) {
        let Source::Standalone {
            inventory_file,
            policy_file,
        } = source
        else {
            return;
        };
        if self.seen_inventory.is_none() && self.seen_policy.is_none() && self.policy.is_none() {
            // First call: the last good policy, if the inventory allows.
            if let Some(path) = inventory_file.as_ref() {
                self.read_inventory_file(path);
            }
            let last_good = self.path(LAST_GOOD_FILE);
            if let Ok(text) = std::fs::read_to_string(&last_good) {
                match Policy::parse(&text)
                    .map_err(|e| e.to_string())
                    .and_then(|p| {
                        self.check(&p)
                            .map(|()| p)
                            .map_err(|pr| simpul_proto::problem::describe(&pr))
                    }) {
                    Ok(p) => match self.enforce(&p) {
                        Ok(()) => {
                            tracing::info!(version = p.version, "last good policy restored");
                            self.policy = Some(p);
                        }
                        Err(e) => {
                            self.s
                                .health
                                .policy_failures
                                .fetch_add(1, Ordering::Relaxed);
                            tracing::error!(error = %e, "cannot restore the last good policy");
                        }
                    },
                    Err(e) => {
                        tracing::error!(file = %last_good.display(), error = %e, "the last good policy is not valid any more")
                    }
                }
            }
        } else if let Some(path) = inventory_file.as_ref() {
            self.read_inventory_file(path);
        }
        if let Some(path) = policy_file.clone() {
            self.read_policy_file(&path);
        }
    }

    fn read_inventory_file(&mut self, path: &Path) {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                if self.seen_inventory.is_some() || self.node.is_none() {
                    tracing::error!(file = %path.display(), error = %e, "cannot read the inventory file");
                }
                self.seen_inventory = Some(String::new());
                return;
            }
        };
        if self.seen_inventory.as_deref() == Some(text.as_str()) {
            return;
        }
        self.seen_inventory = Some(text.clone());
        match Inventory::parse(&text) {
            Ok(inv) => self.take_inventory(inv, false),
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "inventory file refused; the previous one stays")
            }
        }
    }

    fn read_policy_file(&mut self, path: &Path) {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                if self.seen_policy.is_some() || self.policy.is_none() {
                    tracing::error!(file = %path.display(), error = %e, "cannot read the policy file");
                }
                self.seen_policy = Some(String::new());
                return;
            }
        };
        if self.seen_policy.as_deref() == Some(text.as_str()) {
            return;
        }
        self.seen_policy = Some(text.clone());
        let policy = match Policy::parse(&text) {
            Ok(p) => p,
            Err(e) => {
                self.s
                    .health
                    .policy_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(file = %path.display(), error = %e, "policy file refused; the policy in force stays");
                return;
            }
        };
        if let Err(problems) = self.check(&policy) {
            self.s
                .health
                .policy_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                file = %path.display(),
                "policy file refused; the policy in force stays: {}",
                simpul_proto::problem::describe(&problems)
            );
            return;
        }
        if let Err(e) = self.enforce(&policy) {
            self.s
                .health
                .policy_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "policy file not applied; the policy in force stays");
            return;
        }
        match policy.to_toml() {
            Ok(t) => {
                if let Err(e) = state_files::write_private(&self.path(LAST_GOOD_FILE), t.as_bytes())
                {
                    tracing::error!(error = %e, "cannot keep the last good policy on disk");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot write the policy as TOML"),
        }
        tracing::info!(version = policy.version, "policy file in force");
        self.policy = Some(policy);
    }
}

/// The version a signed policy claims, for reporting a refusal before it
/// is trusted (0 when unreadable).
fn claimed_version(sp: &SignedPolicy) -> u64 {
    serde_json::from_str::<serde_json::Value>(&sp.policy_json)
        .ok()
        .and_then(|v| v.get("version").and_then(serde_json::Value::as_u64))
        .unwrap_or(0)
}
