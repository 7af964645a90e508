//! The agencies' policies at the collector: versioned in the control store,
//! signed with the collector's Ed25519 key, validated by the same core code
//! the agents run, and pushed to every node of the agency
//! ([`Policies::subscribe`]). What each node did with them comes back as
//! policy states.
//!
//! Source for now: `[policy] dir`, one `<agency>.toml` per agency, re-read
//! when it changes; every change of content is a new version.
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
use crate::store::{ControlStore, NodePolicyState, PolicyVersion, StoreError};

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
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A stored version, parsed.
#[derive(Debug, Clone)]
pub struct InForce {
    pub stored: PolicyVersion,
    pub policy: Policy,
}

impl InForce {
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
}

impl Policies {
    /// Load (or make) the signing key and the stored versions, then the
    /// policy directory.
    pub fn start(
        data_dir: &Path,
        control: Arc<dyn ControlStore>,
        dir: Option<PathBuf>,
        inventory: &Inventories,
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
        let (tx, _) = watch::channel(0);
        let p = Policies {
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

    /// Validate `policy` for its agency against the inventory, then store it
    /// signed as the next version. Unchanged content is not a new version.
    pub fn save(
        &self,
        mut policy: Policy,
        inventory: &Inventories,
        by: &str,
        comment: &str,
        place: &str,
    ) -> Result<Arc<InForce>, PolicyError> {
        let agency = policy.agency.clone();
        let previous = self.latest(&agency);
        policy.version = previous.as_ref().map_or(0, |p| p.policy.version) + 1;
        let view = inventory.agency(&agency);
        let problems = match &view {
            None => vec![Problem::new(
                "agency",
                format!("{agency:?} is not an agency of the inventory"),
            )],
            Some(v) => {
                let scope = PolicyScope {
                    agency: Some(v),
                    uplink: inventory.agency_uplink(&agency),
                };
                validate(&policy, &scope).err().unwrap_or_default()
            }
        };
        if !problems.is_empty() {
            return Err(PolicyError::Invalid {
                place: place.to_string(),
                problems,
            });
        }
        if let Some(prev) = &previous {
            let same = Policy {
                version: prev.policy.version,
                ..policy.clone()
            };
            if same == prev.policy {
                return Ok(prev.clone());
            }
        }
        let signed = self.signer.sign(&policy);
        let stored = PolicyVersion {
            agency: agency.clone(),
            version: policy.version,
            policy_json: signed.policy_json,
            signature: signed.signature,
            key_id: signed.key_id,
            created_ms: crate::state::now_ms(),
            created_by: by.to_string(),
            comment: comment.to_string(),
        };
        self.control.save_policy(&stored)?;
        let in_force = Arc::new(InForce { stored, policy });
        self.latest
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(agency.clone(), in_force.clone());
        tracing::info!(%agency, version = in_force.policy.version, by, "policy version saved and signed");
        self.tx.send_modify(|g| *g += 1);
        Ok(in_force)
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
