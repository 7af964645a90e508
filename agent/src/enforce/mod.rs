//! Enforcement through the kernel: a policy becomes a
//! [`Plan`](simpul_core::enforce::plan::Plan) (pure, in core), which
//! [`apply`] hands to `nft` and `tc`.
//!
//! [`Enforcer`] keeps the plan in force: an unchanged plan is not applied
//! again; a plan whose HTB trees differ from the ones in force only in rates
//! changes the classes in place, anything else rebuilds the trees (see
//! [`apply`]); a plan that fails leaves the previous state in force
//! (nftables: checked with `nft -c` first and applied as one transaction;
//! tc: a failed in-place change falls back to the rebuild, a failed rebuild
//! re-applies the previous full batch) and is reported as an
//! [`EnforceError`].
//! Keeping the last good policy on disk is the caller's (`control`).

pub mod apply;
pub mod dns_live;
pub mod names;
pub mod netlink;
pub mod offloads;
pub mod reset;

use std::time::Instant;

use simpul_core::enforce::inplace;
use simpul_core::enforce::plan::{self, EnforceTarget, LeafQdisc, Plan, PlanError};
use simpul_core::inventory::NodeView;
use simpul_proto::policy::Policy;
use time::OffsetDateTime;

use crate::config::OffloadMode;
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
        shaping: Shaping,
    },
    Unchanged,
}

/// How an applied plan reached the HTB trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shaping {
    /// `tc class change` (and `qdisc change`) lines on the trees in force.
    InPlace { lines: usize },
    /// Both trees rebuilt whole (`why`: what ruled out the in-place change).
    Rebuilt { why: String },
    /// The trees in force already are the plan's (only nft changed).
    Unchanged,
}

impl std::fmt::Display for Shaping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shaping::InPlace { lines: 1 } => f.write_str("rates changed in place (1 tc line)"),
            Shaping::InPlace { lines } => write!(f, "rates changed in place ({lines} tc lines)"),
            Shaping::Rebuilt { why } => write!(f, "tree rebuilt ({why})"),
            Shaping::Unchanged => f.write_str("shaping unchanged"),
        }
    }
}

pub struct Enforcer {
    target: EnforceTarget,
    leaf: LeafQdisc,
    /// The policy in force and the inventory it was planned with.
    policy: Option<(Policy, NodeView)>,
    /// The plan in force (applied by this process, or assumed: what a
    /// rollback restores).
    applied: Option<Plan>,
    /// `applied` was applied by this process and is what the kernel holds
    /// (cleared when a rollback fails).
    applied_here: bool,
    /// Rebuild the trees even when only rates changed.
    always_rebuild: bool,
    /// What to do with GRO/GSO/TSO on the shaped interfaces.
    offload_mode: OffloadMode,
    /// `off`: this process turned them off (again after every rebuild: a
    /// recreated interface has its defaults back).
    offloads_off: bool,
    /// `auto`: what the agent turned off, per interface (this run and,
    /// with [`Enforcer::offload_state`], earlier ones).
    offloads_auto: offloads::Auto,
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
            always_rebuild: false,
            offload_mode: OffloadMode::Auto,
            offloads_off: false,
            offloads_auto: offloads::Auto::default(),
        }
    }

    /// What to do with the shaped interfaces' offloads (`[enforce]
    /// offloads`; see [`offloads`]).
    pub fn offload_mode(&mut self, mode: OffloadMode) {
        self.offload_mode = mode;
    }

    /// Keep what the agent turns off in `path` (see [`offloads::Ledger`]),
    /// starting from what earlier runs left there; with `keep`, give those
    /// back to the router now. Call after [`Enforcer::offload_mode`].
    pub fn offload_state(&mut self, path: &std::path::Path) {
        self.offloads_auto = offloads::Auto::with_ledger(offloads::Ledger::load(path));
        if self.offload_mode == OffloadMode::Keep {
            self.offloads_auto.ledger_mut().restore();
        }
    }

    /// Rebuild the HTB trees on every apply, even when only rates changed
    /// (`policy apply --rebuild`; comparisons in the benchmark).
    pub fn always_rebuild(&mut self, yes: bool) {
        self.always_rebuild = yes;
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
        let shaping = self.apply_plan(&new)?;
        let millis = started.elapsed().as_millis();
        tracing::info!(
            version,
            agency = %policy.agency,
            schedule = new.schedule.as_deref().unwrap_or("-"),
            suspended_agency = new.agency_suspended,
            suspended_units = %new.suspended_units.join(","),
            classes = new.classes.len(),
            shaping = %shaping,
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
            shaping,
        })
    }

    fn apply_plan(&mut self, new: &Plan) -> Result<Shaping, EnforceError> {
        let version = new.policy_version;
        apply::nft_check(&new.nft).map_err(|cause| EnforceError::NftRejected { version, cause })?;
        let shaping = match self.in_place(new) {
            Ok(batch) if batch.is_empty() => {
                tracing::info!(version, "shaping unchanged");
                Shaping::Unchanged
            }
            Ok(batch) => match apply::tc_apply(&batch) {
                Ok(()) => {
                    let lines = batch.lines().count();
                    tracing::info!(version, lines, "rates changed in place");
                    Shaping::InPlace { lines }
                }
                Err(e) => {
                    tracing::warn!(version, error = %e, "changing the rates in place failed; rebuilding the trees");
                    self.rebuild(new, format!("the in-place change failed: {e}"))?
                }
            },
            Err(why) => self.rebuild(new, why)?,
        };
        let rebuilt = matches!(shaping, Shaping::Rebuilt { .. });
        match self.offload_mode {
            OffloadMode::Keep => {
                // A restore that failed at start is tried again.
                if !self.offloads_auto.ledger_mut().is_empty() {
                    self.offloads_auto.ledger_mut().restore();
                }
            }
            OffloadMode::Off => {
                if !self.offloads_off || rebuilt {
                    offloads::shaped_interfaces(&self.target, self.offloads_auto.ledger_mut());
                    self.offloads_off = true;
                }
            }
            OffloadMode::Auto => self.offloads_auto.apply(new, &self.target, rebuilt),
        }
        if let Err(cause) = apply::nft_apply(&new.nft) {
            let restored = self.restore_tc();
            // The offloads follow the shaping back (a slow class of the
            // restored plan must not get merged packets).
            if let (OffloadMode::Auto, Some(prev)) = (self.offload_mode, &self.applied) {
                self.offloads_auto.apply(prev, &self.target, false);
            }
            return Err(EnforceError::Nft {
                version,
                cause,
                restored,
            });
        }
        Ok(shaping)
    }

    /// The batch that changes the trees in force into `new`'s in place, or
    /// why they must be rebuilt.
    fn in_place(&self, new: &Plan) -> Result<String, String> {
        if self.always_rebuild {
            return Err("rebuild asked for".into());
        }
        if self.applied_here {
            if let Some(prev) = &self.applied {
                return inplace::rate_changes(prev, new)
                    .ok_or_else(|| "the trees' structure changed".to_string());
            }
        }
        // What the kernel holds is not known: its trees must have the new
        // plan's structure, and every rate is set.
        let mut kernel = Vec::new();
        for dev in [&self.target.lan, &self.target.wan] {
            kernel.push(apply::tc_show(dev).map_err(|e| format!("cannot list the trees: {e}"))?);
        }
        inplace::kernel_matches(&new.tc, &kernel)?;
        Ok(inplace::all_rate_changes(&new.tc))
    }

    /// Rebuild both trees from `new`'s full batch; on failure put the
    /// previous state back.
    fn rebuild(&mut self, new: &Plan, why: String) -> Result<Shaping, EnforceError> {
        let version = new.policy_version;
        if let Err(cause) = apply::tc_apply(&new.tc) {
            let restored = self.restore_tc();
            return Err(EnforceError::Tc {
                version,
                cause,
                restored,
            });
        }
        tracing::info!(version, why = %why, "tree rebuilt");
        Ok(Shaping::Rebuilt { why })
    }

    /// Put the previous tc state back after a failed apply (the previous
    /// plan's full batch); says what happened. When that fails too, what the
    /// kernel holds is no longer known.
    fn restore_tc(&mut self) -> String {
        match &self.applied {
            Some(prev) => match apply::tc_apply(&prev.tc) {
                Ok(()) => format!(
                    "the previous shaping (policy {}) is back in force",
                    prev.policy_version
                ),
                Err(e) => {
                    tracing::error!(error = %e, "cannot restore the previous shaping");
                    self.applied_here = false;
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
