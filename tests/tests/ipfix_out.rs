//! IPFIX export checked against a peer: the agent replays the recorded
//! fixtures with `--ipfix` to a real nfcapd, and nfdump's reading of what
//! nfcapd stored must equal the agent's own JSONL, per flow and direction.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use simpul_proto::RecordKind;

/// (protocol as nfdump names it, source, source port, destination,
/// destination port, VLAN).
type Key = (String, IpAddr, u16, IpAddr, u16, u16);
/// (records, packets, bytes, reverse packets, reverse bytes).
type Totals = (u64, u64, u64, u64, u64);

fn fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("tests/fixtures exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("pcap" | "pcapng")
            )
        })
        .collect();
    v.sort();
    assert!(v.len() >= 6, "expected the recorded fixtures, found {v:?}");
    v
}

/// nfcapd on a loopback port of its own, writing into `dir`.
struct Nfcapd {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Nfcapd {
    fn start(dir: &Path) -> Nfcapd {
        for _ in 0..20 {
            // A port free a moment ago; another process taking it in between
            // shows as nfcapd exiting, and the next port is tried.
            let port = UdpSocket::bind("127.0.0.1:0")
                .and_then(|s| s.local_addr())
                .expect("a free UDP port")
                .port();
            let log = dir.join(format!("nfcapd-{port}.log"));
            let flows = dir.join(format!("flows-{port}"));
            std::fs::create_dir_all(&flows).expect("nfcapd directory");
            // nfcapd logs to stderr when it runs in the foreground.
            let out = std::fs::File::create(&log).expect("nfcapd log");
            let err = out.try_clone().expect("nfcapd log");
            let child = Command::new("nfcapd")
                .args(["-b", "127.0.0.1", "-p", &port.to_string(), "-t", "3600"])
                .arg("-w")
                .arg(&flows)
                .args(["-B", "4194304", "-I", "simpul-ipfix-test"])
                .stdout(out)
                .stderr(Stdio::from(err))
                .spawn()
                .expect("nfcapd must be installed (scripts/setup.sh installs nfdump)");
            let mut n = Nfcapd { child, port, log };
            if n.wait_listening() {
                return n;
            }
            n.stop();
        }
        panic!("nfcapd did not start on any of 20 ports");
    }

    fn dir(&self) -> PathBuf {
        self.log
            .parent()
            .expect("log in a directory")
            .join(format!("flows-{}", self.port))
    }

    /// Whether the port shows in /proc/net/udp while nfcapd runs.
    fn wait_listening(&mut self) -> bool {
        let needle = format!("0100007F:{:04X}", self.port);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            let udp = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
            if udp.lines().any(|l| l.contains(&needle)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// SIGTERM: nfcapd closes its file under its final name and exits.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!("nfcapd did not stop on SIGTERM");
    }
}

impl Drop for Nfcapd {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn nfdump_proto(name: &str) -> String {
    match name {
        "tcp" => "TCP".into(),
        "udp" => "UDP".into(),
        "icmp" => "ICMP".into(),
        "icmpv6" => "ICMP6".into(),
        n => panic!("no nfdump name for protocol {n} in the fixtures' flows"),
    }
}

fn agent_totals(jsonl: &Path) -> BTreeMap<Key, Totals> {
    let mut out: BTreeMap<Key, Totals> = BTreeMap::new();
    for r in read_jsonl(jsonl)
        .iter()
        .filter(|r| r.kind == RecordKind::Final)
    {
        if r.packets_up + r.packets_down == 0 {
            continue;
        }
        let k = (
            nfdump_proto(&r.proto),
            r.src_ip,
            r.src_port.unwrap_or(0),
            r.dst_ip,
            r.dst_port.unwrap_or(0),
            r.vlan.unwrap_or(0),
        );
        let t = out.entry(k).or_default();
        t.0 += 1;
        t.1 += r.packets_up;
        t.2 += r.bytes_up;
        t.3 += r.packets_down;
        t.4 += r.bytes_down;
    }
    out
}

fn nfdump(args: &[&str], dir: &Path) -> String {
    let o = Command::new("nfdump")
        .arg("-R")
        .arg(dir)
        .args(args)
        .output()
        .expect("run nfdump");
    assert!(
        o.status.success(),
        "nfdump {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("nfdump output is UTF-8")
}

/// nfdump's CSV of every stored record, summed per key.
fn nfdump_totals(dir: &Path) -> BTreeMap<Key, Totals> {
    let csv = nfdump(&["-o", "csv"], dir);
    let mut lines = csv.lines();
    let header: Vec<&str> = lines
        .find(|l| l.starts_with("ts,"))
        .unwrap_or_else(|| panic!("no CSV header in nfdump's output:\n{csv}"))
        .split(',')
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("nfdump CSV has no {name} column: {header:?}"))
    };
    let (pr, sa, sp, da, dp, svln) = (
        col("pr"),
        col("sa"),
        col("sp"),
        col("da"),
        col("dp"),
        col("svln"),
    );
    let (ipkt, ibyt, opkt, obyt) = (col("ipkt"), col("ibyt"), col("opkt"), col("obyt"));
    let mut out: BTreeMap<Key, Totals> = BTreeMap::new();
    for line in lines.take_while(|l| !l.trim().is_empty() && !l.starts_with("Summary")) {
        let f: Vec<&str> = line.split(',').collect();
        let n = |i: usize| -> u64 {
            f[i].trim()
                .parse()
                .unwrap_or_else(|_| panic!("column {} not a number in {line}", header[i]))
        };
        let ip = |i: usize| -> IpAddr {
            f[i].trim()
                .parse()
                .unwrap_or_else(|_| panic!("column {} not an address in {line}", header[i]))
        };
        let k = (
            f[pr].trim().to_string(),
            ip(sa),
            n(sp) as u16,
            ip(da),
            n(dp) as u16,
            n(svln) as u16,
        );
        let t = out.entry(k).or_default();
        t.0 += 1;
        t.1 += n(ipkt);
        t.2 += n(ibyt);
        t.3 += n(opkt);
        t.4 += n(obyt);
    }
    out
}

/// Replay every fixture with `extra` (the IPFIX target), stop nfcapd, and
/// compare. Returns (agent final records, nfdump records).
fn replay_and_compare(nf: &mut Nfcapd, config: &Path, extra: &[String], work: &Path) -> (u64, u64) {
    let jsonl = work.join(format!("flows-{}.jsonl", nf.port));
    let mut cmd = Command::new(agent_bin());
    cmd.arg("replay");
    for p in fixtures() {
        cmd.arg("--pcap").arg(p);
    }
    cmd.arg("--config")
        .arg(config)
        .arg("--flows-out")
        .arg(&jsonl)
        .arg("--json-summary")
        .args(extra);
    let o = cmd.output().expect("run the agent");
    assert!(
        o.status.success(),
        "agent replay failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).expect("the JSON summary");
    let ipfix = &summary["ipfix"];
    assert_eq!(ipfix["send_errors"], 0, "{summary}");
    assert_eq!(ipfix["record_errors"], 0, "{summary}");
    assert!(ipfix["messages"].as_u64().unwrap_or(0) > 0, "{summary}");
    // Give nfcapd the last datagrams (loopback delivers at once; its
    // reading thread may still be behind) before it is stopped.
    let sent = ipfix["records"].as_u64().unwrap_or(0);
    std::thread::sleep(Duration::from_millis(300));
    nf.stop();

    let dir = nf.dir();
    let info = nfdump(&["-I"], &dir);
    assert!(
        info.lines().any(|l| l.trim() == "Sequence failures: 0"),
        "nfdump -I shows sequence failures (or none):\n{info}"
    );
    let agent = agent_totals(&jsonl);
    let peer = nfdump_totals(&dir);
    let mut diffs = Vec::new();
    for (k, a) in &agent {
        match peer.get(k) {
            None => diffs.push(format!("{k:?}: agent {a:?}, nfdump none")),
            Some(p) if (a.1, a.2, a.3, a.4) != (p.1, p.2, p.3, p.4) => diffs.push(format!(
                "{k:?}: agent pkts/bytes/rev pkts/rev bytes {:?}, nfdump {:?}",
                (a.1, a.2, a.3, a.4),
                (p.1, p.2, p.3, p.4)
            )),
            Some(_) => {}
        }
    }
    for k in peer.keys().filter(|k| !agent.contains_key(*k)) {
        diffs.push(format!("{k:?}: only in nfdump {:?}", peer[k]));
    }
    assert!(
        diffs.is_empty(),
        "{} of {} flows differ:\n{}",
        diffs.len(),
        agent.len(),
        diffs.join("\n")
    );
    let finals: u64 = agent.values().map(|t| t.0).sum();
    let stored: u64 = peer.values().map(|t| t.0).sum();
    assert_eq!(stored, sent, "nfcapd stored every record the agent sent");
    (finals, stored)
}

fn config_with(work: &Path, export: &str) -> PathBuf {
    let base = std::fs::read_to_string(fixtures_dir().join("agent.toml")).expect("agent.toml");
    let inventory = fixtures_dir().join("inventory.toml");
    let text = base.replace(
        "inventory_file = \"inventory.toml\"",
        &format!("inventory_file = {:?}", inventory.display().to_string()),
    );
    assert_ne!(text, base, "the fixture config names its inventory");
    let path = work.join("agent-ipfix.toml");
    std::fs::write(&path, format!("{text}\n{export}")).expect("write config");
    path
}

#[test]
fn ipfix_to_nfcapd_equals_the_agents_jsonl_per_flow_and_direction() {
    let work = tempfile::tempdir().expect("tempdir");
    let mut nf = Nfcapd::start(work.path());
    let config = fixtures_dir().join("agent.toml");
    let target = ["--ipfix".to_string(), format!("127.0.0.1:{}", nf.port)];
    let (finals, stored) = replay_and_compare(&mut nf, &config, &target, work.path());
    // download.pcapng runs longer than the 2 s active timeout: its interim
    // pieces are separate records whose deltas must add up.
    assert!(
        stored > finals,
        "expected interim pieces: {stored} records for {finals} flows"
    );
}

#[test]
fn ipfix_from_config_with_the_smallest_mtu_still_adds_up() {
    let work = tempfile::tempdir().expect("tempdir");
    let mut nf = Nfcapd::start(work.path());
    let config = config_with(
        work.path(),
        &format!(
            "[export.ipfix]\ncollector = \"127.0.0.1:{}\"\nmtu = 600\ntemplate_refresh_messages = 2\nobservation_domain_id = 4242\n",
            nf.port
        ),
    );
    let (finals, stored) = replay_and_compare(&mut nf, &config, &[], work.path());
    assert!(stored > finals);
    let log = std::fs::read_to_string(&nf.log).unwrap_or_default();
    assert!(
        log.contains("Observation domain 4242"),
        "nfcapd saw the configured observation domain:\n{log}"
    );
}
