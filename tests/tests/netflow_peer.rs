//! NetFlow/IPFIX in, checked against a peer: softflowd reads one generated
//! capture and exports v5, v9 and IPFIX; a UDP tee gives every datagram to
//! both Simpul's collector and nfcapd; the flows, bytes and packets Simpul
//! stored for the exporter equal `nfdump -I`'s totals of nfcapd's files,
//! version by version. The exporter is a node: up while it exports, down
//! after its stream stops.

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::collector::*;
use common::netns::wait_for;
use common::repo_root;

const NODE: &str = "mikrotik-nf";

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port")
}

/// Every datagram sent to the returned port goes on to each of `to`.
fn tee(to: Vec<u16>, stop: Arc<AtomicBool>) -> u16 {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind the tee");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("tee timeout");
    let port = sock.local_addr().expect("tee address").port();
    let out = UdpSocket::bind("127.0.0.1:0").expect("bind the tee's sender");
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_535];
        while !stop.load(Ordering::Relaxed) {
            if let Ok(n) = sock.recv(&mut buf) {
                for p in &to {
                    out.send_to(&buf[..n], ("127.0.0.1", *p)).expect("tee send");
                }
                // Paced like a router's exporter, so neither receiver's
                // socket buffer overflows on a loaded test machine.
                std::thread::sleep(Duration::from_micros(300));
            }
        }
    });
    port
}

/// A capture of generated traffic dated now (softflowd -a keeps the
/// capture's times, and a flow dated before retention is not stored).
fn capture(dir: &Path) -> std::path::PathBuf {
    let raw = dir.join("imix-raw.pcap");
    let st = Command::new("python3")
        .arg(repo_root().join("bench/gen_imix.py"))
        .arg("--out")
        .arg(&raw)
        .args([
            "--packets",
            "20000",
            "--flows",
            "2000",
            "--duration",
            "5",
            "--quiet",
        ])
        .status()
        .expect("run gen_imix.py");
    assert!(st.success(), "gen_imix.py failed");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    // gen_imix.py starts its packets at 1 700 000 000.
    let shift = now - 1_700_000_000 - 60;
    let pcap = dir.join("imix.pcap");
    let st = Command::new("editcap")
        .args(["-F", "pcap", "-t", &shift.to_string()])
        .arg(&raw)
        .arg(&pcap)
        .status()
        .expect("run editcap");
    assert!(st.success(), "editcap failed");
    pcap
}

/// (flows, bytes, packets) nfdump reads from nfcapd's files.
fn nfdump_totals(dir: &Path) -> (u64, u64, u64) {
    let o = Command::new("nfdump")
        .arg("-R")
        .arg(dir)
        .arg("-I")
        .output()
        .expect("run nfdump");
    let text = String::from_utf8_lossy(&o.stdout);
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {key} in nfdump -I:\n{text}"))
    };
    (get("Flows:"), get("Bytes:"), get("Packets:"))
}

/// (flows, bytes, packets) Simpul stored for the exporter's node.
fn simpul_totals(c: &Collector) -> (u64, u64, u64) {
    let csv = curl_at(
        "127.0.0.1",
        c.http,
        "/api/v1/flows?agency=dinkes&from=0&limit=100000&format=csv",
        c.token.as_deref(),
    )
    .expect("GET /api/v1/flows as CSV");
    let mut lines = csv.trim_start_matches('\u{feff}').lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no {name} column in {header:?}"))
    };
    let (node, cols) = (
        col("node_id"),
        ["bytes_up", "bytes_down", "packets_up", "packets_down"].map(col),
    );
    let (mut flows, mut bytes, mut packets) = (0, 0, 0);
    for line in lines {
        // Generated traffic has no names: no field holds a comma.
        let f: Vec<&str> = line.split(',').collect();
        if f.get(node) != Some(&NODE) {
            continue;
        }
        let n = |i: usize| f[cols[i]].parse::<u64>().expect("a count");
        flows += 1;
        bytes += n(0) + n(1);
        packets += n(2) + n(3);
    }
    (flows, bytes, packets)
}

fn liveness(c: &Collector) -> String {
    let nodes = c.get("/api/v1/nodes");
    nodes
        .as_array()
        .and_then(|a| a.iter().find(|n| n["node_id"] == NODE))
        .map(|n| n["liveness"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

fn start_nfcapd(dir: &Path, port: u16) -> Child {
    std::fs::create_dir_all(dir).expect("nfcapd dir");
    let child = Command::new("nfcapd")
        .arg("-w")
        .arg(dir)
        .args(["-p", &port.to_string(), "-b", "127.0.0.1", "-B", "8388608"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nfcapd");
    std::thread::sleep(Duration::from_millis(800));
    child
}

#[test]
fn softflowd_v5_v9_ipfix_totals_equal_nfdump() {
    for tool in ["softflowd", "nfcapd", "nfdump", "editcap", "python3"] {
        assert!(
            Command::new("which")
                .arg(tool)
                .output()
                .is_ok_and(|o| o.status.success()),
            "{tool} is missing (scripts/setup.sh installs it)"
        );
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let pcap = capture(dir);
    let nf_port = free_udp_port();
    let mut c = Collector::new(dir, &[("dinkes", 0)], "127.0.0.1", &[]);
    let mut cfg = std::fs::read_to_string(&c.config).expect("collector.toml");
    cfg.push_str(&format!(
        "[netflow]\nlisten = \"127.0.0.1:{nf_port}\"\naccept_unlisted = false\n[[netflow.exporter]]\naddress = \"127.0.0.1\"\nagency = \"dinkes\"\nnode_id = \"{NODE}\"\n"
    ));
    std::fs::write(&c.config, cfg).expect("write collector.toml");
    c.add_node("dinkes", NODE, "");
    c.start();

    let mut before = (0, 0, 0);
    for version in ["5", "9", "10"] {
        let nfdir = dir.join(format!("nfcapd-v{version}"));
        let cap_port = free_udp_port();
        let mut nfcapd = start_nfcapd(&nfdir, cap_port);
        let stop = Arc::new(AtomicBool::new(false));
        let port = tee(vec![nf_port, cap_port], stop.clone());
        let st = Command::new("softflowd")
            .args(["-d", "-a", "-c", "none", "-v", version])
            .arg("-p")
            .arg(dir.join("softflowd.pid"))
            .args(["-n", &format!("127.0.0.1:{port}")])
            .arg("-r")
            .arg(&pcap)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run softflowd");
        assert!(st.success(), "softflowd -v {version} failed");
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
        let _ = Command::new("kill")
            .args(["-TERM", &nfcapd.id().to_string()])
            .status();
        let _ = nfcapd.wait();
        let peer = nfdump_totals(&nfdir);
        assert!(peer.0 > 1000, "v{version}: nfcapd got {peer:?}");
        let mut got = (0, 0, 0);
        wait_for(30, || {
            let t = simpul_totals(&c);
            got = (t.0 - before.0, t.1 - before.1, t.2 - before.2);
            got == peer
        });
        assert_eq!(
            got, peer,
            "v{version}: Simpul (flows, bytes, packets) vs nfdump's reading of nfcapd\ncollector log:\n{}",
            c.log_text()
        );
        before = simpul_totals(&c);
        assert_eq!(liveness(&c), "up", "v{version}: the exporter's node");
    }
    // The export stream was the node's heartbeat: it stopped, the node goes
    // down after [nodes] down_after_secs (3 s here).
    assert!(
        wait_for(20, || liveness(&c) == "down"),
        "the silent exporter stayed {}",
        liveness(&c)
    );
    let metrics =
        curl_at("127.0.0.1", c.http, "/metrics", c.token.as_deref()).expect("GET /metrics");
    let records = format!(
        "simpul_netflow_records_total{{node=\"{NODE}\"}} {}",
        before.0
    );
    assert!(
        metrics.contains(&records),
        "no {records:?} in /metrics:\n{metrics}"
    );
    assert!(
        !metrics.contains("simpul_netflow_decode_errors_total{"),
        "{metrics}"
    );
    // Nothing was lost on loopback: no sequence gap may be counted (v5 and
    // IPFIX number records, v9 datagrams; softflowd numbers an IPFIX
    // message by the records up to its end, not before its start).
    assert!(
        !metrics.contains("simpul_netflow_sequence_lost_total{"),
        "{metrics}"
    );
}
