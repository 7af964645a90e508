//! Enforcement through the kernel: the policy becomes a [`plan::Plan`] (pure),
//! which [`apply`] hands to `nft` and `tc`.
//!
//! [`Enforcer`] keeps the last applied plan: an unchanged plan is not applied
//! again; a plan that fails leaves the previous state in force (nftables:
//! checked with `nft -c` first and applied as one transaction; tc: the
//! previous batch is re-applied) and is reported as an [`EnforceError`]. The
//! last good policy is persisted to `state_dir/last-good-policy.toml` so a
//! restarting agent enforces it before anything else.

pub mod apply;
pub mod names;
pub mod plan;

use std::path::{Path, PathBuf};
use std::time::Instant;

use simpul_proto::policy::Policy;
use time::OffsetDateTime;

use crate::config::AgentConfig;
use crate::policy::load::{parse_policy, PolicyError};
use apply::CommandError;
use plan::{LeafQdisc, Plan, PlanError};

pub const LAST_GOOD_FILE: &str = "last-good-policy.toml";

#[derive(Debug, thiserror::Error)]
pub enum EnforceError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("cannot plan policy {version}: {cause}")]
    Plan { version: u64, cause: PlanError },
    #[error("nftables refused policy {version}; nothing changed: {cause}")]
    NftRejected { version: u64, cause: CommandError },
    #[error("tc failed for policy {version}: {cause}; {restored}")]
    Tc {
        version: u64,
        cause: CommandError,
        restored: String,
    },
    #[error("nftables failed for policy {version}: {cause}; {restored}")]
    Nft {
        version: u64,
        cause: CommandError,
        restored: String,
    },
    #[error("cannot save the last good policy to {path}: {cause}")]
    Persist {
        path: PathBuf,
        cause: std::io::Error,
    },
}

/// What [`Enforcer::enforce`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied {
        version: u64,
        schedule: Option<String>,
        millis: u128,
    },
    Unchanged,
}

pub struct Enforcer {
    cfg: AgentConfig,
    leaf: LeafQdisc,
    policy: Option<Policy>,
    /// The plan in force (applied by this process, or the last good one
    /// found on disk, which is what a rollback restores).
    applied: Option<Plan>,
    applied_here: bool,
}

impl Enforcer {
    /// Detects the leaf qdisc (once).
    pub fn new(cfg: AgentConfig) -> Self {
        let leaf = apply::detect_leaf_qdisc();
        Self::with_leaf(cfg, leaf)
    }

    pub fn with_leaf(cfg: AgentConfig, leaf: LeafQdisc) -> Self {
        Self {
            cfg,
            leaf,
            policy: None,
            applied: None,
            applied_here: false,
        }
    }

    pub fn config(&self) -> &AgentConfig {
        &self.cfg
    }

    pub fn leaf(&self) -> LeafQdisc {
        self.leaf
    }

    pub fn policy(&self) -> Option<&Policy> {
        self.policy.as_ref()
    }

    pub fn last_good_path(&self) -> PathBuf {
        self.cfg.enforce.state_dir().join(LAST_GOOD_FILE)
    }

    /// The last good policy on disk, validated against the current config;
    /// `Ok(None)` when there is none.
    pub fn load_last_good(&self) -> Result<Option<Policy>, PolicyError> {
        let path = self.last_good_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => parse_policy(&text, &path, &self.cfg).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(cause) => Err(PolicyError::Read { path, cause }),
        }
    }

    /// Take the last good policy on disk as the state in force without
    /// applying it (a one-shot `policy apply` rolls back to it on failure).
    pub fn assume_last_good(&mut self, now: OffsetDateTime) {
        if let Ok(Some(p)) = self.load_last_good() {
            if let Ok(plan) = plan::plan(&p, &self.cfg, now, self.leaf) {
                self.applied = Some(plan);
                self.policy = Some(p);
            }
        }
    }

    /// Apply the last good policy on disk, if any (agent start).
    pub fn restore_last_good(&mut self, now: OffsetDateTime) -> Result<Option<u64>, EnforceError> {
        match self.load_last_good()? {
            Some(p) => {
                let v = p.version;
                self.enforce(p, now)?;
                Ok(Some(v))
            }
            None => Ok(None),
        }
    }

    /// Re-plan the current policy for `now` (schedule windows, suspension
    /// expiry) and apply it if the kernel state would change.
    pub fn tick(&mut self, now: OffsetDateTime) -> Result<Outcome, EnforceError> {
        match self.policy.clone() {
            Some(p) => self.enforce(p, now),
            None => Ok(Outcome::Unchanged),
        }
    }

    /// Make `policy` (already validated) the state in force.
    pub fn enforce(
        &mut self,
        policy: Policy,
        now: OffsetDateTime,
    ) -> Result<Outcome, EnforceError> {
        let version = policy.version;
        let new = plan::plan(&policy, &self.cfg, now, self.leaf)
            .map_err(|cause| EnforceError::Plan { version, cause })?;
        if self.applied_here {
            if let Some(old) = &self.applied {
                if old.same_state(&new) {
                    self.policy = Some(policy);
                    return Ok(Outcome::Unchanged);
                }
            }
        }
        let started = Instant::now();
        self.apply_plan(&new)?;
        let millis = started.elapsed().as_millis();
        let persist = self.persist(&policy);
        tracing::info!(
            version,
            agency = %policy.agency,
            schedule = new.schedule.as_deref().unwrap_or("-"),
            suspended_agency = new.agency_suspended,
            suspended_units = %new.suspended_units.join(","),
            classes = new.classes.len(),
            millis = millis as u64,
            "policy applied"
        );
        let schedule = new.schedule.clone();
        self.applied = Some(new);
        self.applied_here = true;
        self.policy = Some(policy);
        persist?;
        Ok(Outcome::Applied {
            version,
            schedule,
            millis,
        })
    }

    fn apply_plan(&self, new: &Plan) -> Result<(), EnforceError> {
        let version = new.policy_version;
        apply::nft_check(&new.nft).map_err(|cause| EnforceError::NftRejected { version, cause })?;
        if let Err(cause) = apply::tc_apply(&new.tc) {
            let restored = self.restore_tc();
            return Err(EnforceError::Tc {
                version,
                cause,
                restored,
            });
        }
        if let Err(cause) = apply::nft_apply(&new.nft) {
            let restored = self.restore_tc();
            return Err(EnforceError::Nft {
                version,
                cause,
                restored,
            });
        }
        Ok(())
    }

    /// Put the previous tc state back after a failed apply; says what happened.
    fn restore_tc(&self) -> String {
        match &self.applied {
            Some(prev) => match apply::tc_apply(&prev.tc) {
                Ok(()) => format!(
                    "the previous shaping (policy {}) is back in force",
                    prev.policy_version
                ),
                Err(e) => {
                    tracing::error!(error = %e, "cannot restore the previous shaping");
                    format!("restoring the previous shaping failed too: {e}")
                }
            },
            None => {
                let mut msgs = Vec::new();
                for dev in [
                    &self.cfg.enforce.lan_interface,
                    &self.cfg.enforce.wan_interface,
                ]
                .into_iter()
                .flatten()
                {
                    if let Err(e) = apply::tc_clear(dev) {
                        msgs.push(format!("{dev}: {e}"));
                    }
                }
                if msgs.is_empty() {
                    "no previous shaping: the interfaces are back to their default qdisc".into()
                } else {
                    format!(
                        "clearing the half-applied shaping failed: {}",
                        msgs.join("; ")
                    )
                }
            }
        }
    }

    fn persist(&self, policy: &Policy) -> Result<(), EnforceError> {
        let path = self.last_good_path();
        let text = policy.to_toml().map_err(|e| EnforceError::Persist {
            path: path.clone(),
            cause: std::io::Error::other(e),
        })?;
        write_atomic(&path, text.as_bytes()).map_err(|cause| EnforceError::Persist { path, cause })
    }
}

/// Write via a temporary file and rename, so a crash leaves the old or the
/// new file, never half of one.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("toml.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}
