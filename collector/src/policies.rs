//! The agencies' policies at the collector: versioned in the control store,
//! signed with the collector's Ed25519 key, validated by the same core code
//! the agents run, and pushed to every node of the agency
//! ([`Policies::subscribe`]). What each node did with them comes back as
//! policy states.
//!
//! Sources: the API (an agency's document of what it overrides, merged over
//! the province-wide default: `simpul_core::policy::document`), and
//! `[policy] dir`, one `<agency>.toml` per agency, re-read when it changes
//! (a file is a whole policy: it does not follow the default). Every change
//! of content is a new version; one save at a time.
//!
//! The signing key is `data_dir/policy-key.pk8` (0600), made on first
//! start; agents pin its public key when they enroll. Rotation: see README
//! ("Policy signing key").

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use simpul_core::policy::schedule::active_schedule;
use simpul_core::policy::validate::effective_allocation;
use simpul_core::policy::{validate, PolicyScope};
use simpul_core::signing::Signer;
use simpul_proto::policy::{Policy, Rates};
use simpul_proto::signed::SignedPolicy;
use simpul_proto::wire::PolicyState;
use simpul_proto::Problem;
use tokio::sync::watch;

use crate::inventory::Inventories;
use crate::store::{
    ControlStore, DefaultPolicyVersion, NodePolicyState, PolicyVersion, StoreError,
};
use serde_json::Value;
use simpul_core::policy::document;

pub const KEY_FILE: &str = "policy-key.pk8";

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy signing key {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("cannot read {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{place}: {cause}")]
    Parse {
        place: String,
        cause: simpul_proto::policy::PolicyParseError,
    },
    #[error("{place}: policy refused: {}", simpul_proto::problem::describe(.problems))]
    Invalid {
        place: String,
        problems: Vec<Problem>,
    },
    #[error("{what} was saved meanwhile (version {current}); reload and edit that version")]
    Conflict { what: String, current: u64 },
    #[error("{0:?} is not an agency of the inventory")]
    UnknownAgency(String),
    #[error("{what} has no version {version}")]
    NoVersion { what: String, version: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

/// A stored version, parsed.
#[derive(Debug, Clone)]
pub struct InForce {
    pub stored: PolicyVersion,
    pub policy: Policy,
}

impl InForce {
    /// The agency's own document: what it overrides, or for a version that
    /// came whole (a file) the whole policy.
    pub fn document(&self) -> Value {
        self.stored
            .document
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or_else(|| whole_document(&self.policy))
    }

    /// Whether this version follows the default (saved as a document).
    pub fn follows_default(&self) -> bool {
        self.stored.document.is_some()
    }

    pub fn signed(&self) -> SignedPolicy {
        SignedPolicy {
            policy_json: self.stored.policy_json.clone(),
            signature: self.stored.signature.clone(),
            key_id: self.stored.key_id.clone(),
        }
    }
}

pub struct Policies {
    signer: Signer,
    control: Arc<dyn ControlStore>,
    dir: Option<PathBuf>,
    latest: RwLock<HashMap<String, Arc<InForce>>>,
    states: RwLock<HashMap<String, NodePolicyState>>,
    /// Bumped on every new version (sessions push what changed).
    tx: watch::Sender<u64>,
    /// File contents last read, by path.
    seen: Mutex<HashMap<PathBuf, String>>,
    /// The province-wide default (version 0: none saved, an empty document).
    default: RwLock<Arc<DefaultPolicyVersion>>,
    /// One save at a time: versions are read, checked and written together.
    saving: Mutex<()>,
    /// The named lists enabled categories refer to.
    lists: Arc<crate::lists::Lists>,
}

/// What a save made.
pub struct Saved {
    pub in_force: Arc<InForce>,
    /// False when the content equals the version in force (no new version).
    pub changed: bool,
}

/// A default saved, and the agencies' versions it made.
pub struct DefaultSaved {
    pub default: Arc<DefaultPolicyVersion>,
    pub agencies: Vec<Arc<InForce>>,
}

/// A document checked against the version in force, nothing saved.
pub struct Preview {
    pub problems: Vec<Problem>,
    /// The merged policy it would make (None when it does not read).
    pub effective: Option<Policy>,
    /// Leaf by leaf, against the effective policy in force.
    pub changes: Vec<document::Change>,
}

impl Policies {
    /// Load (or make) the signing key and the stored versions, then the
    /// policy directory.
    pub fn start(
        data_dir: &Path,
        control: Arc<dyn ControlStore>,
        dir: Option<PathBuf>,
        inventory: &Inventories,
        lists: Arc<crate::lists::Lists>,
    ) -> Result<Policies, PolicyError> {
        let signer = load_or_make_key(&data_dir.join(KEY_FILE))?;
        let mut latest = HashMap::new();
        for stored in control.latest_policies()? {
            match Policy::from_json(&stored.policy_json) {
                Ok(policy) => {
                    latest.insert(stored.agency.clone(), Arc::new(InForce { stored, policy }));
                }
                Err(e) => {
                    tracing::error!(agency = %stored.agency, version = stored.version, error = %e, "a stored policy does not parse; ignored")
                }
            }
        }
        let states = control
            .node_policy_states()?
            .into_iter()
            .map(|s| (s.node_id.clone(), s))
            .collect();
        let default = control
            .default_policies(1)?
            .pop()
            .unwrap_or_else(empty_default);
        let (tx, _) = watch::channel(0);
        let p = Policies {
            default: RwLock::new(Arc::new(default)),
            saving: Mutex::new(()),
            lists,
            signer,
            control,
            dir,
            latest: RwLock::new(latest),
            states: RwLock::new(states),
            tx,
            seen: Mutex::new(HashMap::new()),
        };
        for e in p.reload_dir(inventory) {
            tracing::error!(error = %e, "policy file refused");
        }
        Ok(p)
    }

    /// The public half of the signing key (sent to agents at enrollment).
    pub fn public_key(&self) -> Vec<u8> {
        self.signer.public_key()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }

    /// The newest version of `agency`.
    pub fn latest(&self, agency: &str) -> Option<Arc<InForce>> {
        self.latest
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(agency)
            .cloned()
    }

    /// The agency's allocation in force at `now` (schedule windows
    /// included): (download, upload).
    pub fn allocation_at(&self, agency: &str, now: time::OffsetDateTime) -> Option<(Rates, Rates)> {
        let p = self.latest(agency)?;
        let a = effective_allocation(&p.policy.allocation, active_schedule(&p.policy, now));
        Some((a.download, a.upload))
    }

    /// The agency's allocation in force over `[from_s, to_s)`, sampled every
    /// `step_s` seconds (schedule windows and every version saved in the
    /// range), as runs: `(start, download, upload)` whenever it changes.
    /// Before the first version: no run.
    pub fn allocation_runs(
        &self,
        agency: &str,
        from_s: u64,
        to_s: u64,
        step_s: u64,
    ) -> Result<Vec<(u64, Rates, Rates)>, PolicyError> {
        // Parse only the versions that matter: the one in force at
        // `from_s` and those saved before `to_s`.
        let mut stored: Vec<(u64, u64, String)> = self
            .control
            .policy_versions(agency, usize::MAX)?
            .into_iter()
            .map(|v| (v.created_ms / 1000, v.version, v.policy_json))
            .filter(|(t, ..)| *t < to_s)
            .collect();
        stored.sort_by_key(|(t, v, _)| (*t, *v));
        let first = stored
            .partition_point(|(t, ..)| *t <= from_s)
            .saturating_sub(1);
        let versions: Vec<(u64, Policy)> = stored
            .drain(first..)
            .filter_map(|(t, _, json)| Some((t, Policy::from_json(&json).ok()?)))
            .collect();
        // At most 10,000 samples whatever the range asked.
        let step = step_s.max(1).max(to_s.saturating_sub(from_s) / 10_000 + 1);
        // The step grid, and every version's own time in the range (a save
        // inside the newest, unfinished step shows at once).
        let mut times: Vec<u64> = (0..)
            .map(|i| from_s - from_s % step + i * step)
            .take_while(|t| *t < to_s)
            .collect();
        times.extend(
            versions
                .iter()
                .map(|(t, _)| *t)
                .filter(|t| (from_s..to_s).contains(t)),
        );
        times.sort_unstable();
        times.dedup();
        let mut runs: Vec<(u64, Rates, Rates)> = Vec::new();
        for t in times {
            let at = versions.partition_point(|(created, _)| *created <= t);
            if at > 0 {
                let p = &versions[at - 1].1;
                let when = time::OffsetDateTime::from_unix_timestamp(i64::try_from(t).unwrap_or(0))
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
                let a = effective_allocation(&p.allocation, active_schedule(p, when));
                if runs
                    .last()
                    .is_none_or(|(_, d, u)| *d != a.download || *u != a.upload)
                {
                    runs.push((t, a.download, a.upload));
                }
            }
        }
        Ok(runs)
    }

    /// Store `policy` whole (a policy file: it does not follow the default)
    /// as the agency's next version. Unchanged content is not a new version.
    pub fn save(
        &self,
        mut policy: Policy,
        inventory: &Inventories,
        by: &str,
        comment: &str,
        place: &str,
    ) -> Result<Arc<InForce>, PolicyError> {
        let _one = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        let agency = policy.agency.clone();
        let previous = self.latest(&agency);
        policy.version = previous.as_ref().map_or(0, |p| p.policy.version) + 1;
        self.resolve_lists(&mut policy);
        check(&policy, inventory).map_err(|problems| PolicyError::Invalid {
            place: place.to_string(),
            problems,
        })?;
        if let Some(prev) = previous.filter(|p| same_policy(&p.policy, &policy)) {
            return Ok(prev);
        }
        let v = self.signed_version(policy, None, by, comment);
        self.control.save_policy(&v.stored)?;
        Ok(self.publish(None, vec![v]).remove(0))
    }

    /// The default in force (version 0: none saved yet).
    pub fn default_policy(&self) -> Arc<DefaultPolicyVersion> {
        self.default
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The default's document as JSON.
    pub fn default_document(&self) -> Value {
        parse_document(&self.default_policy().document)
    }

    /// What `agency` would enforce before any save of its own: the default
    /// with an empty document (None when the default alone is no policy).
    pub fn derived(&self, agency: &str) -> Result<Policy, Vec<Problem>> {
        document::effective(
            &self.default_document(),
            &Value::Object(Default::default()),
            agency,
            0,
        )
        .map(|mut p| {
            self.resolve_lists(&mut p);
            p
        })
    }

    /// Save `doc` as `agency`'s own document, editing `base` (its version
    /// in force, 0 before any): 409 when another save came first.
    pub fn put_agency(
        &self,
        agency: &str,
        base: u64,
        doc: &Value,
        inventory: &Inventories,
        by: &str,
        comment: &str,
    ) -> Result<Saved, PolicyError> {
        let _one = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        if inventory.agency(agency).is_none() {
            return Err(PolicyError::UnknownAgency(agency.to_string()));
        }
        let previous = self.latest(agency);
        let current = previous.as_ref().map_or(0, |p| p.policy.version);
        if base != current {
            return Err(PolicyError::Conflict {
                what: format!("the policy of {agency}"),
                current,
            });
        }
        let invalid = |problems| PolicyError::Invalid {
            place: "policy".into(),
            problems,
        };
        let doc = document::clean_document(doc, false, agency).map_err(invalid)?;
        let default = self.default_policy();
        let mut policy = document::effective(
            &parse_document(&default.document),
            &doc,
            agency,
            current + 1,
        )
        .map_err(invalid)?;
        self.resolve_lists(&mut policy);
        check(&policy, inventory).map_err(invalid)?;
        if let Some(prev) = previous.filter(|p| {
            p.follows_default() && p.document() == doc && same_policy(&p.policy, &policy)
        }) {
            return Ok(Saved {
                in_force: prev,
                changed: false,
            });
        }
        let v = self.signed_version(
            policy,
            Some((doc.to_string(), default.version)),
            by,
            comment,
        );
        self.control.save_policy(&v.stored)?;
        Ok(Saved {
            in_force: self.publish(None, vec![v]).remove(0),
            changed: true,
        })
    }

    /// Save `doc` as the province-wide default, editing `base`; every
    /// agency that follows the default (and every agency of the inventory
    /// without a version yet) gets a new version where its policy changes.
    /// Refused whole when any agency's merged policy would be invalid.
    pub fn put_default(
        &self,
        base: u64,
        doc: &Value,
        inventory: &Inventories,
        by: &str,
        comment: &str,
    ) -> Result<DefaultSaved, PolicyError> {
        let _one = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.default_policy();
        if base != current.version {
            return Err(PolicyError::Conflict {
                what: "the default policy".into(),
                current: current.version,
            });
        }
        let doc =
            document::clean_document(doc, true, "").map_err(|problems| PolicyError::Invalid {
                place: "policy".into(),
                problems,
            })?;
        let default = DefaultPolicyVersion {
            version: current.version + 1,
            document: doc.to_string(),
            created_ms: crate::state::now_ms(),
            created_by: by.to_string(),
            comment: comment.to_string(),
        };
        let mut problems = Vec::new();
        let mut versions = Vec::new();
        for code in inventory.current().agencies.iter().map(|a| a.code.clone()) {
            let previous = self.latest(&code);
            let own = match &previous {
                Some(p) if !p.follows_default() => continue,
                Some(p) => p.document(),
                None => Value::Object(Default::default()),
            };
            let next = previous.as_ref().map_or(0, |p| p.policy.version) + 1;
            let merged = document::effective(&doc, &own, &code, next).and_then(|mut p| {
                self.resolve_lists(&mut p);
                check(&p, inventory).map(|()| p)
            });
            match merged {
                Err(ps) => problems.extend(
                    ps.into_iter()
                        .map(|p| Problem::new(format!("agencies.{code}: {}", p.place), p.message)),
                ),
                Ok(p)
                    if previous
                        .as_ref()
                        .is_some_and(|q| same_policy(&q.policy, &p)) => {}
                Ok(p) => versions.push(self.signed_version(
                    p,
                    Some((own.to_string(), default.version)),
                    by,
                    &format!("default v{}: {comment}", default.version),
                )),
            }
        }
        if !problems.is_empty() {
            return Err(PolicyError::Invalid {
                place: "default policy".into(),
                problems,
            });
        }
        let stored: Vec<PolicyVersion> = versions.iter().map(|v| v.stored.clone()).collect();
        self.control.save_policies(Some(&default), &stored)?;
        let default = Arc::new(default);
        let agencies = self.publish(Some(default.clone()), versions);
        Ok(DefaultSaved { default, agencies })
    }

    /// Check `doc` for `agency` without saving: its problems, the merged
    /// policy and what changes against the version in force.
    pub fn preview(&self, agency: &str, doc: &Value, inventory: &Inventories) -> Preview {
        let previous = self.latest(agency);
        let next = previous.as_ref().map_or(0, |p| p.policy.version) + 1;
        let before = previous
            .as_ref()
            .map(|p| policy_value(&p.policy))
            .unwrap_or_else(|| Value::Object(Default::default()));
        let merged = document::clean_document(doc, false, agency)
            .and_then(|d| document::effective(&self.default_document(), &d, agency, next))
            .map(|mut p| {
                self.resolve_lists(&mut p);
                p
            });
        match merged {
            Err(problems) => Preview {
                problems,
                effective: None,
                changes: Vec::new(),
            },
            Ok(p) => Preview {
                problems: check(&p, inventory).err().unwrap_or_default(),
                changes: document::diff(&before, &policy_value(&p)),
                effective: Some(p),
            },
        }
    }

    /// `agency`'s versions, newest first.
    pub fn versions(&self, agency: &str, limit: usize) -> Result<Vec<PolicyVersion>, PolicyError> {
        Ok(self.control.policy_versions(agency, limit)?)
    }

    pub fn version(&self, agency: &str, version: u64) -> Result<PolicyVersion, PolicyError> {
        self.control
            .policy_version(agency, version)?
            .ok_or_else(|| PolicyError::NoVersion {
                what: format!("the policy of {agency}"),
                version,
            })
    }

    pub fn default_versions(&self, limit: usize) -> Result<Vec<DefaultPolicyVersion>, PolicyError> {
        Ok(self.control.default_policies(limit)?)
    }

    pub fn default_version(&self, version: u64) -> Result<DefaultPolicyVersion, PolicyError> {
        self.control
            .default_policies(usize::MAX)?
            .into_iter()
            .find(|d| d.version == version)
            .ok_or_else(|| PolicyError::NoVersion {
                what: "the default policy".into(),
                version,
            })
    }

    /// Point each enabled category that is not defined in the policy itself
    /// at the named list's version in force (by content hash).
    fn resolve_lists(&self, p: &mut Policy) {
        let b = &mut p.blocking;
        b.lists.clear();
        for c in &b.enabled_categories {
            if b.categories.contains_key(c) {
                continue;
            }
            if let Some(r) = self.lists.reference(c) {
                b.lists.insert(c.clone(), r);
            }
        }
    }

    /// A named list's version in force changed: every agency whose policy
    /// enables it gets a new version pointing at the new content.
    pub fn lists_changed(
        &self,
        inventory: &Inventories,
        by: &str,
        why: &str,
    ) -> Result<Vec<Arc<InForce>>, PolicyError> {
        let _one = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        let latest: Vec<Arc<InForce>> = self
            .latest
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let mut versions = Vec::new();
        for prev in latest {
            let mut p = prev.policy.clone();
            self.resolve_lists(&mut p);
            if p.blocking.lists == prev.policy.blocking.lists {
                continue;
            }
            p.version = prev.policy.version + 1;
            if let Err(problems) = check(&p, inventory) {
                tracing::error!(agency = %p.agency, problems = %simpul_proto::problem::describe(&problems), "a list change makes the agency's policy invalid; its version in force stays");
                continue;
            }
            let document = prev
                .stored
                .document
                .clone()
                .map(|d| (d, prev.stored.default_version));
            versions.push(self.signed_version(p, document, by, why));
        }
        if versions.is_empty() {
            return Ok(Vec::new());
        }
        let stored: Vec<PolicyVersion> = versions.iter().map(|v| v.stored.clone()).collect();
        self.control.save_policies(None, &stored)?;
        Ok(self.publish(None, versions))
    }

    /// A new version, signed (not stored yet).
    fn signed_version(
        &self,
        policy: Policy,
        document: Option<(String, u64)>,
        by: &str,
        comment: &str,
    ) -> InForce {
        let signed = self.signer.sign(&policy);
        let (document, default_version) = match document {
            Some((d, v)) => (Some(d), v),
            None => (None, self.default_policy().version),
        };
        InForce {
            stored: PolicyVersion {
                agency: policy.agency.clone(),
                version: policy.version,
                policy_json: signed.policy_json,
                signature: signed.signature,
                key_id: signed.key_id,
                created_ms: crate::state::now_ms(),
                created_by: by.to_string(),
                comment: comment.to_string(),
                document,
                default_version,
            },
            policy,
        }
    }

    /// Make stored versions the ones in force and tell the sessions.
    fn publish(
        &self,
        default: Option<Arc<DefaultPolicyVersion>>,
        versions: Vec<InForce>,
    ) -> Vec<Arc<InForce>> {
        if let Some(d) = default {
            tracing::info!(version = d.version, by = %d.created_by, "default policy saved");
            *self.default.write().unwrap_or_else(|p| p.into_inner()) = d;
        }
        let mut out = Vec::new();
        let mut latest = self.latest.write().unwrap_or_else(|p| p.into_inner());
        for v in versions {
            let v = Arc::new(v);
            tracing::info!(agency = %v.policy.agency, version = v.policy.version, by = %v.stored.created_by, "policy version saved and signed");
            latest.insert(v.policy.agency.clone(), v.clone());
            out.push(v);
        }
        drop(latest);
        self.tx.send_modify(|g| *g += 1);
        out
    }

    /// Re-read `[policy] dir`: each changed `<agency>.toml` becomes a new
    /// version. Returns the files refused (the versions in force stay).
    pub fn reload_dir(&self, inventory: &Inventories) -> Vec<PolicyError> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        let (files, mut errors) = read_dir(dir);
        for (path, text) in files {
            {
                let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                if seen.get(&path) == Some(&text) {
                    continue;
                }
                seen.insert(path.clone(), text.clone());
            }
            let place = path.display().to_string();
            let result = parse_file(&path, &text)
                .and_then(|p| self.save(p, inventory, "policy-dir", &place, &place));
            if let Err(e) = result {
                errors.push(e);
            }
        }
        errors
    }

    /// Check every policy file of `dir` against the inventory without
    /// saving anything (`simpul-collector check`).
    pub fn check_dir(dir: &Path, inventory: &Inventories) -> Vec<PolicyError> {
        let (files, mut errors) = read_dir(dir);
        for (path, text) in files {
            let place = path.display().to_string();
            let checked = parse_file(&path, &text).and_then(|mut p| {
                p.version = p.version.max(1);
                let problems = match inventory.agency(&p.agency) {
                    None => vec![Problem::new(
                        "agency",
                        format!("{:?} is not an agency of the inventory", p.agency),
                    )],
                    Some(v) => validate(
                        &p,
                        &PolicyScope {
                            agency: Some(&v),
                            uplink: inventory.agency_uplink(&p.agency),
                        },
                    )
                    .err()
                    .unwrap_or_default(),
                };
                if problems.is_empty() {
                    Ok(())
                } else {
                    Err(PolicyError::Invalid {
                        place: place.clone(),
                        problems,
                    })
                }
            });
            if let Err(e) = checked {
                errors.push(e);
            }
        }
        errors
    }

    /// What `node` said about a version (kept, and shown on the nodes API).
    pub fn set_state(&self, node: &str, s: &PolicyState) {
        let state = NodePolicyState {
            node_id: node.to_string(),
            version: s.version,
            state: s.state,
            problems: s.problems.clone(),
            error: s.error.clone(),
            at_ms: s.at_ms,
        };
        if let Err(e) = self.control.set_node_policy_state(&state) {
            tracing::warn!(node, error = %e, "cannot keep the node's policy state");
        }
        self.states
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node.to_string(), state);
    }

    pub fn state(&self, node: &str) -> Option<NodePolicyState> {
        self.states
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(node)
            .cloned()
    }
}

/// The `.toml` and `.json` files of `dir`, in name order, with their text.
fn read_dir(dir: &Path) -> (Vec<(PathBuf, String)>, Vec<PolicyError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(cause) => {
            return (
                Vec::new(),
                vec![PolicyError::Read {
                    path: dir.to_owned(),
                    cause,
                }],
            )
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml" || x == "json"))
        .collect();
    paths.sort();
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match std::fs::read_to_string(&path) {
            Ok(t) => files.push((path, t)),
            Err(cause) => errors.push(PolicyError::Read { path, cause }),
        }
    }
    (files, errors)
}

/// A policy file, which must be named for its agency (`dinkes.toml`).
fn parse_file(path: &Path, text: &str) -> Result<Policy, PolicyError> {
    let place = path.display().to_string();
    let p = Policy::parse(text).map_err(|cause| PolicyError::Parse {
        place: place.clone(),
        cause,
    })?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if p.agency != stem {
        return Err(PolicyError::Invalid {
            place,
            problems: vec![Problem::new(
                "agency",
                format!("{:?} in a file named for {stem:?}", p.agency),
            )],
        });
    }
    Ok(p)
}

/// The signing key at `path`, made (0600) when absent.
fn load_or_make_key(path: &Path) -> Result<Signer, PolicyError> {
    let key_err = |message: String| PolicyError::Key {
        path: path.to_owned(),
        message,
    };
    match std::fs::read(path) {
        Ok(bytes) => Signer::from_pkcs8(&bytes).map_err(|e| key_err(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let pkcs8 = Signer::generate_pkcs8().map_err(|e| key_err(e.to_string()))?;
            write_private(path, &pkcs8).map_err(|e| key_err(e.to_string()))?;
            let signer = Signer::from_pkcs8(&pkcs8).map_err(|e| key_err(e.to_string()))?;
            tracing::info!(
                file = %path.display(),
                key = %simpul_core::signing::key_id(&signer.public_key()),
                "policy signing key made"
            );
            Ok(signer)
        }
        Err(e) => Err(key_err(e.to_string())),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        crate::store::private_dir(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// The default before any save: an empty document.
fn empty_default() -> DefaultPolicyVersion {
    DefaultPolicyVersion {
        version: 0,
        document: "{}".into(),
        created_ms: 0,
        created_by: String::new(),
        comment: String::new(),
    }
}

/// A stored document (always an object; a corrupt one reads as empty).
pub fn parse_document(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => v,
        _ => Value::Object(Default::default()),
    }
}

/// A policy as JSON, for diffs and answers.
pub fn policy_value(p: &Policy) -> Value {
    serde_json::to_value(p).unwrap_or(Value::Null)
}

/// A whole policy as a document: without what the collector sets.
fn whole_document(p: &Policy) -> Value {
    let mut v = policy_value(p);
    if let Value::Object(m) = &mut v {
        m.remove("version");
        m.remove("agency");
    }
    v
}

/// Equal but for the version number.
fn same_policy(a: &Policy, b: &Policy) -> bool {
    a == &Policy {
        version: a.version,
        ..b.clone()
    }
}

/// The same checks the agent runs, against the inventory's agency and the
/// smallest uplink among its nodes.
fn check(policy: &Policy, inventory: &Inventories) -> Result<(), Vec<Problem>> {
    match inventory.agency(&policy.agency) {
        None => Err(vec![Problem::new(
            "agency",
            format!("{:?} is not an agency of the inventory", policy.agency),
        )]),
        Some(v) => validate(
            policy,
            &PolicyScope {
                agency: Some(&v),
                uplink: inventory.agency_uplink(&policy.agency),
            },
        ),
    }
}
