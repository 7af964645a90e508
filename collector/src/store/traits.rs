//! The storage seams, split by workload as Akvorado does: flows (append-
//! heavy, time-ranged reads, the part that outgrows one machine) and control
//! (registry, inventory, policies, incidents, notifications: small, relational,
//! transactional). The embedded SQLite store implements both; an in-memory
//! flow store serves tests; a distributed flow store goes behind the same
//! traits.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use simpul_proto::inventory::Inventory;
use simpul_proto::wire::{Health, PolicyOutcome};
use simpul_proto::Problem;

use super::access::{
    ApiToken, AuditCheck, AuditEntry, AuditFilter, NewApiToken, NewAudit, NewSession, Session, User,
};
use super::{
    AuthError, BatchOutcome, BlockedFilter, BlockedMatch, BlockedRow, BlockedSummary, FlowFilter,
    FlowPage, FlowRow, IncidentStore, Investigation, NodeBatches, NodeInfo, OverviewSite,
    RetentionStats, SeriesPoint, Step, StoreError, TopAgency, TopHost, TopSite, UnitUsage,
    UsageSeries,
};

/// Flow records, counters and blocked attempts.
pub trait FlowStore: Send + Sync {
    /// The single writer (ingest, retention); the store refuses a second one.
    fn writer(&self) -> Result<Box<dyn FlowWriter>, StoreError>;
    /// A reader for one query thread.
    fn reader(&self) -> Result<Box<dyn FlowReader>, StoreError>;
    /// Housekeeping beside the writer, about once a second (SQLite: copy
    /// the WAL into the database).
    fn maintain(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// A short name for logs and `/healthz` ("sqlite", "memory").
    fn kind(&self) -> &'static str;
}

pub trait FlowWriter: Send {
    /// Commit the batches of several nodes, each batch exactly once by
    /// (node, boot, seq): a batch at or below the boot's high-water mark is
    /// a duplicate and writes nothing. All or nothing per call.
    fn ingest_many(
        &mut self,
        groups: &[NodeBatches<'_>],
    ) -> Result<Vec<Vec<BatchOutcome>>, StoreError>;
    /// Close the flows `node` left running in boots before `boot_epoch`
    /// (the agent was killed): their last record becomes final with end
    /// reason `agent_restart`. Returns how many.
    fn close_interim(&mut self, node_id: &str, boot_epoch: u64) -> Result<u64, StoreError>;
    /// Bring the top hosts/sites up to date with everything ingested.
    fn fold_aggregates(&mut self) -> Result<u64, StoreError>;
    fn apply_retention(&mut self, now: SystemTime) -> Result<RetentionStats, StoreError>;
}

/// Traffic over a window, per agency: what the wall shows beside the
/// inventory and the policies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes over the window: [internet in, internet out, intranet in, intranet out].
    pub agencies: HashMap<String, [u64; 4]>,
    /// Sites and agencies of the last 15 minutes.
    pub top_sites: Vec<OverviewSite>,
    pub top_agencies: Vec<TopAgency>,
}

pub trait FlowReader {
    /// The store answers and its schema is one this code writes.
    fn check(&self) -> Result<(), StoreError>;
    /// Bytes per agency and scope over the `window_secs` whole seconds
    /// before `now`, and the last 15 minutes' top sites and agencies.
    fn traffic(&self, now: SystemTime, window_secs: u32) -> Result<Traffic, StoreError>;
    /// One agency's traffic (all units) over [from, to), whole steps.
    fn usage(
        &self,
        agency: &str,
        from: u64,
        to: u64,
        step: Step,
    ) -> Result<UsageSeries, StoreError>;
    /// Per-second rates of every agency from `since_sec` on (the live feed).
    fn usage_series_since(
        &self,
        since_sec: u64,
    ) -> Result<HashMap<String, Vec<SeriesPoint>>, StoreError>;
    fn top_hosts(
        &self,
        agency: Option<&str>,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<TopHost>, StoreError>;
    fn top_sites(
        &self,
        agency: Option<&str>,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<TopSite>, StoreError>;
    /// Newest first, one row per flow (its latest record).
    fn flows(&self, filter: &FlowFilter) -> Result<Vec<FlowRow>, StoreError>;
    /// One page in `filter.sort` order after `filter.cursor`, and the
    /// cursor of the next page.
    fn flow_page(&self, filter: &FlowFilter) -> Result<FlowPage, StoreError>;
    /// Totals and the top `top` hosts, peers, sites and units of the flows
    /// matching `filter` (bounded: see `Investigation::complete`).
    fn investigate(&self, filter: &FlowFilter, top: usize) -> Result<Investigation, StoreError>;
    /// Bytes per unit of one agency over [from, to), whole steps.
    fn unit_usage(
        &self,
        agency: &str,
        from: u64,
        to: u64,
        step: Step,
    ) -> Result<Vec<UnitUsage>, StoreError>;
    /// One unit's hosts by bytes.
    fn unit_hosts(
        &self,
        agency: &str,
        unit: &str,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<TopHost>, StoreError>;
    /// Blocked attempts of a client network, target or unit, newest first.
    fn blocked_matching(
        &self,
        from: u64,
        to: u64,
        agency: Option<&str>,
        m: &BlockedMatch,
        limit: usize,
    ) -> Result<Vec<BlockedRow>, StoreError>;
    fn blocked(&self, filter: &BlockedFilter) -> Result<Vec<BlockedRow>, StoreError>;
    /// Records each node's agent said its spool dropped, over all boots
    /// (counted per boot beside the high-water marks): what the nodes
    /// list shows when the registry is in another store (PostgreSQL).
    /// Stores that keep no such count answer nothing.
    fn dropped_records(&self) -> Result<HashMap<String, u64>, StoreError> {
        Ok(HashMap::new())
    }
    fn blocked_summary(&self, filter: &BlockedFilter) -> Result<BlockedSummary, StoreError>;
    /// Attempts per category (the rule's list) over the filter's range.
    /// Stores without their own query fold the newest `MAX_BLOCKED` rows.
    fn blocked_categories(
        &self,
        filter: &BlockedFilter,
    ) -> Result<Vec<super::BlockedCategory>, StoreError> {
        let rows = self.blocked(&BlockedFilter {
            method: None,
            limit: super::MAX_BLOCKED,
            ..filter.clone()
        })?;
        Ok(super::categories_of(&rows))
    }
}

/// One stored policy version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyVersion {
    pub agency: String,
    pub version: u64,
    /// The policy as JSON, exactly as signed.
    pub policy_json: String,
    pub signature: Vec<u8>,
    pub key_id: String,
    pub created_ms: u64,
    pub created_by: String,
    pub comment: String,
    /// What the agency overrides (JSON), merged over `default_version` of
    /// the default; None when the version came whole (a policy file).
    pub document: Option<String>,
    pub default_version: u64,
}

/// One version of the province-wide default policy document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultPolicyVersion {
    pub version: u64,
    /// JSON object: the fields every agency inherits.
    pub document: String,
    pub created_ms: u64,
    pub created_by: String,
    pub comment: String,
}

/// One version of a named domain list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListVersion {
    pub name: String,
    pub version: u64,
    /// SHA-256 of the canonical text (`simpul_core::lists`).
    pub sha256: String,
    pub domains: u64,
    /// Size of the stored (gzip) form agents fetch.
    pub stored_bytes: u64,
    /// Lines read and lines refused in what was uploaded or synced.
    pub lines: u64,
    pub invalid: u64,
    /// "current", "held", "superseded" or "discarded".
    pub state: String,
    /// Why a held version waits for an administrator.
    pub hold_reason: Option<String>,
    /// "upload" or "sync".
    pub origin: String,
    pub created_ms: u64,
    pub created_by: String,
    pub comment: String,
    /// Who confirmed or discarded a held version, and when.
    pub decided_ms: Option<u64>,
    pub decided_by: Option<String>,
}

/// A lease as the control store holds it (`leases`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    pub name: String,
    /// Who took it last: `collector_id#instance` for a leader's lease
    /// (outage/leader.rs), the bare collector id for a month's mailing claim.
    pub holder: String,
    /// Unix milliseconds.
    pub expires_ms: u64,
    /// Not expired yet: `holder` holds it and nobody else can take it.
    pub live: bool,
}

/// Where a list is synced from, and how the last sync went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListSource {
    pub name: String,
    pub url: String,
    /// "plain", "hosts", "adblock" or "auto".
    pub format: String,
    pub interval_secs: u64,
    /// A sync that loses more than this share of the names is held.
    pub max_shrink_percent: f64,
    pub last_attempt_ms: Option<u64>,
    pub last_ok_ms: Option<u64>,
    pub last_error: Option<String>,
    pub updated_ms: u64,
    pub updated_by: String,
}

/// What a node last said about a policy version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePolicyState {
    pub node_id: String,
    pub version: u64,
    pub state: PolicyOutcome,
    pub problems: Vec<Problem>,
    pub error: Option<String>,
    pub at_ms: u64,
}

/// Registry, enrollment, inventory, policies, incidents, notifications.
pub trait ControlStore: Send + Sync {
    fn check(&self) -> Result<(), StoreError>;

    /// Every enrolled node. Status: revoked; never (enrolled, never seen);
    /// up if seen within `heartbeat_timeout` of `now`; else down.
    fn nodes(
        &self,
        now: SystemTime,
        heartbeat_timeout: Duration,
    ) -> Result<Vec<NodeInfo>, StoreError>;
    /// Check a connecting agent's credential; its enrolled agency.
    fn authenticate(&self, node_id: &str, credential: &str) -> Result<String, AuthError>;
    /// A one-time token for `node_id` of `agency`, valid for `ttl`; only its
    /// hash is kept.
    fn create_enrollment_token(
        &self,
        agency: &str,
        node_id: &str,
        ttl: Duration,
    ) -> Result<String, StoreError>;
    /// Trade a token for a credential: (credential, agency).
    fn enroll(&self, node_id: &str, token: &str) -> Result<(String, String), AuthError>;
    fn revoke_node(&self, node_id: &str) -> Result<(), StoreError>;
    /// A Hello or heartbeat: address, versions, health (None keeps the last).
    fn node_seen(
        &self,
        node_id: &str,
        address: &str,
        version: &str,
        hostname: &str,
        health: Option<&Health>,
        at: SystemTime,
    ) -> Result<(), StoreError>;

    /// Keep `inv` as the inventory in force: a new version when its content
    /// differs from the latest (the returned inventory carries the version).
    /// Agencies and units are kept in step for the registry.
    fn save_inventory(&self, inv: &Inventory, at_ms: u64) -> Result<Inventory, StoreError>;
    fn latest_inventory(&self) -> Result<Option<Inventory>, StoreError>;

    /// Store a new policy version of `p.agency` (the version is in it).
    fn save_policy(&self, p: &PolicyVersion) -> Result<(), StoreError> {
        self.save_policies(None, std::slice::from_ref(p))
    }
    /// Store a new default version and the agency versions it made, all or
    /// nothing (a version number already taken fails the whole save).
    fn save_policies(
        &self,
        default: Option<&DefaultPolicyVersion>,
        versions: &[PolicyVersion],
    ) -> Result<(), StoreError>;
    /// The newest version of every agency.
    fn latest_policies(&self) -> Result<Vec<PolicyVersion>, StoreError>;
    /// The versions of `agency`, newest first, at most `limit`.
    fn policy_versions(&self, agency: &str, limit: usize)
        -> Result<Vec<PolicyVersion>, StoreError>;
    fn policy_version(
        &self,
        agency: &str,
        version: u64,
    ) -> Result<Option<PolicyVersion>, StoreError>;
    /// The default's versions, newest first, at most `limit`.
    fn default_policies(&self, limit: usize) -> Result<Vec<DefaultPolicyVersion>, StoreError>;
    fn set_node_policy_state(&self, s: &NodePolicyState) -> Result<(), StoreError>;
    /// Store a new list version; when it is current, the previous current
    /// one becomes superseded (one transaction).
    fn save_list_version(&self, v: &ListVersion) -> Result<(), StoreError>;
    /// Confirm (held → current, the current one superseded) or discard a
    /// held version. False when it is not held.
    fn decide_list_version(
        &self,
        name: &str,
        version: u64,
        confirm: bool,
        by: &str,
        at_ms: u64,
    ) -> Result<bool, StoreError>;
    /// Versions newest first; `name` None: every list.
    fn list_versions(
        &self,
        name: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ListVersion>, StoreError>;
    /// The versions in force and the held ones, of every list.
    fn open_list_versions(&self) -> Result<Vec<ListVersion>, StoreError>;
    fn set_list_source(&self, s: &ListSource) -> Result<(), StoreError>;
    fn remove_list_source(&self, name: &str) -> Result<bool, StoreError>;
    fn list_sources(&self) -> Result<Vec<ListSource>, StoreError>;
    fn node_policy_states(&self) -> Result<Vec<NodePolicyState>, StoreError>;

    /// Take the lease `name` for `holder` until `ttl` from now, or renew it:
    /// true when `holder` holds it now (it was free, expired, or its own).
    /// At most one holder at a time, however many collectors ask at once.
    fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError>;
    /// Give the lease up (a clean stop), so another takes it at once.
    /// False when `holder` did not hold it.
    fn release_lease(&self, name: &str, holder: &str) -> Result<bool, StoreError>;
    /// The leases by name, at most `limit`, the expired ones included (not
    /// live: nobody holds them now), judged by the clock that decides
    /// expiry in `try_lease`.
    fn leases(&self, limit: usize) -> Result<Vec<Lease>, StoreError>;

    /// The incidents and maintenance windows (one writer: the outage monitor).
    fn incidents(&self) -> Result<IncidentStore, StoreError>;
    /// The SQLite file (the metrics' size figures); PostgreSQL has none.
    fn database_path(&self) -> &std::path::Path;
    /// A handle on the notification log (the notifier opens two: one to
    /// enqueue, one for its dispatcher); the schema is this store's.
    fn notification_log(
        &self,
    ) -> Result<Box<dyn crate::notify::NotifyLog>, crate::notify::NotifyError>;
    /// "sqlite" or "postgres" (logs, `/healthz`).
    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

/// Operators, sessions, API tokens and the audit chain (`access.rs`).
pub trait AccessStore: Send + Sync {
    /// Fails if the username exists.
    fn add_user(&self, user: &User, password_hash: &str) -> Result<(), StoreError>;
    /// The account and its password hash.
    fn user(&self, username: &str) -> Result<Option<(User, String)>, StoreError>;
    fn users(&self) -> Result<Vec<User>, StoreError>;
    /// Ends the account's sessions; false for an unknown account.
    fn set_password(&self, username: &str, hash: &str, now_ms: u64) -> Result<bool, StoreError>;
    /// Disabling ends the account's sessions; false for an unknown account.
    fn set_disabled(&self, username: &str, disabled: bool, now_ms: u64)
        -> Result<bool, StoreError>;

    /// A new role ends the account's sessions; false for an unknown account.
    fn set_role(
        &self,
        username: &str,
        role: &crate::auth::Role,
        now_ms: u64,
    ) -> Result<bool, StoreError>;

    /// The cookie secret and the new session.
    fn create_session(&self, s: &NewSession<'_>) -> Result<(String, Session), StoreError>;
    /// The session a cookie secret names and its account (None: a kiosk
    /// session), in any state.
    fn session(&self, secret: &str) -> Result<Option<(Session, Option<User>)>, StoreError>;
    fn touch_session(&self, id: &str, now_ms: u64) -> Result<(), StoreError>;
    /// Open sessions (of one account, or all).
    fn sessions(&self, username: Option<&str>, now_ms: u64) -> Result<Vec<Session>, StoreError>;
    fn revoke_session(&self, id: &str, now_ms: u64) -> Result<bool, StoreError>;
    fn prune_sessions(&self, now_ms: u64) -> Result<usize, StoreError>;

    /// The bearer string (shown once) and the token.
    fn create_api_token(&self, t: &NewApiToken<'_>) -> Result<(String, ApiToken), StoreError>;
    /// The token a bearer string names, in any state.
    fn api_token(&self, token: &str) -> Result<Option<ApiToken>, StoreError>;
    fn touch_api_token(&self, id: &str, now_ms: u64) -> Result<(), StoreError>;
    fn api_tokens(&self) -> Result<Vec<ApiToken>, StoreError>;
    fn revoke_api_token(&self, id: &str, now_ms: u64) -> Result<bool, StoreError>;

    fn append_audit(&self, e: &NewAudit, at_ms: u64) -> Result<AuditEntry, StoreError>;
    fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError>;
    fn verify_audit(&self) -> Result<AuditCheck, StoreError>;
}
