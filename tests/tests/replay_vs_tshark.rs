//! `simpul-agent replay` against tshark's reading of the same captures: the
//! fixtures were recorded from real clients (tests/fixtures/make-fixtures.sh).

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::*;
use simpul_proto::{RecordKind, SiteSource, TrafficScope};

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

fn config() -> PathBuf {
    fixtures_dir().join("agent.toml")
}

fn fixture(name: &str) -> PathBuf {
    let p = fixtures_dir().join(name);
    assert!(
        p.exists(),
        "fixture {name} missing: run tests/fixtures/make-fixtures.sh"
    );
    p
}

#[test]
fn flows_bytes_and_packets_equal_tshark_for_every_fixture() {
    for pcap in fixtures() {
        let records = replay(&pcap, Some(&config()), &[]);
        let agent = agent_conversations(&records);
        let reference = tshark_conversations(&pcap);
        assert!(
            !reference.is_empty(),
            "{}: tshark saw no IP traffic",
            pcap.display()
        );
        let diffs = diff_conversations(&agent, &reference);
        assert!(
            diffs.is_empty(),
            "{}: {} differences:\n{}",
            pcap.display(),
            diffs.len(),
            diffs.join("\n")
        );
    }
}

#[test]
fn every_flow_appears_once_per_connection() {
    // A TCP connection (SYN to FIN/RST) must be one final record, not split by
    // trailing ACKs after the FINs.
    for pcap in fixtures() {
        let records = replay(&pcap, Some(&config()), &[]);
        let mut seen = BTreeSet::new();
        for r in records
            .iter()
            .filter(|r| r.proto == "tcp" && r.kind == RecordKind::Final)
        {
            let key = (r.src_ip, r.src_port, r.dst_ip, r.dst_port, r.vlan);
            assert!(
                seen.insert(key),
                "{}: connection split: {key:?}",
                pcap.display()
            );
            // Initiator is the SYN sender: the client side uses the ephemeral port.
            if r.tcp_flags_up.unwrap_or(0) & 0x02 != 0 {
                assert!(
                    r.src_port.unwrap_or(0) > 1024,
                    "{}: initiator looks like a server: {r:?}",
                    pcap.display()
                );
            }
        }
    }
}

#[test]
fn tls_sni_equal_tshark() {
    for pcap in fixtures() {
        let reference = tshark_values(
            &pcap,
            "tls.handshake.type == 1 && tcp",
            "tls.handshake.extensions_server_name",
        );
        let records = replay(&pcap, Some(&config()), &[]);
        let agent: BTreeSet<String> = records
            .iter()
            .filter(|r| r.proto == "tcp")
            .filter_map(|r| r.sni.clone())
            .collect();
        assert_eq!(agent, reference, "{}", pcap.display());
    }
    // The fixture has several names, both TLS versions and a ClientHello cut
    // over several segments; make sure the reference itself is not trivial.
    let https = fixture("https.pcapng");
    let names = tshark_values(
        &https,
        "tls.handshake.type == 1",
        "tls.handshake.extensions_server_name",
    );
    assert!(
        names.len() >= 3,
        "https fixture has too few SNIs: {names:?}"
    );
    let multi = tshark_values(
        &https,
        "tls.handshake.type == 1 && tcp.reassembled_in",
        "frame.number",
    );
    let reassembled = tshark_values(
        &https,
        "tls.handshake.type == 1 && tcp.reassembled.length",
        "tls.handshake.extensions_server_name",
    );
    assert!(
        !multi.is_empty() || !reassembled.is_empty(),
        "https fixture lacks a multi-segment ClientHello"
    );
}

#[test]
fn http_hosts_equal_tshark() {
    for pcap in fixtures() {
        let reference: BTreeSet<String> = tshark_values(&pcap, "http.request", "http.host")
            .into_iter()
            .map(|h| {
                h.rsplit_once(':').map_or(h.clone(), |(a, p)| {
                    if p.chars().all(|c| c.is_ascii_digit()) {
                        a.to_string()
                    } else {
                        h.clone()
                    }
                })
            })
            .collect();
        let records = replay(&pcap, Some(&config()), &[]);
        let agent: BTreeSet<String> = records.iter().filter_map(|r| r.http_host.clone()).collect();
        assert_eq!(agent, reference, "{}", pcap.display());
    }
}

#[test]
fn dns_names_equal_tshark_and_name_later_flows() {
    for pcap in fixtures() {
        let reference = tshark_values(&pcap, "dns", "dns.qry.name");
        let records = replay(&pcap, Some(&config()), &[]);
        let agent: BTreeSet<String> = records.iter().filter_map(|r| r.dns_query.clone()).collect();
        assert_eq!(agent, reference, "{}", pcap.display());
    }
    // The plain-TCP connection after the lookup is named only through DNS.
    let records = replay(&fixture("dns.pcapng"), Some(&config()), &[]);
    let by_dns: Vec<_> = records
        .iter()
        .filter(|r| r.site_source == Some(SiteSource::Dns) && r.proto == "tcp")
        .collect();
    assert!(
        !by_dns.is_empty(),
        "no flow named through DNS: {records:#?}"
    );
    for r in by_dns {
        assert!(
            r.site
                .as_deref()
                .is_some_and(|s| s.ends_with("example.go.id") || s.ends_with("example.com")),
            "{r:?}"
        );
    }
}

#[test]
fn quic_initial_sni_equal_tshark() {
    let pcap = fixtures_dir().join("quic.pcapng");
    if !pcap.exists() {
        panic!("quic.pcapng fixture missing: run tests/fixtures/make-fixtures.sh");
    }
    let reference = tshark_values(
        &pcap,
        "quic && tls.handshake.type == 1",
        "tls.handshake.extensions_server_name",
    );
    assert!(!reference.is_empty(), "tshark found no QUIC SNI");
    let records = replay(&pcap, Some(&config()), &[]);
    let agent: BTreeSet<String> = records
        .iter()
        .filter(|r| r.site_source == Some(SiteSource::Quic))
        .filter_map(|r| r.site.clone())
        .collect();
    assert_eq!(agent, reference);
}

#[test]
fn long_download_emits_interim_records_that_add_up() {
    let pcap = fixture("download.pcapng");
    let records = replay(&pcap, Some(&config()), &["--interim"]);
    let biggest = records
        .iter()
        .filter(|r| r.kind == RecordKind::Final)
        .max_by_key(|r| r.bytes_down)
        .expect("a final record");
    let interims: Vec<_> = records
        .iter()
        .filter(|r| r.kind == RecordKind::Interim && r.flow_id == biggest.flow_id)
        .collect();
    assert!(
        interims.len() >= 2,
        "download should cross the 2 s active timeout several times, got {}",
        interims.len()
    );
    // Interim counters are cumulative and grow; the final one is the whole flow.
    let mut last = 0;
    for r in &interims {
        assert!(r.bytes_down >= last, "interim went backwards");
        assert!(r.bytes_down <= biggest.bytes_down);
        last = r.bytes_down;
    }
    assert!(
        biggest.bytes_down > 1_000_000,
        "download too small: {}",
        biggest.bytes_down
    );
    // Without --interim only final records are written.
    let plain = replay(&pcap, Some(&config()), &[]);
    assert!(plain.iter().all(|r| r.kind == RecordKind::Final));
}

#[test]
fn flows_carry_agency_unit_and_scope() {
    let mut seen_units = BTreeSet::new();
    let mut scopes = BTreeSet::new();
    for pcap in fixtures() {
        for r in replay(&pcap, Some(&config()), &[]) {
            let client = r.src_ip.to_string();
            let client = client.as_str();
            if client.starts_with("10.10.1.") {
                assert_eq!(
                    (r.agency.as_str(), r.unit.as_str()),
                    ("diskominfo", "sekretariat"),
                    "{r:?}"
                );
            } else if client.starts_with("10.10.2.") {
                assert_eq!(
                    (r.agency.as_str(), r.unit.as_str()),
                    ("diskominfo", "bidang-it"),
                    "{r:?}"
                );
            }
            if r.dst_ip.to_string().starts_with("10.99.") {
                assert_eq!(r.scope, TrafficScope::Intranet, "{r:?}");
            }
            if r.dst_ip.to_string().starts_with("203.0.113.") {
                assert_eq!(r.scope, TrafficScope::Internet, "{r:?}");
            }
            seen_units.insert(r.unit.clone());
            scopes.insert(format!("{:?}", r.scope));
        }
    }
    assert!(
        seen_units.contains("sekretariat") && seen_units.contains("bidang-it"),
        "{seen_units:?}"
    );
    assert!(scopes.len() == 2, "both scopes expected: {scopes:?}");
}

#[test]
fn per_second_counters_add_up_to_flow_bytes() {
    let pcap = fixture("intranet.pcapng");
    let counters = tempfile::NamedTempFile::new().unwrap();
    let records = replay(
        &pcap,
        Some(&config()),
        &["--counters-out", counters.path().to_str().unwrap()],
    );
    let text = std::fs::read_to_string(counters.path()).unwrap();
    let samples: Vec<simpul_proto::CounterSample> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let counted: u64 = samples.iter().map(|s| s.bytes_in + s.bytes_out).sum();
    let flowed: u64 = records.iter().map(|r| r.bytes_up + r.bytes_down).sum();
    assert_eq!(counted, flowed);
    assert!(samples.iter().any(|s| s.scope == TrafficScope::Intranet));
    assert!(samples.iter().any(|s| s.scope == TrafficScope::Internet));
    // Seconds are strictly increasing per (unit, scope).
    let mut last = std::collections::BTreeMap::new();
    for s in &samples {
        let k = (s.agency.clone(), s.unit.clone(), format!("{:?}", s.scope));
        if let Some(prev) = last.insert(k, s.ts) {
            assert!(s.ts > prev, "duplicate second {s:?}");
        }
    }
}

#[test]
fn damaged_captures_are_counted_not_fatal() {
    // Cut a real capture in the middle of a record and corrupt frames inside it.
    let src = std::fs::read(fixture("http.pcap")).unwrap();
    let mut data = src[..src.len() - 7].to_vec();
    // Corrupt the IP version nibble of a few frames after the global header.
    let mut off = 24;
    let mut corrupted = 0;
    while off + 16 < data.len() && corrupted < 3 {
        let incl = u32::from_le_bytes(data[off + 8..off + 12].try_into().unwrap()) as usize;
        let frame = off + 16;
        if frame + 15 < data.len() && incl > 34 && data[frame + 12..frame + 14] == [0x08, 0x00] {
            data[frame + 14] = 0x35; // IPv4 ethertype, version 3
            corrupted += 1;
        }
        off += 16 + incl;
    }
    let tmp = tempfile::Builder::new().suffix(".pcap").tempfile().unwrap();
    std::fs::write(tmp.path(), &data).unwrap();
    let out = tempfile::NamedTempFile::new().unwrap();
    let o = std::process::Command::new(agent_bin())
        .args(["replay", "--json-summary", "--pcap"])
        .arg(tmp.path())
        .arg("--flows-out")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["errors"]["bad_ipv4"], 3, "{summary}");
    assert_eq!(
        summary["truncated_files"].as_array().unwrap().len(),
        1,
        "{summary}"
    );
    assert!(summary["flows"].as_u64().unwrap() > 0);
    // A non-capture file is a clear error.
    let o = std::process::Command::new(agent_bin())
        .args(["replay", "--pcap"])
        .arg(config())
        .arg("--flows-out")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not a pcap"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
