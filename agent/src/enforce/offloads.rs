//! Receive and segmentation offloads on the shaped interfaces.
//!
//! With GRO (or LRO) on, the router's NIC merges a flow's frames into
//! packets of up to 64 KiB before they are forwarded, and HTB queues and
//! charges each as one: at 1 Mbit/s one such packet is half a second of the
//! class's rate, ten times its burst, so a class sends in lumps instead of
//! at its rate, and a leaf queue counted in packets holds seconds instead
//! of its 100 ms. With GRO off every forwarded packet is a wire frame.
//! GRO is turned off on both interfaces because each is the ingress of the
//! other's shaped direction (internet → `wan` → `lan` egress for download,
//! and the reverse for upload); TSO and GSO too, so that the router's own
//! traffic reaches the trees as frames as well. `bench/enforce.sh` measures
//! shaping both ways (BENCHMARKS.md, "Shaping accuracy"). The cost is CPU:
//! the router forwards and classifies every frame.
//!
//! `[enforce] keep_offloads = true` leaves the interfaces as they are.

use simpul_core::enforce::plan::EnforceTarget;

use super::apply::{self, CommandError};

/// The features turned off, as `ethtool -k` names them.
pub const FEATURES: [&str; 5] = [
    "generic-receive-offload",
    "large-receive-offload",
    "rx-gro-hw",
    "tcp-segmentation-offload",
    "generic-segmentation-offload",
];

/// The features of [`FEATURES`] that `ethtool -k DEV`'s listing shows on
/// and changeable (not `[fixed]`).
pub fn enabled(listing: &str) -> Vec<&'static str> {
    FEATURES
        .into_iter()
        .filter(|f| {
            listing.lines().any(|l| {
                l.strip_prefix(f)
                    .and_then(|rest| rest.strip_prefix(':'))
                    .is_some_and(|v| {
                        let v = v.trim();
                        v.starts_with("on") && !v.contains("[fixed]")
                    })
            })
        })
        .collect()
}

/// Turn [`FEATURES`] off on `dev`; the ones that were on (none: nothing
/// was run but the listing).
pub fn turn_off(dev: &str) -> Result<Vec<&'static str>, CommandError> {
    let on = enabled(&apply::ethtool(&["-k", dev])?);
    if !on.is_empty() {
        let mut args = vec!["-K", dev];
        for f in &on {
            args.extend([*f, "off"]);
        }
        apply::ethtool(&args)?;
    }
    Ok(on)
}

/// Turn the offloads off on both shaped interfaces, logging what was
/// changed and why; a failure is logged, never fatal (the trees still
/// shape, only less evenly at low rates).
pub fn shaped_interfaces(target: &EnforceTarget) {
    for dev in [&target.lan, &target.wan] {
        match turn_off(dev) {
            Ok(on) if on.is_empty() => {
                tracing::debug!(device = %dev, "offloads already off");
            }
            Ok(on) => tracing::info!(
                device = %dev,
                turned_off = %on.join(","),
                "offloads turned off on a shaped interface: merged 64 KiB packets make HTB send in lumps at low rates ([enforce] keep_offloads = true keeps them)"
            ),
            Err(e) => tracing::warn!(
                device = %dev,
                error = %e,
                "cannot turn GRO/GSO/TSO off on a shaped interface: merged 64 KiB packets may make the low rates lumpy"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changeable_features_that_are_on() {
        // `ethtool -k` of a veth (ethtool 6.1), GRO turned on.
        let veth = "Features for v0:
rx-checksumming: on
tcp-segmentation-offload: on
\ttx-tcp-segmentation: on
generic-segmentation-offload: on
generic-receive-offload: on
large-receive-offload: off [fixed]
rx-gro-hw: off [fixed]
rx-gro-list: off
";
        assert_eq!(
            enabled(veth),
            [
                "generic-receive-offload",
                "tcp-segmentation-offload",
                "generic-segmentation-offload"
            ]
        );
        // A NIC with hardware GRO, and one whose LRO cannot be changed.
        let nic = "generic-receive-offload: off
large-receive-offload: on [fixed]
rx-gro-hw: on
tcp-segmentation-offload: off
generic-segmentation-offload: off [requested on]
";
        assert_eq!(enabled(nic), ["rx-gro-hw"]);
        assert!(enabled("").is_empty());
        assert!(enabled("generic-receive-offload-x: on\n").is_empty());
    }
}
