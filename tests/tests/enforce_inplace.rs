//! Rate-only policy changes change the HTB classes in place (`tc class
//! change`): the classes keep their byte counters and the root qdisc stays
//! the same one; a change of structure (a unit added) rebuilds the trees.
//! Both the one-shot `policy apply` (which checks the kernel's trees against
//! the plan) and a running agent (which knows the trees it applied) are
//! covered. Counters, not timings, prove which path was taken.

#![allow(clippy::unwrap_used)]

mod common;
mod enforce_lab;

use std::path::Path;
use std::process::{Command, Stdio};

use common::is_root;
use common::netns::{sh_out, wait_for};
use enforce_lab::{Topo, INTERNET};

/// Unit a only; `unit_a_down` is its download rate/ceil in bit/s; with
/// `unit_b`, unit b gets an allocation too (a class more on each device).
fn policy(version: u64, unit_a_down: (u64, u64), unit_b: bool) -> String {
    let (rate, ceil) = unit_a_down;
    let b = if unit_b {
        "[allocation.units.b]\ndownload = { rate_bps = 10000000, ceil_bps = 30000000 }\nupload = { rate_bps = 8000000, ceil_bps = 24000000 }\n"
    } else {
        ""
    };
    format!(
        r#"version = {version}
agency = "dinkes"
[allocation]
download = {{ rate_bps = 30000000, ceil_bps = 30000000 }}
upload = {{ rate_bps = 24000000, ceil_bps = 24000000 }}
[allocation.units.a]
download = {{ rate_bps = {rate}, ceil_bps = {ceil} }}
upload = {{ rate_bps = 8000000, ceil_bps = 24000000 }}
{b}"#
    )
}

/// One HTB class as `tc -s class show` lists it.
#[derive(Debug)]
struct Class {
    line: String,
    sent: u64,
}

/// Bytes on the `Sent N bytes` line following the first line of `text`.
fn sent(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Sent "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no Sent line in {text:?}"))
}

fn class(t: &Topo, dev: &str, id: &str) -> Option<Class> {
    let text = sh_out(&format!(
        "ip netns exec {} tc -s class show dev {dev} classid {id}",
        t.router
    ));
    let line = text.lines().next()?.trim().to_string();
    Some(Class {
        sent: sent(&text),
        line,
    })
}

fn class_ok(t: &Topo, dev: &str, id: &str) -> Class {
    class(t, dev, id).unwrap_or_else(|| panic!("no class {id} on {dev}: {}", t.kernel_state()))
}

/// The root qdisc's first line (kind, handle) and its byte counter.
fn root(t: &Topo, dev: &str) -> (String, u64) {
    let text = sh_out(&format!(
        "ip netns exec {} tc -s qdisc show dev {dev} root",
        t.router
    ));
    let head: Vec<&str> = text.split_whitespace().take(4).collect();
    (head.join(" "), sent(&text))
}

/// The leaf qdisc under a class (`qdisc pfifo 10: parent 1:10 limit 330p`).
fn leaf(t: &Topo, dev: &str, parent: &str) -> String {
    sh_out(&format!(
        "ip netns exec {} tc qdisc show dev {dev} parent {parent}",
        t.router
    ))
    .trim()
    .to_string()
}

/// Bytes the leaf qdisc under `parent` has sent.
fn leaf_sent(t: &Topo, dev: &str, parent: &str) -> u64 {
    sent(&sh_out(&format!(
        "ip netns exec {} tc -s qdisc show dev {dev} parent {parent}",
        t.router
    )))
}

/// One second of TCP from the internet to `ns` (download) and one back
/// (upload), then until the router's queues have drained (the counters
/// stop moving).
fn transfer(t: &Topo, ns: &str) {
    for reverse in [true, false] {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, "iperf3", "-c", INTERNET, "-p", "5201"])
            .args(["-t", "1", "--connect-timeout", "3000"]);
        if reverse {
            c.arg("-R");
        }
        let st = c
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "iperf3 from {ns} failed");
    }
    let counters = || {
        sh_out(&format!(
            "ip netns exec {} sh -c 'tc -s qdisc show dev lan0; tc -s qdisc show dev wan0'",
            t.router
        ))
    };
    let mut last = counters();
    let settled = wait_for(10, || {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let now = counters();
        std::mem::replace(&mut last, now) == last
    });
    assert!(settled, "the router's queues did not drain");
}

/// More than a trickle went through a class (a second at 5 Mbit/s or more
/// is over 600 kB).
const BUSY: u64 = 300_000;

/// The kernel's configuration, order and the HTB root's count of packets
/// sent without a class aside.
fn config(t: &Topo) -> Vec<String> {
    let mut lines: Vec<String> = t
        .kernel_config()
        .lines()
        .map(|l| {
            let mut w: Vec<&str> = l.split_whitespace().collect();
            if let Some(i) = w.iter().position(|x| *x == "direct_packets_stat") {
                w.drain(i..=i + 1);
            }
            w.join(" ")
        })
        .collect();
    lines.sort();
    lines
}

/// Every qdisc (kind, handle, parent) and HTB class (id, parent) of both
/// trees, with the leaf qdiscs' byte counters kept apart: what a rate-only
/// change leaves in place.
fn handles(t: &Topo) -> Vec<String> {
    let mut out = Vec::new();
    for dev in ["lan0", "wan0"] {
        let text = sh_out(&format!(
            "ip netns exec {} sh -c 'tc qdisc show dev {dev}; tc class show dev {dev}'",
            t.router
        ));
        for l in text.lines() {
            match l.split_whitespace().collect::<Vec<_>>().as_slice() {
                ["qdisc", _, handle, "parent", parent, ..] => {
                    out.push(format!("{dev} qdisc {handle} parent {parent}"))
                }
                ["qdisc", kind, handle, "root", ..] => {
                    out.push(format!("{dev} qdisc {kind} {handle} root"))
                }
                ["class", "htb", id, "root", ..] => out.push(format!("{dev} class {id} root")),
                ["class", "htb", id, "parent", parent, ..] => {
                    out.push(format!("{dev} class {id} parent {parent}"))
                }
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// What a rate-only change must keep: the classes' and the root's counters
/// (no class is new) and the root qdisc.
fn assert_kept(t: &Topo, before: &[(&str, &str, u64)], roots: &[(&str, (String, u64))]) {
    for (dev, id, bytes) in before {
        let now = class_ok(t, dev, id);
        assert!(
            now.sent >= *bytes,
            "class {id} on {dev}: {} bytes after the change, {bytes} before: the class was rebuilt",
            now.sent
        );
    }
    for (dev, (head, bytes)) in roots {
        let (h, b) = root(t, dev);
        assert_eq!(&h, head, "root qdisc of {dev} replaced");
        assert!(
            b >= *bytes,
            "root qdisc of {dev}: {b} bytes after, {bytes} before: replaced"
        );
    }
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn policy_apply_changes_rates_in_place_and_rebuilds_for_a_new_unit() {
    assert!(is_root(), "enforcement tests need root (CI runs as root)");
    let mut t = Topo::new("ei");
    t.iperf_server(&t.inet.clone(), 5201);

    let v1 = t.write_policy("v1.toml", &policy(1, (10_000_000, 30_000_000), false));
    let out = t.apply_stdout(&v1, &[]);
    assert!(out.contains("tree rebuilt"), "first apply: {out}");
    transfer(&t, &t.a);
    let lan = class_ok(&t, "lan0", "1:10");
    let wan = class_ok(&t, "wan0", "1:10");
    assert!(lan.line.contains("rate 10Mbit ceil 30Mbit"), "{lan:?}");
    assert!(lan.sent > BUSY && wan.sent > BUSY, "{lan:?} {wan:?}");
    let roots = [("lan0", root(&t, "lan0")), ("wan0", root(&t, "wan0"))];
    assert_eq!(roots[0].1 .0, "qdisc htb 1: root");
    let handles_before = handles(&t);
    assert!(
        handles_before.contains(&"lan0 qdisc 10: parent 1:10".to_string()),
        "{handles_before:?}"
    );
    let leaves_before = [leaf_sent(&t, "lan0", "1:10"), leaf_sent(&t, "wan0", "1:10")];
    assert!(leaves_before.iter().all(|b| *b > BUSY), "{leaves_before:?}");

    // Unit a's download rate and ceil change: in place.
    let v2 = t.write_policy("v2.toml", &policy(2, (5_000_000, 20_000_000), false));
    let out = t.apply_stdout(&v2, &[]);
    assert!(out.contains("rates changed in place"), "rate change: {out}");
    let now = class_ok(&t, "lan0", "1:10");
    assert!(now.line.contains("rate 5Mbit ceil 20Mbit"), "{now:?}");
    // The rest of the agency's rate went to the default class.
    let other = class_ok(&t, "lan0", "1:fff");
    assert!(other.line.contains("rate 25Mbit ceil 30Mbit"), "{other:?}");
    assert_kept(
        &t,
        &[("lan0", "1:10", lan.sent), ("wan0", "1:10", wan.sent)],
        &roots,
    );
    let l = leaf(&t, "lan0", "1:10");
    if l.starts_with("qdisc pfifo ") {
        // pfifo is sized from the ceil (100 ms at 20 Mbit/s).
        assert!(l.contains("limit 165p"), "{l}");
    }
    // The same objects: the same handles, and the leaves' counters kept (a
    // leaf or class replaced by one of the same handle starts at zero).
    assert_eq!(
        handles(&t),
        handles_before,
        "handles after the in-place change"
    );
    for (dev, before) in ["lan0", "wan0"].into_iter().zip(leaves_before) {
        let now = leaf_sent(&t, dev, "1:10");
        assert!(
            now >= before,
            "leaf 10: on {dev}: {now} bytes after, {before} before: replaced"
        );
    }
    eprintln!("after the in-place change: {now:?}; leaf {l}");

    // The same end state as a rebuild (which resets the counters).
    let in_place = config(&t);
    let out = t.apply_stdout(&v2, &["--rebuild"]);
    assert!(out.contains("tree rebuilt"), "--rebuild: {out}");
    assert_eq!(config(&t), in_place, "in place and rebuilt differ");
    let rebuilt = class_ok(&t, "lan0", "1:10");
    assert!(rebuilt.sent < lan.sent, "{rebuilt:?} after a rebuild");

    // Unit b gets an allocation: another class, the trees are rebuilt.
    transfer(&t, &t.a);
    let lan = class_ok(&t, "lan0", "1:10");
    assert!(lan.sent > BUSY, "{lan:?}");
    assert!(class(&t, "lan0", "1:11").is_none());
    let v3 = t.write_policy("v3.toml", &policy(3, (5_000_000, 20_000_000), true));
    let out = t.apply_stdout(&v3, &[]);
    assert!(out.contains("tree rebuilt"), "unit added: {out}");
    let a = class_ok(&t, "lan0", "1:10");
    assert!(a.sent < lan.sent, "{a:?}: not rebuilt");
    assert!(a.line.contains("rate 5Mbit ceil 20Mbit"), "{a:?}");
    for dev in ["lan0", "wan0"] {
        let b = class_ok(&t, dev, "1:11");
        assert!(b.line.contains("parent 1:1 "), "{b:?}");
        let want = if dev == "lan0" {
            "rate 10Mbit ceil 30Mbit"
        } else {
            "rate 8Mbit ceil 24Mbit"
        };
        assert!(b.line.contains(want), "{dev} {b:?}");
        assert!(leaf(&t, dev, "1:11").contains(" 11: parent 1:11"));
    }
    // Unit b's traffic lands in its new class.
    transfer(&t, &t.b);
    let b = class_ok(&t, "lan0", "1:11");
    assert!(b.sent > BUSY, "{b:?}");
    // And a rebuild of v3 gives the same tree.
    let after = config(&t);
    t.apply_stdout(&v3, &["--rebuild"]);
    assert_eq!(config(&t), after);
}

#[test]
fn running_agent_changes_rates_in_place_and_rebuilds_for_a_new_unit() {
    assert!(is_root(), "enforcement tests need root (CI runs as root)");
    let mut t = Topo::new("ed");
    t.iperf_server(&t.inet.clone(), 5201);
    let policy_file = t.dir.path().join("policy.toml");
    write_atomically(&policy_file, &policy(1, (10_000_000, 30_000_000), false));
    t.write_config(Some(&policy_file));
    let log = t.dir.path().join("agent.log");
    let agent = common::agent_bin();
    let run = format!(
        "exec {} run --config {} 2>{}",
        agent.display(),
        t.config.display(),
        log.display()
    );
    let router = t.router.clone();
    t.lab.spawn(&router, &["sh", "-c", &run], true);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_for(30, || class(&t, "lan0", "1:10").is_some()),
        "agent run did not apply the policy file: {}",
        log_text()
    );
    assert!(log_text().contains("tree rebuilt"), "{}", log_text());
    transfer(&t, &t.a);
    let lan = class_ok(&t, "lan0", "1:10");
    let wan = class_ok(&t, "wan0", "1:10");
    assert!(lan.sent > BUSY && wan.sent > BUSY, "{lan:?} {wan:?}");
    let roots = [("lan0", root(&t, "lan0")), ("wan0", root(&t, "wan0"))];

    // A rate change in the policy file: the running agent changes the
    // classes whose rates changed, in place.
    write_atomically(&policy_file, &policy(2, (5_000_000, 20_000_000), false));
    assert!(
        wait_for(10, || class_ok(&t, "lan0", "1:10")
            .line
            .contains("rate 5Mbit ceil 20Mbit")),
        "rate change not applied: {}",
        log_text()
    );
    assert!(
        wait_for(5, || log_text().contains("rates changed in place")),
        "{}",
        log_text()
    );
    assert_kept(
        &t,
        &[("lan0", "1:10", lan.sent), ("wan0", "1:10", wan.sent)],
        &roots,
    );

    // Unit b gets an allocation: rebuilt.
    let lan = class_ok(&t, "lan0", "1:10");
    write_atomically(&policy_file, &policy(3, (5_000_000, 20_000_000), true));
    assert!(
        wait_for(10, || class(&t, "wan0", "1:11").is_some()),
        "unit b's class not added: {}",
        log_text()
    );
    assert!(
        wait_for(5, || log_text().matches(": tree rebuilt").count() == 2),
        "{}",
        log_text()
    );
    let a = class_ok(&t, "lan0", "1:10");
    assert!(a.sent < lan.sent, "{a:?}: not rebuilt");
    transfer(&t, &t.b);
    assert!(class_ok(&t, "wan0", "1:11").sent > BUSY);
}

#[test]
fn a_refused_in_place_change_falls_back_to_a_rebuild() {
    assert!(is_root(), "enforcement tests need root (CI runs as root)");
    let t = Topo::new("eo");
    let v1 = t.write_policy("v1.toml", &policy(1, (10_000_000, 30_000_000), false));
    t.apply_ok(&v1);

    // A `tc` that refuses every in-place batch (as a kernel without the
    // change operation would) and runs everything else.
    let real_tc = sh_out("command -v tc").trim().to_string();
    let bin = t.dir.path().join("fakebin");
    std::fs::create_dir(&bin).unwrap();
    let fake = bin.join("tc");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nif [ \"$1\" = -batch ]; then\n  input=$(cat)\n  case \"$input\" in\n    *'class change'*) echo 'injected refusal' >&2; exit 2;;\n  esac\n  printf '%s\\n' \"$input\" | exec {real_tc} -batch -\nfi\nexec {real_tc} \"$@\"\n"
        ),
    )
    .unwrap();
    common::netns::sh(&format!("chmod +x {}", fake.display()));

    let v2 = t.write_policy("v2.toml", &policy(2, (5_000_000, 20_000_000), false));
    let out = t.apply_with_path(&v2, Some(&bin));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("tree rebuilt (the in-place change failed: ")
            && stdout.contains("injected refusal"),
        "{stdout}"
    );
    let a = class_ok(&t, "lan0", "1:10");
    assert!(a.line.contains("rate 5Mbit ceil 20Mbit"), "{a:?}");
    // The same state as an in-place change with the real tc would leave.
    let rebuilt = config(&t);
    let v1_again = t.write_policy("v1b.toml", &policy(3, (10_000_000, 30_000_000), false));
    t.apply_ok(&v1_again);
    let v2_again = t.write_policy("v2b.toml", &policy(4, (5_000_000, 20_000_000), false));
    assert!(t
        .apply_stdout(&v2_again, &[])
        .contains("rates changed in place"));
    assert_eq!(config(&t), rebuilt);
}
