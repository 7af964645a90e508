//! Access enforcement with real connections in namespaces: blocked CIDRs and
//! ports, suspension (internet cut, intranet and the always-allowed
//! collector address kept), refusal of malformed policies without any
//! kernel change, and a killed agent leaving its policy in force (restored
//! from the last good policy on restart).

mod common;
mod enforce_lab;

use std::process::Command;
use std::time::Instant;

use common::is_root;
use common::netns::{sh, wait_for};
use enforce_lab::{Topo, ALWAYS_ALLOWED, INTERNET, INTERNET_BLOCKED, INTRANET};

fn policy(version: u64, extra: &str) -> String {
    format!(
        r#"
version = {version}
agency = "dinkes"
[allocation]
download = {{ rate_bps = 40000000, ceil_bps = 40000000 }}
upload = {{ rate_bps = 40000000, ceil_bps = 40000000 }}
[allocation.units.a]
download = {{ rate_bps = 20000000, ceil_bps = 40000000 }}
upload = {{ rate_bps = 20000000, ceil_bps = 40000000 }}
[allocation.units.b]
download = {{ rate_bps = 20000000, ceil_bps = 40000000 }}
upload = {{ rate_bps = 20000000, ceil_bps = 40000000 }}
{extra}
"#
    )
}

const BLOCKS: &str = r#"
[blocking]
cidrs = ["198.51.100.20/32"]
ports = [{ proto = "tcp", port = 5299 }, { proto = "udp", port = "6881-6889" }]
block_dot = true
block_quic = true
"#;

/// Servers every test uses: internet 5201 and 5299, intranet 5201 and 5203.
fn servers(t: &mut Topo) {
    let inet = t.inet.clone();
    let intra = t.intra.clone();
    t.iperf_server(&inet, 5201);
    t.iperf_server(&inet, 5299);
    t.iperf_server(&intra, 5201);
    t.iperf_server(&intra, 5203);
}

#[test]
fn blocked_cidr_and_port_are_unreachable_while_others_work() {
    assert!(is_root(), "enforcement tests need root (CI runs as root)");
    let mut t = Topo::new("eb");
    servers(&mut t);
    // The probes work before any policy.
    assert!(t.can_connect(&t.a, INTERNET_BLOCKED, 5201));
    assert!(t.can_connect(&t.a, INTERNET, 5299));

    let p = t.write_policy("policy.toml", &policy(1, BLOCKS));
    t.apply_ok(&p);
    assert!(
        !t.can_connect(&t.a, INTERNET_BLOCKED, 5201),
        "blocked CIDR {INTERNET_BLOCKED} still reachable"
    );
    assert!(
        !t.can_connect(&t.b, INTERNET, 5299),
        "blocked port 5299 still reachable"
    );
    assert!(
        t.can_connect(&t.a, INTERNET, 5201),
        "allowed internet address blocked"
    );
    assert!(
        t.can_connect(&t.b, INTERNET, 5201),
        "allowed internet address blocked"
    );
    assert!(t.can_connect(&t.a, INTRANET, 5201), "intranet blocked");
    let table = t.kernel_state();
    assert!(table.contains("comment \"blocked: cidr\""), "{table}");

    // A new version without the blocks opens them again.
    let p = t.write_policy("policy2.toml", &policy(2, ""));
    t.apply_ok(&p);
    assert!(t.can_connect(&t.a, INTERNET_BLOCKED, 5201));
    assert!(t.can_connect(&t.b, INTERNET, 5299));
}

#[test]
fn suspension_cuts_internet_but_not_intranet_or_the_collector() {
    assert!(is_root(), "enforcement tests need root (CI runs as root)");
    let mut t = Topo::new("ep");
    servers(&mut t);

    let p = t.write_policy("unit.toml", &policy(1, "[suspension]\nunits = [\"a\"]\n"));
    t.apply_ok(&p);
    assert!(
        !t.can_connect(&t.a, INTERNET, 5201),
        "suspended unit a reaches the internet"
    );
    assert!(
        t.can_connect(&t.a, INTRANET, 5201),
        "suspended unit a lost the intranet"
    );
    assert!(
        t.can_connect(&t.a, ALWAYS_ALLOWED, 5201),
        "suspended unit a lost the always-allowed (collector) address"
    );
    assert!(
        t.can_connect(&t.b, INTERNET, 5201),
        "unit b is not suspended"
    );

    let p = t.write_policy(
        "agency.toml",
        &policy(2, "[suspension]\nagency = true\nreason = \"test\"\n"),
    );
    t.apply_ok(&p);
    for ns in [&t.a, &t.b] {
        assert!(
            !t.can_connect(ns, INTERNET, 5201),
            "suspended agency reaches the internet from {ns}"
        );
        assert!(
            t.can_connect(ns, INTRANET, 5201),
            "suspended agency lost the intranet from {ns}"
        );
        assert!(
            t.can_connect(ns, ALWAYS_ALLOWED, 5201),
            "suspended agency lost the always-allowed (collector) address from {ns}"
        );
    }

    // An expired suspension is not enforced.
    let p = t.write_policy(
        "expired.toml",
        &policy(
            3,
            "[suspension]\nagency = true\nuntil = \"2020-01-01T00:00:00+07:00\"\n",
        ),
    );
    t.apply_ok(&p);
    assert!(
        t.can_connect(&t.a, INTERNET, 5201),
        "expired suspension still enforced"
    );
}

#[test]
fn malformed_policy_is_refused_and_changes_nothing() {
    assert!(is_root(), "enforcement tests need root (CI runs as root)");
    let t = Topo::new("em");
    let good = t.write_policy("good.toml", &policy(1, BLOCKS));
    t.apply_ok(&good);
    let before = t.kernel_state();
    let last_good = t.dir.path().join("state/last-good-policy.toml");
    let saved = std::fs::read_to_string(&last_good).expect("last good policy saved");

    let over = policy(2, BLOCKS).replace(
        "[allocation.units.b]\ndownload = { rate_bps = 20000000",
        "[allocation.units.b]\ndownload = { rate_bps = 30000000",
    );
    let cases = [
        (
            "over.toml",
            over,
            "allocation.units: download unit rates sum to 50000000 bps, above the agency's rate_bps 40000000",
        ),
        (
            "cidr.toml",
            policy(2, "[blocking]\ncidrs = [\"198.51.100.0/33\"]\n"),
            "blocking.cidrs[0]: ",
        ),
        (
            "unit.toml",
            policy(2, "[suspension]\nunits = [\"zz\"]\n"),
            "suspension.units[0]: unknown unit \"zz\"",
        ),
        ("syntax.toml", "version = 2\nagency = \n".to_string(), "TOML"),
        // The intranet is the inventory's; a policy may not have its own.
        (
            "intranet.toml",
            policy(2, "").replace(
                "agency = \"dinkes\"\n",
                "agency = \"dinkes\"\nintranet = [\"10.0.0.0/8\"]\n",
            ),
            "intranet: moved to the inventory",
        ),
        // Without a collector to number it, a policy file carries its version.
        (
            "unversioned.toml",
            policy(2, "").replace("version = 2\n", ""),
            "version: must be at least 1",
        ),
    ];
    for (name, text, want) in cases {
        let p = t.write_policy(name, &text);
        let out = t.apply(&p);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} was accepted");
        assert!(
            err.contains(want),
            "{name}: error does not say {want:?}: {err}"
        );
        assert_eq!(t.kernel_state(), before, "{name} changed the kernel state");
        assert_eq!(
            std::fs::read_to_string(&last_good).expect("last good"),
            saved,
            "{name} replaced the last good policy"
        );
    }

    // `policy check` reports the same problems without touching anything.
    let out = Command::new(common::agent_bin())
        .args(["policy", "check"])
        .arg(t.dir.path().join("over.toml"))
        .arg("--config")
        .arg(&t.config)
        .output()
        .expect("policy check");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("allocation.units: download unit rates sum")
    );
}

#[test]
fn failed_tc_batch_is_reported_and_the_previous_shaping_restored() {
    assert!(is_root(), "enforcement tests need root (CI runs as root)");
    let t = Topo::new("ef");
    let good = t.write_policy("good.toml", &policy(1, BLOCKS));
    t.apply_ok(&good);
    let before = t.kernel_config();

    // A `tc` that applies only the first lines of a batch holding the marker
    // rate and then fails: a half-applied batch, as a kernel refusal midway
    // would leave it.
    let real_tc = common::netns::sh_out("command -v tc").trim().to_string();
    let bin = t.dir.path().join("fakebin");
    std::fs::create_dir(&bin).expect("mkdir");
    let fake = bin.join("tc");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nif [ \"$1\" = -batch ]; then\n  input=$(cat)\n  case \"$input\" in\n    *39000000bit*) printf '%s\\n' \"$input\" | head -n 5 | {real_tc} -batch -; echo 'injected failure' >&2; exit 1;;\n  esac\n  printf '%s\\n' \"$input\" | exec {real_tc} -batch -\nfi\nexec {real_tc} \"$@\"\n"
        ),
    )
    .expect("write fake tc");
    sh(&format!("chmod +x {}", fake.display()));

    let bad = policy(2, "").replace(
        "[allocation.units.a]\ndownload = { rate_bps = 20000000, ceil_bps = 40000000 }",
        "[allocation.units.a]\ndownload = { rate_bps = 20000000, ceil_bps = 39000000 }",
    );
    assert!(bad.contains("39000000"));
    let bad = t.write_policy("bad.toml", &bad);
    let out = t.apply_with_path(&bad, Some(&bin));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "half-applied policy reported as applied"
    );
    assert!(err.contains("tc failed for policy 2"), "{err}");
    assert!(err.contains("injected failure"), "{err}");
    assert!(
        err.contains("the previous shaping (policy 1) is back in force"),
        "{err}"
    );
    assert_eq!(t.kernel_config(), before, "previous state not restored");
    let last_good = std::fs::read_to_string(t.dir.path().join("state/last-good-policy.toml"))
        .expect("last good");
    assert!(last_good.starts_with("version = 1\n"), "{last_good}");
}

#[test]
fn killed_agent_leaves_the_policy_enforcing_and_restart_restores_last_good() {
    assert!(is_root(), "enforcement tests need root (CI runs as root)");
    let mut t = Topo::new("ek");
    servers(&mut t);
    let agent = common::agent_bin();
    let agent = agent.to_str().expect("utf-8 path").to_string();
    let config = t.config.to_str().expect("utf-8 path").to_string();
    let policy_file = t.dir.path().join("policy.toml");
    std::fs::write(&policy_file, policy(1, BLOCKS)).expect("write policy");
    t.write_config(Some(&policy_file));

    let router = t.router.clone();
    let idx = t
        .lab
        .spawn(&router, &[&agent, "run", "--config", &config], true);
    assert!(
        wait_for(30, || t.has_table()
            && t.kernel_state().contains("class htb 1:10")),
        "agent run did not apply the policy file"
    );
    assert!(
        !t.can_connect(&t.a, INTERNET, 5299),
        "port block not enforced by run"
    );

    // An edited policy file is applied by the running agent.
    std::fs::write(
        &policy_file,
        policy(
            2,
            &BLOCKS.replace(
                "port = 5299 }",
                "port = 5299 }, { proto = \"tcp\", port = 5201 }",
            ),
        ),
    )
    .expect("rewrite policy");
    let started = Instant::now();
    assert!(
        wait_for(10, || t.nft_table().contains("elements = { 5201, 5299 }")),
        "edited policy file not applied"
    );
    eprintln!("edited policy in force after {:?}", started.elapsed());
    assert!(
        !t.can_connect(&t.a, INTERNET, 5201),
        "new port block not enforced"
    );
    assert!(
        t.can_connect(&t.a, INTRANET, 5201),
        "port block applies to the intranet"
    );

    let status = t.lab.signal_and_wait(idx, "KILL");
    assert!(!status.success());
    let after_kill = t.kernel_state();
    assert!(
        after_kill.contains("class htb 1:10"),
        "HTB gone after kill: {after_kill}"
    );
    assert!(
        !t.can_connect(&t.a, INTERNET, 5299),
        "port block gone after kill"
    );
    assert!(
        !t.can_connect(&t.b, INTERNET, 5201),
        "port block gone after kill"
    );
    // The intranet is never blocked, not even on a blocked port.
    assert!(
        t.can_connect(&t.a, INTRANET, 5201),
        "port block applies to the intranet after kill"
    );
    assert!(
        t.can_connect(&t.a, INTRANET, 5203),
        "intranet lost after kill"
    );

    // Reboot: the kernel state is gone and the policy file is unreadable;
    // the agent restores the last good policy (version 2) at start, with no
    // collector configured.
    sh(&format!(
        "ip netns exec {router} sh -c 'nft delete table inet simpul; tc qdisc del dev lan0 root; tc qdisc del dev wan0 root'"
    ));
    assert!(!t.has_table());
    assert!(t.can_connect(&t.a, INTERNET, 5299));
    t.write_config(Some(&t.dir.path().join("missing.toml")));
    t.lab
        .spawn(&router, &[&agent, "run", "--config", &config], true);
    assert!(
        wait_for(30, || t.has_table()
            && t.kernel_state().contains("class htb 1:10")),
        "restarted agent did not restore the last good policy"
    );
    assert!(
        !t.can_connect(&t.a, INTERNET, 5299),
        "restored policy does not block 5299"
    );
    assert!(
        !t.can_connect(&t.a, INTERNET, 5201),
        "restored policy is not the last good (v2)"
    );
    assert!(t.can_connect(&t.a, ALWAYS_ALLOWED, 5201));
}

/// `ethtool -k`'s state of one feature of a router interface ("on", "off").
fn feature(t: &Topo, dev: &str, name: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &t.router, "ethtool", "-k", dev])
        .output()
        .expect("run ethtool");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or("missing")
        .to_string()
}

/// Unit a's rates: below the offload threshold (52.44 Mbit/s) or not; the
/// agency and the rest of its hosts always far above it.
fn offload_policy(version: u64, unit_a_rate: u64) -> String {
    format!(
        r#"version = {version}
agency = "dinkes"
[allocation]
download = {{ rate_bps = 1000000000, ceil_bps = 1000000000 }}
upload = {{ rate_bps = 1000000000, ceil_bps = 1000000000 }}
[allocation.units.a]
download = {{ rate_bps = {unit_a_rate}, ceil_bps = 1000000000 }}
upload = {{ rate_bps = {unit_a_rate}, ceil_bps = 1000000000 }}
"#
    )
}

#[test]
fn auto_offloads_are_off_while_a_class_is_slow_and_back_on_after() {
    assert!(is_root(), "enforcement tests need root (CI runs as root)");
    let mut t = Topo::new("eg");
    // The router's interfaces as a NIC's defaults (GRO, TSO, GSO on), but
    // the admin has GSO off on wan0: the agent must never turn that on.
    sh(&format!(
        "ip netns exec {} sh -c 'ethtool -K lan0 gro on tso on gso on && ethtool -K wan0 gro on tso on gso off'",
        t.router
    ));
    assert_eq!(feature(&t, "wan0", "generic-receive-offload"), "on");
    assert_eq!(feature(&t, "wan0", "generic-segmentation-offload"), "off");

    let policy_file = t.dir.path().join("policy.toml");
    std::fs::write(&policy_file, offload_policy(1, 1_000_000)).expect("write policy");
    t.write_config(Some(&policy_file));
    // A 1 Gbit/s uplink, so that every class can be above the threshold.
    let inventory = t.dir.path().join("inventory.toml");
    let text = std::fs::read_to_string(&inventory).expect("read inventory");
    std::fs::write(&inventory, text.replace("100000000", "1000000000")).expect("write inventory");
    let log = t.dir.path().join("agent.log");
    let run = format!(
        "exec {} run --config {} 2>{}",
        common::agent_bin().display(),
        t.config.display(),
        log.display()
    );
    let router = t.router.clone();
    t.lab.spawn(&router, &["sh", "-c", &run], true);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();

    // Unit a at 1 Mbit/s in both directions: GRO and TSO off on both.
    let all = |state: &str| {
        ["lan0", "wan0"].iter().all(|d| {
            ["generic-receive-offload", "tcp-segmentation-offload"]
                .iter()
                .all(|f| feature(&t, d, f) == state)
        })
    };
    assert!(
        wait_for(30, || all("off")),
        "offloads not turned off for a 1 Mbit/s class: {}",
        log_text()
    );
    assert_eq!(feature(&t, "lan0", "generic-segmentation-offload"), "off");
    let l = log_text();
    assert!(
        l.contains("offload turned off")
            && l.contains("class=1:10")
            && l.contains("class_rate_bps=1000000")
            && l.contains("threshold_bps=52440000"),
        "{l}"
    );

    // Every class at or above the threshold (a rate-only change): what the
    // agent turned off is back on, the admin's GSO on wan0 stays off.
    std::fs::write(&policy_file, offload_policy(2, 60_000_000)).expect("rewrite policy");
    assert!(
        wait_for(15, || all("on")),
        "offloads not back on with every class fast: {}",
        log_text()
    );
    assert_eq!(feature(&t, "lan0", "generic-segmentation-offload"), "on");
    assert_eq!(feature(&t, "wan0", "generic-segmentation-offload"), "off");
    assert!(log_text().contains("turned back on"), "{}", log_text());
    assert!(
        log_text().contains("rates changed in place"),
        "{}",
        log_text()
    );
    for l in log_text().lines().filter(|l| l.contains("offload")) {
        eprintln!("{l}");
    }
}

/// Whether every one of GRO and TSO is `state` on both router interfaces.
fn gro_tso_all(t: &Topo, state: &str) -> bool {
    ["lan0", "wan0"].iter().all(|d| {
        ["generic-receive-offload", "tcp-segmentation-offload"]
            .iter()
            .all(|f| feature(t, d, f) == state)
    })
}

#[test]
fn a_restarted_agent_gives_back_the_offloads_its_predecessor_turned_off() {
    assert!(is_root(), "enforcement tests need root (CI runs as root)");
    let mut t = Topo::new("eq");
    // A NIC's defaults, but the admin has GSO off on wan0.
    sh(&format!(
        "ip netns exec {} sh -c 'ethtool -K lan0 gro on tso on gso on && ethtool -K wan0 gro on tso on gso off'",
        t.router
    ));
    let policy_file = t.dir.path().join("policy.toml");
    std::fs::write(&policy_file, offload_policy(1, 1_000_000)).expect("write policy");
    t.write_config(Some(&policy_file));
    let inventory = t.dir.path().join("inventory.toml");
    let text = std::fs::read_to_string(&inventory).expect("read inventory");
    std::fs::write(&inventory, text.replace("100000000", "1000000000")).expect("write inventory");
    let auto_config = std::fs::read_to_string(&t.config).expect("config");
    let log = t.dir.path().join("agent.log");
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let start = |t: &mut Topo| {
        let run = format!(
            "exec {} run --config {} 2>>{}",
            common::agent_bin().display(),
            t.config.display(),
            log.display()
        );
        let router = t.router.clone();
        t.lab.spawn(&router, &["sh", "-c", &run], true)
    };

    // A 1 Mbit/s class: the agent turns GRO, TSO (and lan0's GSO) off,
    // then dies without a word.
    let agent = start(&mut t);
    assert!(
        wait_for(30, || gro_tso_all(&t, "off")),
        "offloads not turned off for a 1 Mbit/s class: {}",
        log_text()
    );
    assert_eq!(feature(&t, "lan0", "generic-segmentation-offload"), "off");
    t.lab.signal_and_wait(agent, "KILL");

    // Restarted with every class fast: it turns back on what its
    // predecessor turned off (it turned nothing off itself), never the
    // admin's GSO on wan0.
    std::fs::write(&policy_file, offload_policy(2, 60_000_000)).expect("rewrite policy");
    let agent = start(&mut t);
    assert!(
        wait_for(30, || gro_tso_all(&t, "on")),
        "a restarted agent left its predecessor's offloads off: {}",
        log_text()
    );
    assert_eq!(feature(&t, "lan0", "generic-segmentation-offload"), "on");
    assert_eq!(feature(&t, "wan0", "generic-segmentation-offload"), "off");

    // Slow again, killed again; restarted with `keep`: the router's own
    // settings come back at start, not the agent's earlier change.
    std::fs::write(&policy_file, offload_policy(3, 1_000_000)).expect("rewrite policy");
    assert!(
        wait_for(30, || gro_tso_all(&t, "off")),
        "offloads not turned off again: {}",
        log_text()
    );
    t.lab.signal_and_wait(agent, "KILL");
    std::fs::write(&t.config, format!("{auto_config}offloads = \"keep\"\n")).expect("config");
    let agent = start(&mut t);
    assert!(
        wait_for(30, || gro_tso_all(&t, "on")),
        "offloads = \"keep\" did not give the router its own settings back: {}",
        log_text()
    );
    assert_eq!(feature(&t, "lan0", "generic-segmentation-offload"), "on");
    assert_eq!(feature(&t, "wan0", "generic-segmentation-offload"), "off");
    assert!(
        log_text().contains("earlier run turned off turned back on"),
        "{}",
        log_text()
    );
    t.lab.signal_and_wait(agent, "TERM");
    for l in log_text().lines().filter(|l| l.contains("offload")) {
        eprintln!("{l}");
    }
}
