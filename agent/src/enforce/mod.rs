//! Enforcement through the kernel: a policy becomes a
//! [`Plan`](simpul_core::enforce::plan::Plan) (pure, in core), which
//! [`apply`] hands to `nft` and `tc`.
//!
//! [`Enforcer`] keeps the plan in force: an unchanged plan is not applied
//! again; a plan that fails leaves the previous state in force (nftables:
//! checked with `nft -c` first and applied as one transaction; tc: the
//! previous batch is re-applied) and is reported as an [`EnforceError`].
//! Keeping the last good policy on disk is the caller's (`control`).

pub mod apply;
pub mod names;

use std::time::Instant;

use simpul_core::enforce::plan::{self, EnforceTarget, LeafQdisc, Plan, PlanError};
use simpul_core::inventory::NodeView;
use simpul_proto::policy::Policy;
use time::OffsetDateTime;

use apply::CommandError;

#[derive(Debug, thiserror::Error)]
pub enum EnforceError {
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
    target: EnforceTarget,
    leaf: LeafQdisc,
    /// The policy in force and the inventory it was planned with.
    policy: Option<(Policy, NodeView)>,
    /// The plan in force (applied by this process, or assumed: what a
    /// rollback restores).
    applied: Option<Plan>,
    applied_here: bool,
}

impl Enforcer {
    /// Detects the leaf qdisc (once).
    pub fn new(target: EnforceTarget) -> Self {
        let leaf = apply::detect_leaf_qdisc();
        Self::with_leaf(target, leaf)
    }

    pub fn with_leaf(target: EnforceTarget, leaf: LeafQdisc) -> Self {
        Self {
            target,
            leaf,
            policy: None,
            applied: None,
            applied_here: false,
        }
    }

    pub fn target(&self) -> &EnforceTarget {
        &self.target
    }

    pub fn leaf(&self) -> LeafQdisc {
        self.leaf
    }

    pub fn policy(&self) -> Option<&Policy> {
        self.policy.as_ref().map(|(p, _)| p)
    }

    /// The desired state of `policy` now, without applying it.
    pub fn plan(
        &self,
        policy: &Policy,
        node: &NodeView,
        now: OffsetDateTime,
    ) -> Result<Plan, EnforceError> {
        plan::plan(policy, node, &self.target, now, self.leaf).map_err(|cause| EnforceError::Plan {
            version: policy.version,
            cause,
        })
    }

    /// Take `policy` as the state in force without applying it (a one-shot
    /// `policy apply` rolls back to what the last run left).
    pub fn assume(&mut self, policy: Policy, node: NodeView, now: OffsetDateTime) {
        if let Ok(p) = self.plan(&policy, &node, now) {
            self.applied = Some(p);
            self.policy = Some((policy, node));
        }
    }

    /// Re-plan the policy in force for `now` (schedule windows, suspension
    /// expiry) and apply it if the kernel state would change.
    pub fn tick(&mut self, now: OffsetDateTime) -> Result<Outcome, EnforceError> {
        match self.policy.clone() {
            Some((p, node)) => self.enforce(p, node, now),
            None => Ok(Outcome::Unchanged),
        }
    }

    /// Make `policy` (already validated against `node`) the state in force.
    pub fn enforce(
        &mut self,
        policy: Policy,
        node: NodeView,
        now: OffsetDateTime,
    ) -> Result<Outcome, EnforceError> {
        let version = policy.version;
        let new = self.plan(&policy, &node, now)?;
        if self.applied_here {
            if let Some(old) = &self.applied {
                if old.same_state(&new) {
                    self.policy = Some((policy, node));
                    return Ok(Outcome::Unchanged);
                }
            }
        }
        let started = Instant::now();
        self.apply_plan(&new)?;
        let millis = started.elapsed().as_millis();
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
        self.policy = Some((policy, node));
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
                for dev in [&self.target.lan, &self.target.wan] {
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
}
