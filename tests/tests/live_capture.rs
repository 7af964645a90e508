//! Live capture on a veth inside network namespaces, with dumpcap capturing the
//! same interface at the same time: the agent's flows must equal tshark's
//! reading of dumpcap's file, packet for packet and byte for byte. The
//! default capture is the TPACKET_V3 ring; a second test runs a ring agent
//! and a pnet agent side by side on the same traffic.

// A test: a failed unwrap is a failed test (also in its helpers).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::time::Duration;

use common::netns::{sh, wait_for, Lab};
use common::*;

#[test]
fn live_flows_equal_tshark_on_the_same_interface() {
    let run = capture_lab("lv", &[r#""auto""#], false);
    let log = &run.logs[0];
    assert!(
        log.iter()
            .any(|l| l.contains("capturing") && l.contains("method=ring")),
        "the ring was not used: {log:#?}"
    );
    check_agent(&run.records[0], log, &run.want);
}

/// The ring (read by the processing thread, and two rings in a fanout
/// group on their own threads) and the pnet fallback, capturing the same
/// veth at the same time, give the same flows (and all equal tshark's).
#[test]
fn ring_and_pnet_capture_give_the_same_flows() {
    let run = capture_lab(
        "lr",
        &[r#""ring""#, r#""pnet""#, "\"ring\"\nthreads = 2"],
        false,
    );
    let methods = [
        "method=ring",
        "method=pnet",
        "method=ring (2 fanout threads)",
    ];
    for (log, method) in run.logs.iter().zip(methods) {
        assert!(
            log.iter()
                .any(|l| l.contains("capturing") && l.contains(method)),
            "{method} not used: {log:#?}"
        );
    }
    for (records, log) in run.records.iter().zip(&run.logs) {
        check_agent(records, log, &run.want);
    }
    let ring = agent_conversations(&run.records[0]);
    let pnet = agent_conversations(&run.records[1]);
    assert!(ring.len() >= 8, "too little traffic: {ring:?}");
    let diffs = diff_conversations(&ring, &pnet);
    assert!(diffs.is_empty(), "ring vs pnet:\n{}", diffs.join("\n"));
    let fanout = agent_conversations(&run.records[2]);
    let diffs = diff_conversations(&fanout, &pnet);
    assert!(diffs.is_empty(), "fanout vs pnet:\n{}", diffs.join("\n"));
}

/// Two fanout threads, each with a flow table of its own, against one ring
/// read by one processor, on traffic between many address pairs with a
/// fragmented datagram among it: both equal tshark's flows, both threads
/// got packets, no flow is split over the two tables (as many final
/// records per conversation as the one processor's), flow ids are
/// distinct, and the merged per-second counters add up to the flows.
#[test]
fn fanout_threads_with_a_flow_table_each_equal_one_processor() {
    let run = capture_lab("lf", &[r#""ring""#, "\"ring\"\nthreads = 2"], true);
    for (records, log) in run.records.iter().zip(&run.logs) {
        check_agent(records, log, &run.want);
    }
    let log = &run.logs[1];
    assert!(
        log.iter()
            .any(|l| l.contains("flow table sharded") && l.contains("shards=2")),
        "the flow table was not sharded: {log:#?}"
    );
    let totals = log
        .iter()
        .find(|l| l.contains("capture totals"))
        .expect("capture totals logged");
    let per_thread: Vec<u64> = totals
        .split("per_thread=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no per-thread counts: {totals}"))
        .split(',')
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(per_thread.len(), 2, "{totals}");
    assert!(
        per_thread.iter().all(|&n| n >= 20),
        "a fanout thread got (almost) nothing: {totals}"
    );
    let finals = |records: &[simpul_proto::FlowRecord]| {
        let mut per_conv = std::collections::BTreeMap::new();
        for r in records
            .iter()
            .filter(|r| r.kind == simpul_proto::RecordKind::Final)
        {
            let k = conv_key(
                String::new(),
                proto_number(&r.proto),
                (r.src_ip.to_string(), r.src_port.unwrap_or(0)),
                (r.dst_ip.to_string(), r.dst_port.unwrap_or(0)),
            );
            *per_conv.entry(k).or_insert(0u32) += 1;
        }
        per_conv
    };
    let (one, sharded) = (finals(&run.records[0]), finals(&run.records[1]));
    assert!(one.len() >= 20, "too little traffic: {one:?}");
    assert_eq!(sharded, one, "a flow split over the two tables");
    let mut ids: Vec<u64> = run.records[1]
        .iter()
        .filter(|r| r.kind == simpul_proto::RecordKind::Final)
        .map(|r| r.flow_id)
        .collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "flow ids repeat across the shards");
    // 100 + 4000 (three fragments) + 200 bytes of UDP: five packets.
    let fragmented = run
        .want
        .iter()
        .find(|(k, _)| k.proto == 17 && (k.a.1 == 9998 || k.b.1 == 9998))
        .map(|(_, t)| t.sent.values().map(|v| v.0).sum::<u64>());
    assert_eq!(
        fragmented,
        Some(5),
        "the fragmented datagram's flow in the reference"
    );
    for (i, (records, counters)) in run.records.iter().zip(&run.counters).enumerate() {
        let flows = records
            .iter()
            .filter(|r| r.kind == simpul_proto::RecordKind::Final)
            .fold((0u64, 0u64), |(p, b), r| {
                (
                    p + r.packets_up + r.packets_down,
                    b + r.bytes_up + r.bytes_down,
                )
            });
        let counted = counters.iter().fold((0u64, 0u64), |(p, b), c| {
            (
                p + c.packets_in + c.packets_out,
                b + c.bytes_in + c.bytes_out,
            )
        });
        assert_eq!(
            counted, flows,
            "agent {i}: counters vs flows (packets, bytes)"
        );
    }
}

struct LabRun {
    /// Per agent, in the order of the methods asked for.
    records: Vec<Vec<simpul_proto::FlowRecord>>,
    counters: Vec<Vec<simpul_proto::CounterSample>>,
    logs: Vec<Vec<String>>,
    want: std::collections::BTreeMap<ConvKey, ConvTotals>,
}

/// One agent per capture method (what follows `method = ` in its
/// `[capture]` section) on the client's veth, dumpcap beside them,
/// the same traffic for all; with `spread`, also to and from 16 more
/// server addresses (many address pairs) and a fragmented datagram.
fn capture_lab(tag: &str, methods: &[&str], spread: bool) -> LabRun {
    assert!(is_root(), "live capture needs root (CI runs as root)");
    let agent = agent_bin();
    let mut lab = Lab::new(tag);
    let client = lab.ns("client");
    let server = lab.ns("server");
    lab.link(
        &client,
        "lan0",
        "10.10.1.10/24",
        &server,
        "up0",
        "10.10.1.1/24",
    );
    sh(&format!("ip -n {server} addr add 203.0.113.10/32 dev lo"));
    if spread {
        for i in 20..36 {
            sh(&format!("ip -n {server} addr add 203.0.113.{i}/32 dev lo"));
        }
    }
    sh(&format!(
        "ip -n {client} route add 203.0.113.0/24 via 10.10.1.1"
    ));

    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("big.bin"), vec![0x5a; 3_000_000]).unwrap();
    std::fs::write(www.join("index.html"), "halo").unwrap();
    std::fs::write(
        dir.path().join("inventory.toml"),
        r#"[[agencies]]
code = "diskominfo"
[[agencies.units]]
code = "sekretariat"
subnets = ["10.10.1.0/24"]
[[nodes]]
id = "live-test"
agency = "diskominfo"
"#,
    )
    .unwrap();
    let mut flows = Vec::new();
    let mut counter_files = Vec::new();
    let mut cfgs = Vec::new();
    for (i, method) in methods.iter().enumerate() {
        let f = dir.path().join(format!("flows-{i}.jsonl"));
        let c = dir.path().join(format!("counters-{i}.jsonl"));
        let cfg = dir.path().join(format!("agent-{i}.toml"));
        std::fs::write(
            &cfg,
            format!(
                r#"[agent]
id = "live-test"
state_dir = "{}"
[capture]
interfaces = ["lan0"]
method = {method}
[flows]
active_timeout_secs = 1
[output]
flows_jsonl = "{}"
counters_jsonl = "{}"
[standalone]
inventory_file = "inventory.toml"
"#,
                dir.path().join(format!("state-{i}")).display(),
                f.display(),
                c.display()
            ),
        )
        .unwrap();
        flows.push(f);
        counter_files.push(c);
        cfgs.push(cfg);
    }
    let pcap = dir.path().join("ref.pcapng");

    lab.spawn(
        &server,
        &[
            "python3",
            "-m",
            "http.server",
            "-b",
            "203.0.113.10",
            "-d",
            www.to_str().unwrap(),
            "8080",
        ],
        true,
    );
    let agents: Vec<usize> = cfgs
        .iter()
        .map(|cfg| {
            lab.spawn_piped(
                &client,
                &[
                    agent.to_str().unwrap(),
                    "run",
                    "--config",
                    cfg.to_str().unwrap(),
                ],
            )
        })
        .collect();
    let dc = lab.spawn_piped(
        &client,
        &[
            "dumpcap",
            "-B",
            "64",
            "-i",
            "lan0",
            "-w",
            pcap.to_str().unwrap(),
        ],
    );

    // Every capturer must be up before the first packet.
    let mut logs: Vec<(std::sync::mpsc::Receiver<String>, Vec<String>)> = Vec::new();
    for &ag in &agents {
        let agent_err = lab.child(ag).stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(agent_err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        logs.push((rx, Vec::new()));
    }
    for (rx, agent_log) in &mut logs {
        let up = wait_for(20, || {
            while let Ok(l) = rx.try_recv() {
                agent_log.push(l);
            }
            agent_log.iter().any(|l| l.contains("agent running"))
        });
        assert!(up, "agent did not start: {agent_log:#?}");
    }
    let dumpcap_err = lab.child(dc).stderr.take().unwrap();
    let (dtx, drx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(dumpcap_err).lines().map_while(Result::ok) {
            let _ = dtx.send(line);
        }
    });
    assert!(
        wait_for(20, || drx.try_recv().is_ok_and(|l| l.contains("Capturing"))) || pcap.exists(),
        "dumpcap did not start"
    );
    assert!(
        wait_for(20, || std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &client,
                "curl",
                "-sf",
                "-o",
                "/dev/null",
                "http://203.0.113.10:8080/index.html"
            ])
            .status()
            .is_ok_and(|s| s.success())),
        "http server did not come up"
    );

    // Traffic: a 3 MB download limited to run past the 1 s active timeout,
    // several small requests, pings and UDP datagrams.
    lab.exec(
        &client,
        "curl -sf --limit-rate 1500k -o /dev/null http://203.0.113.10:8080/big.bin",
    );
    for _ in 0..5 {
        lab.exec(&client, "curl -sf -o /dev/null -H 'Host: portal.example.go.id' http://203.0.113.10:8080/index.html");
    }
    lab.exec(&client, "ping -c 3 -i 0.2 -q 203.0.113.10");
    lab.exec(&client, "python3 -c \"import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); [s.sendto(b'x'*n, ('203.0.113.10', 9999)) for n in (10, 500, 1400)]\"");
    if spread {
        // A datagram over the veth's MTU leaves in fragments; its flow
        // also has whole datagrams.
        lab.exec(&client, "python3 -c \"import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); [s.sendto(b'x'*n, ('203.0.113.10', 9998)) for n in (100, 4000, 200)]\"");
        for i in 20..36 {
            lab.exec(&client, &format!("ping -c 2 -i 0.2 -q 203.0.113.{i}"));
            lab.exec(&client, &format!("python3 -c \"import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); [s.sendto(b'y'*n, ('203.0.113.{i}', 7000 + n)) for n in (1, 2)]\""));
        }
    }
    std::thread::sleep(Duration::from_millis(500));

    let st = lab.signal_and_wait(dc, "INT");
    assert!(st.success() || st.code().is_none(), "dumpcap exit {st:?}");
    // The reference must be complete too: dumpcap reports its own drops at exit.
    let mut dumpcap_log = Vec::new();
    while let Ok(l) = drx.recv_timeout(Duration::from_millis(300)) {
        dumpcap_log.push(l);
    }
    let summary = dumpcap_log
        .iter()
        .find(|l| l.contains("received/dropped on interface"))
        .unwrap_or_else(|| panic!("no dumpcap summary: {dumpcap_log:?}"));
    let counts = summary
        .split("': ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or("");
    assert!(counts.ends_with("/0"), "dumpcap dropped packets: {summary}");
    let mut run = LabRun {
        records: Vec::new(),
        counters: Vec::new(),
        logs: Vec::new(),
        want: tshark_conversations(&pcap),
    };
    for (((&ag, (rx, mut agent_log)), f), c) in
        agents.iter().zip(logs).zip(&flows).zip(&counter_files)
    {
        let st = lab.signal_and_wait(ag, "TERM");
        while let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
            agent_log.push(l);
        }
        assert!(st.success(), "agent exit {st:?}: {agent_log:#?}");
        run.records.push(read_jsonl(f));
        run.counters.push(
            std::fs::read_to_string(c)
                .unwrap()
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
        );
        run.logs.push(agent_log);
    }
    run
}

/// One agent's flows against tshark's, and its capture counters.
fn check_agent(
    records: &[simpul_proto::FlowRecord],
    agent_log: &[String],
    want: &std::collections::BTreeMap<ConvKey, ConvTotals>,
) {
    let interim = records
        .iter()
        .filter(|r| r.kind == simpul_proto::RecordKind::Interim)
        .count();
    assert!(
        interim >= 1,
        "the download should have produced interim records"
    );
    let got = agent_conversations(records);
    let diffs = diff_conversations(&got, want);
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}\nagent log:\n{}",
        diffs.len(),
        diffs.join("\n"),
        agent_log.join("\n")
    );
    let bytes: u64 = records
        .iter()
        .filter(|r| r.kind == simpul_proto::RecordKind::Final)
        .map(|r| r.bytes_up + r.bytes_down)
        .sum();
    assert!(bytes > 3_000_000, "download missing: {bytes}");
    assert!(records
        .iter()
        .any(|r| r.http_host.as_deref() == Some("portal.example.go.id")));
    assert!(records
        .iter()
        .all(|r| r.src_ip.to_string() != "10.10.1.10" || r.unit == "sekretariat"));
    // The kernel and the hand-off dropped nothing at this rate.
    let totals = agent_log
        .iter()
        .find(|l| l.contains("capture totals"))
        .expect("capture totals logged");
    assert!(
        totals.contains("kernel_drops=0") && totals.contains("queue_drops=0"),
        "{totals}"
    );
}
