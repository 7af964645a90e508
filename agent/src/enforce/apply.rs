//! I/O: running `nft` and `tc`, reading the kernel's tc trees, detecting the
//! leaf qdisc.
//!
//! # Rates change in place; anything else rebuilds the trees
//! tc has no transactions. A plan whose HTB trees have the structure of the
//! ones in force (same devices, classes, parents, leaf qdiscs; see
//! [`simpul_core::enforce::inplace`]) and differ only in rates — a schedule
//! window, an allocation — is applied with `tc class change` (and `tc qdisc
//! change` for pfifo leaves, sized from the ceil): the classes keep their
//! counters and their queued packets and traffic stays shaped throughout.
//! Which rates are in force is known when this process applied them; else
//! (a one-shot `policy apply`, an agent that just started) the kernel's
//! listing of the trees ([`tc_show`]) is checked against the new plan's
//! structure and every class is changed.
//!
//! Anything else — a unit with an allocation added or removed, another leaf
//! qdisc, other interfaces, no tree of the agent's in the kernel, or an
//! in-place batch the kernel refuses — rebuilds both trees whole in one
//! `tc -batch` run (two devices, a few lines per unit): replacing the root
//! qdisc is atomic per device (the kernel grafts the new qdisc in one step),
//! and the whole batch for hundreds of units takes well under a second.
//! During that window packets are queued in the interim root or the new HTB
//! before its classes exist (unshaped for milliseconds, never dropped by
//! policy); the packets queued in the old tree are dropped and every
//! counter starts again. A batch that fails halfway is repaired by
//! re-applying the previous plan's full batch (see [`super::Enforcer`]);
//! nftables needs no such care: one `nft -f` is one kernel transaction.

use std::io::Write;
use std::process::{Command, Stdio};

use simpul_core::enforce::inplace::KernelTc;
use simpul_core::enforce::plan::LeafQdisc;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot run {program}: {cause}")]
    Spawn {
        program: &'static str,
        cause: std::io::Error,
    },
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        program: &'static str,
        status: String,
        stderr: String,
    },
}

/// Run `program args…` with `input` on stdin; its stdout.
fn run_with_input(
    program: &'static str,
    args: &[&str],
    input: &str,
) -> Result<String, CommandError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|cause| CommandError::Spawn { program, cause })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A write error means the program exited early; its status says why.
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|cause| CommandError::Spawn { program, cause })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(CommandError::Failed {
            program,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn run(program: &'static str, args: &[&str]) -> Result<String, CommandError> {
    run_with_input(program, args, "")
}

/// Check an nft script without changing anything (`nft -c -f -`).
pub fn nft_check(script: &str) -> Result<(), CommandError> {
    run_with_input("nft", &["-c", "-f", "-"], script).map(drop)
}

/// Apply an nft script in one transaction (`nft -f -`).
pub fn nft_apply(script: &str) -> Result<(), CommandError> {
    run_with_input("nft", &["-f", "-"], script).map(drop)
}

/// Run a tc batch (`tc -batch -`); stops at the first failing line.
pub fn tc_apply(script: &str) -> Result<(), CommandError> {
    run_with_input("tc", &["-batch", "-"], script).map(drop)
}

/// The kernel's qdiscs and classes on `dev` (`tc qdisc show`, `tc class
/// show`), for [`simpul_core::enforce::inplace::kernel_matches`].
pub fn tc_show(dev: &str) -> Result<KernelTc, CommandError> {
    Ok(KernelTc {
        dev: dev.to_string(),
        qdiscs: run("tc", &["qdisc", "show", "dev", dev])?,
        classes: run("tc", &["class", "show", "dev", dev])?,
    })
}

/// `ethtool ARGS…`; its stdout.
pub fn ethtool(args: &[&str]) -> Result<String, CommandError> {
    run("ethtool", args)
}

/// Remove the agent's root qdisc from a device (back to the kernel default).
pub fn tc_clear(dev: &str) -> Result<(), CommandError> {
    run("tc", &["qdisc", "del", "dev", dev, "root"]).map(drop)
}

/// Find the best leaf qdisc the kernel offers by adding each, best first, as
/// the root of a throwaway IFB device. Logs the choice and why.
pub fn detect_leaf_qdisc() -> LeafQdisc {
    let dev = format!("simpulprb{}", std::process::id() % 100_000);
    if let Err(e) = run("ip", &["link", "add", &dev, "type", "ifb"]) {
        tracing::warn!(error = %e, leaf = "pfifo", "cannot create a probe device to detect fair-queuing qdiscs; using pfifo leaves");
        return LeafQdisc::Pfifo;
    }
    let mut missing = Vec::new();
    let mut chosen = LeafQdisc::Pfifo;
    for q in LeafQdisc::PREFERENCE {
        match run(
            "tc",
            &[
                "qdisc",
                "add",
                "dev",
                &dev,
                "root",
                "handle",
                "1:",
                q.kind(),
            ],
        ) {
            Ok(_) => {
                chosen = q;
                break;
            }
            Err(e) => missing.push(format!("{}: {e}", q.kind())),
        }
    }
    if let Err(e) = run("ip", &["link", "del", &dev]) {
        tracing::warn!(device = %dev, error = %e, "cannot remove the qdisc probe device");
    }
    if chosen == LeafQdisc::FqCodel {
        tracing::info!(leaf = chosen.kind(), "leaf qdisc: fq_codel available");
    } else {
        tracing::warn!(
            leaf = chosen.kind(),
            unavailable = %missing.join("; "),
            "leaf qdisc: the kernel lacks better fair-queuing qdiscs; flows of one class share a {} queue",
            chosen.kind()
        );
    }
    chosen
}
