//! Store tests on real SQLite files in temporary directories.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use simpul_proto::wire::{Batch, Health};
use simpul_proto::{CounterSample, EndReason, FlowRecord, RecordKind, SiteSource, TrafficScope};

use super::*;

/// 2025-11-27T09:35:00Z, a minute boundary.
const T0: u64 = 1_764_236_100;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn ns(secs: u64) -> u64 {
    secs * 1_000_000_000
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Folds on every call, so top hosts/sites are current after each ingest.
fn eager() -> StoreConfig {
    StoreConfig {
        aggregate_delay_ms: 0,
        ..StoreConfig::default()
    }
}

#[test]
fn light_traffic_reaches_the_top_lists_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // The defaults: a long fold delay, but few rows pending.
    let (_s, mut w, r) = open(dir.path(), StoreConfig::default());
    w.fold_aggregates().unwrap();
    for seq in 1..=3 {
        w.ingest(
            "dinkes-01",
            "dinkes",
            &[batch(
                seq,
                vec![flow(seq, RecordKind::Final, 10, 20, T0)],
                vec![],
            )],
        )
        .unwrap();
        let sites = r.top_sites(Some("dinkes"), T0, T0 + 60, 10).unwrap();
        assert_eq!(sites[0].flows, seq);
    }
}

fn inventory() -> simpul_proto::Inventory {
    simpul_proto::Inventory::parse(
        r#"
[[agencies]]
code = "dinkes"
name = "Dinas Kesehatan"
[[agencies.units]]
code = "sekretariat"
name = "Sekretariat"
[[agencies.units]]
code = "p2p"
name = "Bidang P2P"
[[agencies]]
code = "diskominfo"
name = "Dinas Komunikasi dan Informatika"
"#,
    )
    .unwrap()
}

fn open(dir: &std::path::Path, cfg: StoreConfig) -> (Store, Writer, Reader) {
    let store = Store::open(dir, cfg).unwrap();
    store.save_inventory(&inventory(), 0).unwrap();
    let w = store.writer().unwrap();
    let r = store.reader().unwrap();
    (store, w, r)
}

fn flow(flow_id: u64, kind: RecordKind, up: u64, down: u64, last_seen: u64) -> FlowRecord {
    FlowRecord {
        flow_id,
        kind,
        end_reason: match kind {
            RecordKind::Interim => EndReason::Active,
            RecordKind::Final => EndReason::Fin,
        },
        proto: "tcp".into(),
        src_ip: ip("10.20.1.10"),
        src_port: Some(50_000u16.wrapping_add(flow_id as u16)),
        dst_ip: ip("203.0.113.10"),
        dst_port: Some(443),
        vlan: None,
        vlan_inner: None,
        packets_up: up / 100,
        bytes_up: up,
        packets_down: down / 100,
        bytes_down: down,
        first_seen: ns(T0),
        last_seen: ns(last_seen),
        tcp_flags_up: Some(0x1b),
        tcp_flags_down: Some(0x1b),
        sni: Some("portal.example.go.id".into()),
        http_host: None,
        dns_query: None,
        site: Some("portal.example.go.id".into()),
        site_source: Some(SiteSource::Sni),
        agency: "dinkes".into(),
        unit: "sekretariat".into(),
        scope: TrafficScope::Internet,
    }
}

fn counter(
    ts: u64,
    unit: &str,
    scope: TrafficScope,
    bytes_in: u64,
    bytes_out: u64,
) -> CounterSample {
    CounterSample {
        ts,
        agency: "dinkes".into(),
        unit: unit.into(),
        scope,
        bytes_in,
        bytes_out,
        packets_in: bytes_in / 100,
        packets_out: bytes_out / 100,
    }
}

fn batch(seq: u64, flows: Vec<FlowRecord>, counters: Vec<CounterSample>) -> Batch {
    Batch {
        boot_epoch: 7,
        seq,
        sealed_ms: 0,
        flows,
        counters,
        blocked: Vec::new(),
        dropped_records: 0,
        dropped_batches: 0,
    }
}

fn totals(r: &Reader, from: u64, to: u64, step: Step) -> (u64, u64) {
    let u = r.usage("dinkes", from, to, step).unwrap();
    let (pin, pout) = u
        .points
        .iter()
        .fold((0, 0), |(a, b), p| (a + p.bytes_in, b + p.bytes_out));
    assert_eq!((pin, pout), (u.total_bytes_in, u.total_bytes_out));
    (u.total_bytes_in, u.total_bytes_out)
}

#[test]
fn usage_totals_match_counters_and_duplicates_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, mut w, r) = open(dir.path(), eager());
    let mut sent = (0u64, 0u64);
    let mut batches = Vec::new();
    for seq in 1..=5u64 {
        let mut counters = Vec::new();
        for i in 0..30 {
            let ts = T0 + seq * 50 + i;
            for (unit, scope) in [
                ("sekretariat", TrafficScope::Internet),
                ("p2p", TrafficScope::Intranet),
            ] {
                let c = counter(ts, unit, scope, 1000 + i * seq, 10 + i);
                sent.0 += c.bytes_in;
                sent.1 += c.bytes_out;
                counters.push(c);
            }
        }
        // The same second again in the next batch: must add, not replace.
        let c = counter(
            T0 + seq * 50 + 29,
            "sekretariat",
            TrafficScope::Internet,
            5,
            6,
        );
        sent.0 += c.bytes_in;
        sent.1 += c.bytes_out;
        counters.push(c);
        batches.push(batch(seq, vec![], counters));
    }
    let out = w.ingest("dinkes-01", "dinkes", &batches[..3]).unwrap();
    assert_eq!(out, vec![BatchOutcome::Stored; 3]);
    // Given out of order: both stored, neither mistaken for a duplicate.
    let out = w
        .ingest(
            "dinkes-01",
            "dinkes",
            &[batches[4].clone(), batches[3].clone()],
        )
        .unwrap();
    assert_eq!(out, vec![BatchOutcome::Stored; 2]);
    let (from, to) = (T0, T0 + 3600);
    for step in [Step::Second, Step::Minute, Step::Hour] {
        assert_eq!(totals(&r, from, to, step), sent, "{step:?}");
    }
    let again = w.ingest("dinkes-01", "dinkes", &batches).unwrap();
    assert_eq!(again, vec![BatchOutcome::Duplicate; 5]);
    let again = w
        .ingest_many(&[NodeBatches {
            node_id: "dinkes-01",
            agency: "dinkes",
            strict_seq: true,
            batches: &batches[1..2],
        }])
        .unwrap();
    assert_eq!(again, vec![vec![BatchOutcome::Duplicate]]);
    for step in [Step::Second, Step::Minute, Step::Hour] {
        assert_eq!(
            totals(&r, from, to, step),
            sent,
            "{step:?} after duplicates"
        );
    }
    // Another boot of the same node numbers its batches from 1 again.
    let mut other_boot = batch(
        1,
        vec![],
        vec![counter(T0 + 10, "p2p", TrafficScope::Internet, 7, 0)],
    );
    other_boot.boot_epoch = 8;
    assert_eq!(
        w.ingest("dinkes-01", "dinkes", &[other_boot]).unwrap(),
        vec![BatchOutcome::Stored]
    );
    assert_eq!(totals(&r, from, to, Step::Minute), (sent.0 + 7, sent.1));
}

#[test]
fn rollups_agree_and_points_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, mut w, r) = open(dir.path(), eager());
    let mut counters = Vec::new();
    let mut x = 12345u64;
    for i in 0..2 * 3600 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        if x.is_multiple_of(3) {
            continue;
        }
        let scope = if x.is_multiple_of(5) {
            TrafficScope::Intranet
        } else {
            TrafficScope::Internet
        };
        counters.push(counter(
            T0 + i,
            "sekretariat",
            scope,
            x % 100_000,
            (x >> 20) % 50_000,
        ));
    }
    for (seq, chunk) in counters.chunks(500).enumerate() {
        w.ingest(
            "dinkes-01",
            "dinkes",
            &[batch(seq as u64 + 1, vec![], chunk.to_vec())],
        )
        .unwrap();
    }
    let (from, to) = (T0, T0 + 2 * 3600);
    let s = totals(&r, from, to, Step::Second);
    assert_eq!(s, totals(&r, from, to, Step::Minute));
    assert_eq!(s, totals(&r, from, to, Step::Hour));
    let want: (u64, u64) = counters
        .iter()
        .fold((0, 0), |(a, b), c| (a + c.bytes_in, b + c.bytes_out));
    assert_eq!(s, want);
    // An unaligned range widens to whole steps, and says so.
    let u = r.usage("dinkes", T0 + 61, T0 + 119, Step::Minute).unwrap();
    assert_eq!(
        (u.from.as_str(), u.to.as_str()),
        ("2025-11-27T09:36:00.000000Z", "2025-11-27T09:37:00.000000Z")
    );
    assert_eq!(u.points.len(), 1);
    let p = &u.points[0];
    assert_eq!(p.in_bps, p.bytes_in as f64 * 8.0 / 60.0);
    let internet: u64 = counters
        .iter()
        .filter(|c| c.ts >= T0 + 60 && c.ts < T0 + 120 && c.scope == TrafficScope::Internet)
        .map(|c| c.bytes_in)
        .sum();
    assert_eq!(p.internet_bytes_in, internet);
    // Which agencies exist is the inventory's business: the flow store
    // answers an empty series for one it never saw.
    let none = r.usage("nope", from, to, Step::Hour).unwrap();
    assert!(none.points.is_empty() && none.total_bytes_in == 0);
}

#[test]
fn interim_then_final_is_one_flow_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, mut w, r) = open(dir.path(), eager());
    // Same batch: interim at T0+30 s, final two minutes later.
    let interim = flow(1, RecordKind::Interim, 1000, 2000, T0 + 30);
    let fin = flow(1, RecordKind::Final, 3000, 5000, T0 + 150);
    w.ingest(
        "dinkes-01",
        "dinkes",
        &[batch(1, vec![interim.clone(), fin.clone()], vec![])],
    )
    .unwrap();
    let rows = r
        .flows(&FlowFilter {
            from: T0,
            to: T0 + 3600,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].node_id, "dinkes-01");
    assert_eq!(rows[0].record, fin);
    let sites = r.top_sites(None, T0, T0 + 3600, 10).unwrap();
    assert_eq!(
        sites,
        vec![TopSite {
            site: "portal.example.go.id".into(),
            bytes: 8000,
            flows: 1,
            site_source: Some(SiteSource::Sni)
        }]
    );
    let hosts = r.top_hosts(Some("dinkes"), T0, T0 + 3600, 10).unwrap();
    assert_eq!(
        hosts,
        vec![TopHost {
            host: "10.20.1.10".into(),
            agency: "dinkes".into(),
            unit: "sekretariat".into(),
            bytes_up: 3000,
            bytes_down: 5000,
            flows: 1
        }]
    );
    // Bytes sit at the minute of the record that reported them.
    let first_minute = r.top_sites(None, T0, T0 + 60, 10).unwrap();
    assert_eq!(first_minute[0].bytes, 3000);
    let last_minute = r.top_sites(None, T0 + 120, T0 + 180, 10).unwrap();
    assert_eq!(last_minute[0].bytes, 5000);
    assert_eq!(last_minute[0].flows, 0);
}

#[test]
fn interim_and_final_across_calls_and_folds() {
    let dir = tempfile::tempdir().unwrap();
    // Never folds by itself: the test decides when.
    let lazy = StoreConfig {
        aggregate_delay_ms: u64::MAX,
        aggregate_eager_rows: 0,
        ..StoreConfig::default()
    };
    let (_s, mut w, r) = open(dir.path(), lazy);
    w.fold_aggregates().unwrap();
    let site_bytes = |r: &Reader| -> u64 {
        r.top_sites(None, T0, T0 + 3600, 10)
            .unwrap()
            .iter()
            .map(|s| s.bytes)
            .sum()
    };
    // Flow 1: interim folded before its final. Flow 2: interim still pending
    // when its final arrives. Flow 3: final only.
    let b1 = batch(
        1,
        vec![
            flow(1, RecordKind::Interim, 100, 200, T0 + 60),
            flow(2, RecordKind::Interim, 10, 20, T0 + 70),
        ],
        vec![],
    );
    w.ingest("dinkes-01", "dinkes", &[b1]).unwrap();
    // Flow 2's interim is pending: fold only after moving it past.
    let b2 = batch(
        2,
        vec![flow(2, RecordKind::Interim, 40, 50, T0 + 130)],
        vec![],
    );
    w.ingest("dinkes-01", "dinkes", &[b2]).unwrap();
    assert_eq!(
        w.fold_aggregates().unwrap(),
        1,
        "flow 2 was credited by its update"
    );
    assert_eq!(site_bytes(&r), 300 + 90);
    let b3 = batch(
        3,
        vec![
            flow(1, RecordKind::Final, 1000, 2000, T0 + 200),
            flow(2, RecordKind::Final, 400, 500, T0 + 210),
            flow(3, RecordKind::Final, 7, 8, T0 + 220),
            // Stale and repeated records change nothing.
            flow(1, RecordKind::Interim, 5000, 5000, T0 + 100),
            flow(3, RecordKind::Final, 7000, 8000, T0 + 230),
        ],
        vec![],
    );
    w.ingest("dinkes-01", "dinkes", &[b3]).unwrap();
    w.fold_aggregates().unwrap();
    assert_eq!(w.fold_aggregates().unwrap(), 0);
    assert_eq!(site_bytes(&r), 3000 + 900 + 15);
    let flows: u64 = r
        .top_hosts(None, T0, T0 + 3600, 10)
        .unwrap()
        .iter()
        .map(|h| h.flows)
        .sum();
    assert_eq!(flows, 3);
    let rows = r
        .flows(&FlowFilter {
            from: T0,
            to: T0 + 3600,
            ..Default::default()
        })
        .unwrap();
    let got: Vec<(u64, u64, RecordKind)> = rows
        .iter()
        .map(|f| (f.record.flow_id, f.record.bytes_up, f.record.kind))
        .collect();
    assert_eq!(
        got,
        vec![
            (3, 7, RecordKind::Final),
            (2, 400, RecordKind::Final),
            (1, 1000, RecordKind::Final)
        ]
    );
}

#[test]
fn restart_keeps_dedup_and_pending_folds() {
    let dir = tempfile::tempdir().unwrap();
    let lazy = StoreConfig {
        aggregate_delay_ms: u64::MAX,
        aggregate_eager_rows: 0,
        ..StoreConfig::default()
    };
    let b = batch(
        1,
        vec![flow(1, RecordKind::Final, 100, 200, T0 + 5)],
        vec![counter(
            T0 + 5,
            "sekretariat",
            TrafficScope::Internet,
            1000,
            2000,
        )],
    );
    {
        let (_s, mut w, _r) = open(dir.path(), lazy.clone());
        w.fold_aggregates().unwrap();
        assert_eq!(
            w.ingest("dinkes-01", "dinkes", std::slice::from_ref(&b))
                .unwrap(),
            vec![BatchOutcome::Stored]
        );
        // Dropped with the flow not yet folded.
    }
    let (_s, mut w, r) = open(dir.path(), lazy);
    assert!(r.top_sites(None, T0, T0 + 60, 10).unwrap().is_empty());
    assert_eq!(w.fold_aggregates().unwrap(), 1);
    assert_eq!(
        w.ingest("dinkes-01", "dinkes", std::slice::from_ref(&b))
            .unwrap(),
        vec![BatchOutcome::Duplicate]
    );
    assert_eq!(r.top_sites(None, T0, T0 + 60, 10).unwrap()[0].bytes, 300);
    assert_eq!(totals(&r, T0, T0 + 60, Step::Second), (1000, 2000));
    // The next batch continues the same chunk after the restart.
    w.ingest(
        "dinkes-01",
        "dinkes",
        &[batch(
            2,
            vec![flow(2, RecordKind::Final, 1, 1, T0 + 6)],
            vec![],
        )],
    )
    .unwrap();
    let all = FlowFilter {
        from: T0,
        to: T0 + 60,
        ..Default::default()
    };
    assert_eq!(r.flows(&all).unwrap().len(), 2);
}

#[test]
fn retention_deletes_only_old_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, mut w, r) = open(dir.path(), eager());
    let day = 86_400;
    let now = T0 + 40 * day;
    // diskominfo has only old flows, dinkes only recent ones; each agency
    // has its own chunks.
    let mut old = flow(1, RecordKind::Final, 1, 1, T0);
    old.agency = "diskominfo".into();
    w.ingest("kominfo-01", "diskominfo", &[batch(1, vec![old], vec![])])
        .unwrap();
    let counters = vec![
        counter(T0, "sekretariat", TrafficScope::Internet, 1, 0), // 40 days old
        counter(now - 20 * day, "sekretariat", TrafficScope::Internet, 10, 0),
        counter(
            now - 2 * 3600,
            "sekretariat",
            TrafficScope::Internet,
            100,
            0,
        ),
        counter(now - 60, "sekretariat", TrafficScope::Internet, 1000, 0),
    ];
    w.ingest(
        "dinkes-01",
        "dinkes",
        &[batch(
            1,
            vec![flow(5, RecordKind::Final, 2, 2, now - 60)],
            counters,
        )],
    )
    .unwrap();
    let stats = w.apply_retention(at(now)).unwrap();
    assert_eq!(stats.flows, 1);
    assert_eq!(stats.usage_1s, 3);
    assert_eq!(stats.usage_1m, 1);
    assert_eq!(stats.usage_1h, 0);
    assert_eq!(stats.top_hosts_1m, 1);
    assert_eq!(stats.top_sites_1m, 1);
    let all = FlowFilter {
        from: 0,
        to: now + 1,
        ..Default::default()
    };
    let left: Vec<u64> = r
        .flows(&all)
        .unwrap()
        .iter()
        .map(|f| f.record.flow_id)
        .collect();
    assert_eq!(left, vec![5]);
    assert_eq!(totals(&r, now - 3600, now, Step::Second).0, 1000);
    assert_eq!(totals(&r, 0, now, Step::Minute).0, 1110);
    assert_eq!(totals(&r, 0, now, Step::Hour).0, 1111);
    assert_eq!(
        w.apply_retention(at(now)).unwrap(),
        RetentionStats::default()
    );
    // A batch for the agency whose chunk was deleted opens a new one.
    let mut again = flow(2, RecordKind::Final, 1, 1, now);
    again.agency = "diskominfo".into();
    w.ingest("kominfo-01", "diskominfo", &[batch(2, vec![again], vec![])])
        .unwrap();
    assert_eq!(r.flows(&all).unwrap().len(), 2);
}

#[test]
fn enrollment_tokens_work_once_for_their_node() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _w, _r) = open(dir.path(), eager());
    let hour = Duration::from_secs(3600);
    let token = s
        .create_enrollment_token("dinkes", "dinkes-01", hour)
        .unwrap();
    assert_eq!(token.len(), 64);
    assert!(matches!(
        s.enroll("dinkes-02", &token),
        Err(AuthError::TokenForOtherNode)
    ));
    let (credential, agency) = s.enroll("dinkes-01", &token).unwrap();
    assert_eq!(agency, "dinkes");
    assert!(matches!(
        s.enroll("dinkes-01", &token),
        Err(AuthError::TokenUsed)
    ));
    assert!(matches!(
        s.enroll("dinkes-01", "00".repeat(32).as_str()),
        Err(AuthError::UnknownToken)
    ));
    let expired = s
        .create_enrollment_token("dinkes", "dinkes-03", Duration::ZERO)
        .unwrap();
    assert!(matches!(
        s.enroll("dinkes-03", &expired),
        Err(AuthError::TokenExpired)
    ));

    assert_eq!(s.authenticate("dinkes-01", &credential).unwrap(), "dinkes");
    assert!(matches!(
        s.authenticate("dinkes-01", &token),
        Err(AuthError::BadCredential(_))
    ));
    assert!(matches!(
        s.authenticate("dinkes-01", ""),
        Err(AuthError::BadCredential(_))
    ));
    assert!(matches!(
        s.authenticate("dinkes-09", &credential),
        Err(AuthError::UnknownNode(_))
    ));
    let pending = s
        .create_enrollment_token("dinkes", "dinkes-01", hour)
        .unwrap();
    s.revoke_node("dinkes-01").unwrap();
    assert!(matches!(
        s.authenticate("dinkes-01", &credential),
        Err(AuthError::Revoked(_))
    ));
    // Revoking drops the node's pending tokens too.
    assert!(matches!(
        s.enroll("dinkes-01", &pending),
        Err(AuthError::UnknownToken)
    ));
    // A new token is the operator's decision to bring the node back.
    let token = s
        .create_enrollment_token("dinkes", "dinkes-01", hour)
        .unwrap();
    let (second, _) = s.enroll("dinkes-01", &token).unwrap();
    assert_ne!(second, credential);
    assert!(s.authenticate("dinkes-01", &credential).is_err());
    assert_eq!(s.authenticate("dinkes-01", &second).unwrap(), "dinkes");

    assert!(matches!(
        s.create_enrollment_token("nope", "x-01", hour),
        Err(StoreError::UnknownAgency(_))
    ));
    assert!(matches!(
        s.create_enrollment_token("dinkes", "bad id/..", hour),
        Err(StoreError::Invalid { .. })
    ));
    assert!(matches!(
        s.revoke_node("nope"),
        Err(StoreError::UnknownNode(_))
    ));
    // Refusal reasons are readable for the agent's log.
    assert_eq!(
        AuthError::TokenUsed.to_string(),
        "enrollment token already used; ask the NOC for a new one"
    );
}

#[test]
fn hostile_strings_are_stored_and_returned_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut w, r) = open(dir.path(), eager());
    let evil_sites = [
        "x'); DROP TABLE flows;--",
        "Ünïcødé.例え.jp",
        "%_.example.go.id",
        "a\"b\\c\0d",
        "💥.go.id",
    ];
    let flows: Vec<FlowRecord> = evil_sites
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut f = flow(i as u64 + 1, RecordKind::Final, 10, 10, T0 + i as u64);
            f.site = Some(s.to_string());
            f.sni = Some(s.to_string());
            f.http_host = Some(format!("{s}' OR '1'='1"));
            f.unit = "unit'; --".into();
            f
        })
        .collect();
    w.ingest("dinkes-01", "dinkes", &[batch(1, flows.clone(), vec![])])
        .unwrap();
    let got = r
        .flows(&FlowFilter {
            from: T0,
            to: T0 + 60,
            ..Default::default()
        })
        .unwrap();
    let mut got: Vec<FlowRecord> = got.into_iter().map(|f| f.record).collect();
    got.reverse();
    assert_eq!(got, flows);
    let mut sites: Vec<String> = r
        .top_sites(None, T0, T0 + 60, 10)
        .unwrap()
        .into_iter()
        .map(|s| s.site)
        .collect();
    sites.sort();
    let mut want: Vec<String> = evil_sites.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(sites, want);
    // LIKE wildcards in a filter are just characters.
    let by_site = |site: &str| {
        r.flows(&FlowFilter {
            from: T0,
            to: T0 + 60,
            site: Some(site.into()),
            ..Default::default()
        })
        .unwrap()
        .len()
    };
    assert_eq!(by_site("%_.example.go.id"), 1);
    assert_eq!(by_site("example.go.id"), 1);
    assert_eq!(by_site("_.example.go.id"), 0);
    assert_eq!(by_site("x'); DROP TABLE flows;--"), 1);
    assert_eq!(by_site("例え.jp"), 1);
    assert_eq!(by_site("go.id"), 2);

    let mut inv = inventory();
    inv.agencies[1].name = "Robert'); DROP TABLE agencies;-- «Ünïcødé»".into();
    let saved = store.save_inventory(&inv, 0).unwrap();
    assert_eq!(saved.version, 2);
    assert_eq!(
        store.latest_inventory().unwrap().unwrap().agencies[1].name,
        inv.agencies[1].name
    );
    let token = store
        .create_enrollment_token("dinkes", "dinkes-01", Duration::from_secs(60))
        .unwrap();
    store.enroll("dinkes-01", &token).unwrap();
    let health = Health {
        agent_version: "0.1.0'; --".into(),
        ..Health::default()
    };
    store
        .node_seen(
            "dinkes-01",
            "10.0.5.2:51234",
            "0.1.0",
            "rtr-dinkes ☃ '--",
            Some(&health),
            at(T0),
        )
        .unwrap();
    let nodes = store.nodes(at(T0), Duration::from_secs(30)).unwrap();
    assert_eq!(nodes[0].hostname.as_deref(), Some("rtr-dinkes ☃ '--"));
    let back: Health = serde_json::from_value(nodes[0].health.clone().unwrap()).unwrap();
    assert_eq!(back, health);
    drop(r);
    assert!(store.reader().unwrap().check().is_ok());
}

#[test]
fn flow_filters_host_site_agency() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, mut w, r) = open(dir.path(), eager());
    let mut a = flow(1, RecordKind::Final, 1, 1, T0 + 1);
    a.site = Some("WWW.Example.go.id".into());
    let mut b = flow(2, RecordKind::Final, 1, 1, T0 + 2);
    b.src_ip = ip("10.20.1.11");
    b.site = Some("example.go.id.evil.com".into());
    let mut c = flow(3, RecordKind::Final, 1, 1, T0 + 3);
    c.src_ip = ip("198.51.100.7");
    c.dst_ip = ip("10.20.1.10");
    c.site = None;
    c.site_source = None;
    let mut d = flow(4, RecordKind::Final, 1, 1, T0 + 4);
    d.src_ip = ip("fd00:20:1::5");
    w.ingest("dinkes-01", "dinkes", &[batch(1, vec![a, b, c], vec![])])
        .unwrap();
    w.ingest("kominfo-01", "diskominfo", &[batch(1, vec![d], vec![])])
        .unwrap();
    let ids = |f: FlowFilter| -> Vec<u64> {
        r.flows(&FlowFilter {
            from: T0,
            to: T0 + 60,
            ..f
        })
        .unwrap()
        .iter()
        .map(|f| f.record.flow_id)
        .collect()
    };
    assert_eq!(ids(FlowFilter::default()), vec![4, 3, 2, 1]);
    assert_eq!(
        ids(FlowFilter {
            host: Some(ip("10.20.1.10")),
            ..Default::default()
        }),
        vec![3, 1]
    );
    // d keeps the default site portal.example.go.id, a subdomain too.
    assert_eq!(
        ids(FlowFilter {
            site: Some("example.go.id".into()),
            ..Default::default()
        }),
        vec![4, 1]
    );
    assert_eq!(
        ids(FlowFilter {
            site: Some("www.example.go.id".into()),
            agency: Some("dinkes".into()),
            ..Default::default()
        }),
        vec![1]
    );
    assert_eq!(
        ids(FlowFilter {
            agency: Some("diskominfo".into()),
            ..Default::default()
        }),
        vec![4]
    );
    assert_eq!(
        ids(FlowFilter {
            host: Some(ip("fd00:20:1::5")),
            agency: Some("dinkes".into()),
            ..Default::default()
        }),
        Vec::<u64>::new()
    );
    assert_eq!(
        ids(FlowFilter {
            limit: 2,
            ..Default::default()
        }),
        vec![4, 3]
    );
    // The record's agency is the node's, whatever the agent wrote.
    let rows = r
        .flows(&FlowFilter {
            from: T0,
            to: T0 + 60,
            agency: Some("diskominfo".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(rows[0].record.agency, "diskominfo");
    // Host is the agency side: 10.20.1.10 answered the inbound flow 3.
    let hosts = r.top_hosts(Some("dinkes"), T0, T0 + 60, 10).unwrap();
    let h = hosts.iter().find(|h| h.host == "10.20.1.10").unwrap();
    assert_eq!(h.flows, 2);
    assert!(r
        .flows(&FlowFilter {
            from: T0,
            to: T0 + 60,
            site: Some(".".into()),
            ..Default::default()
        })
        .is_err());
    let json = serde_json::to_value(&rows[0]).unwrap();
    assert_eq!(json["node_id"], "kominfo-01");
    assert_eq!(json["kind"], "final");
    assert_eq!(json["src_ip"], "fd00:20:1::5");
    assert_eq!(json["last_seen"], "2025-11-27T09:35:04.000000Z");
}

#[test]
fn many_flows_fill_chunks_and_queries_stop_early() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, mut w, r) = open(dir.path(), eager());
    let n = 70_000u64;
    let flows: Vec<FlowRecord> = (1..=n)
        .map(|i| {
            let mut f = flow(i, RecordKind::Final, i, 1, T0 + i / 1000);
            f.src_ip = IpAddr::from([10, 20, (i % 7) as u8, (i % 100) as u8]);
            f
        })
        .collect();
    for (seq, part) in flows.chunks(5000).enumerate() {
        w.ingest(
            "dinkes-01",
            "dinkes",
            &[batch(seq as u64 + 1, part.to_vec(), vec![])],
        )
        .unwrap();
    }
    let newest = r
        .flows(&FlowFilter {
            from: T0,
            to: T0 + 3600,
            limit: 5,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(newest.len(), 5);
    assert_eq!(newest[0].record.flow_id, n);
    assert!(newest[1..]
        .iter()
        .all(|f| f.record.last_seen == ns(T0 + n / 1000 - 1)));
    let host = r
        .flows(&FlowFilter {
            from: T0,
            to: T0 + 3600,
            host: Some(ip("10.20.3.3")),
            limit: 1000,
            ..Default::default()
        })
        .unwrap();
    let want = flows.iter().filter(|f| f.src_ip == ip("10.20.3.3")).count();
    assert_eq!(host.len(), want);
    assert!(host
        .windows(2)
        .all(|p| p[0].record.last_seen >= p[1].record.last_seen));
    let bytes: u64 = r
        .top_hosts(None, T0, T0 + 3600, 2000)
        .unwrap()
        .iter()
        .map(|h| h.bytes_up)
        .sum();
    assert_eq!(bytes, n * (n + 1) / 2);
}

#[test]
fn traffic_nodes_and_series() {
    let dir = tempfile::tempdir().unwrap();
    let (s, mut w, r) = open(dir.path(), eager());
    let hour = Duration::from_secs(3600);
    for node in ["dinkes-01", "dinkes-02", "dinkes-03", "dinkes-04"] {
        let t = s.create_enrollment_token("dinkes", node, hour).unwrap();
        s.enroll(node, &t).unwrap();
    }
    let now = T0 + 600;
    s.node_seen("dinkes-01", "10.0.5.2:1", "0.1.0", "a", None, at(now - 5))
        .unwrap();
    s.node_seen("dinkes-02", "10.0.5.3:1", "0.1.0", "b", None, at(now - 500))
        .unwrap();
    s.node_seen("dinkes-04", "10.0.5.4:1", "0.1.0", "c", None, at(now - 1))
        .unwrap();
    s.revoke_node("dinkes-04").unwrap();
    assert!(matches!(
        s.node_seen("ghost", "", "", "", None, at(now)),
        Err(StoreError::UnknownNode(_))
    ));
    let mut counters = Vec::new();
    for ts in now - 10..now {
        counters.push(counter(
            ts,
            "sekretariat",
            TrafficScope::Internet,
            1000,
            100,
        ));
        counters.push(counter(ts, "p2p", TrafficScope::Intranet, 500, 50));
    }
    // The current second is incomplete and left out of rates.
    counters.push(counter(now, "p2p", TrafficScope::Internet, 999_999, 0));
    let mut f = flow(1, RecordKind::Final, 4000, 6000, now - 30);
    f.site = Some("portal.example.go.id".into());
    w.ingest("dinkes-01", "dinkes", &[batch(1, vec![f], counters)])
        .unwrap();
    let t = r.traffic(at(now), 5).unwrap();
    // [internet in, internet out, intranet in, intranet out] over 5 s.
    assert_eq!(t.agencies["dinkes"], [5 * 1000, 5 * 100, 5 * 500, 5 * 50]);
    assert_eq!(
        t.top_sites,
        vec![OverviewSite {
            site: "portal.example.go.id".into(),
            bytes: 10_000,
            flows: 1
        }]
    );
    assert_eq!(t.top_agencies[0].code, "dinkes");
    assert_eq!(t.top_agencies[0].bytes, 10 * 1650 + 999_999);
    let status: Vec<(String, NodeStatus)> = s
        .nodes(at(now), Duration::from_secs(30))
        .unwrap()
        .iter()
        .map(|n| (n.node_id.clone(), n.status))
        .collect();
    assert_eq!(
        status,
        vec![
            ("dinkes-01".into(), NodeStatus::Up),
            ("dinkes-02".into(), NodeStatus::Down),
            ("dinkes-03".into(), NodeStatus::Never),
            ("dinkes-04".into(), NodeStatus::Revoked),
        ]
    );
    let json = serde_json::to_value(s.nodes(at(now), Duration::from_secs(30)).unwrap()).unwrap();
    assert_eq!(json[2]["status"], "never");
    assert!(json[2]["last_seen"].is_null());

    let series = r.usage_series_since(now - 900).unwrap();
    let pts = &series["dinkes"];
    assert_eq!(pts.len(), 11);
    assert_eq!(pts[0].in_bps, 1500 * 8);
    assert_eq!(pts[0].ts, "2025-11-27T09:44:50.000000Z");
}

#[test]
fn step_auto_picks_the_finest_kept_step() {
    let now = at(T0 + 86_400 * 100);
    let n = T0 + 86_400 * 100;
    assert_eq!(Step::auto(n - 900, n, now), Step::Second);
    assert_eq!(Step::auto(n - 7200, n, now), Step::Minute);
    assert_eq!(Step::auto(n - 86_400 * 2, n, now), Step::Hour);
    assert_eq!(
        Step::auto(n - 86_400 * 40, n - 86_400 * 39, now),
        Step::Hour
    );
    assert_eq!(Step::parse("1m"), Some(Step::Minute));
    assert_eq!(Step::parse("5m"), None);
}

#[test]
fn one_writer_migrations_and_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    let w = store.writer().unwrap();
    assert!(matches!(store.writer(), Err(StoreError::WriterInUse)));
    drop(w);
    let w = store.writer().unwrap();
    store.save_inventory(&inventory(), 0).unwrap();
    // Opening again applies nothing twice and keeps the data.
    let again = Store::open(dir.path(), StoreConfig::default()).unwrap();
    assert_eq!(again.latest_inventory().unwrap().unwrap().agencies.len(), 2);
    // The same content again is not a new version.
    assert_eq!(again.save_inventory(&inventory(), 0).unwrap().version, 1);
    assert!(again.checkpoint().unwrap() >= 0);
    drop(w);
    drop((store, again));
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    assert!(matches!(
        Store::open(dir.path(), StoreConfig::default()),
        Err(StoreError::SchemaTooNew { found: 99, .. })
    ));
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(
        Store::open(&file, StoreConfig::default()),
        Err(StoreError::DataDir { .. })
    ));
}

#[test]
fn absurd_numbers_saturate_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, mut w, r) = open(dir.path(), eager());
    let mut flows = Vec::new();
    for i in 1..=3 {
        let mut f = flow(i, RecordKind::Final, u64::MAX, u64::MAX, T0);
        f.flow_id = u64::MAX - i;
        flows.push(f);
    }
    let mut far = flow(9, RecordKind::Final, 1, 1, T0);
    far.last_seen = u64::MAX;
    far.first_seen = u64::MAX;
    flows.push(far);
    let counters = vec![
        counter(
            T0,
            "sekretariat",
            TrafficScope::Internet,
            u64::MAX,
            u64::MAX,
        ),
        counter(T0, "sekretariat", TrafficScope::Internet, u64::MAX, 0),
    ];
    let mut b = batch(u64::MAX, flows, counters);
    b.boot_epoch = u64::MAX;
    b.dropped_records = u64::MAX;
    w.ingest("dinkes-01", "dinkes", std::slice::from_ref(&b))
        .unwrap();
    assert_eq!(
        w.ingest("dinkes-01", "dinkes", &[b]).unwrap(),
        vec![BatchOutcome::Duplicate]
    );
    let (bytes_in, _) = totals(&r, T0, T0 + 60, Step::Second);
    assert_eq!(bytes_in, (1 << 53) - 1);
    let sites = r.top_sites(None, T0, T0 + 60, 10).unwrap();
    assert!(sites[0].bytes >= (1 << 53) - 1);
    let rows = r
        .flows(&FlowFilter {
            from: T0,
            to: T0 + 60,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].record.bytes_up, u64::MAX, "stored verbatim");
}

#[test]
fn bench_runs() {
    let dir = tempfile::tempdir().unwrap();
    let rate = bench_ingest(dir.path(), 3000).unwrap();
    assert!(rate > 0.0);
}

#[test]
fn handles_move_between_threads() {
    fn send<T: Send>() {}
    fn shared<T: Send + Sync>() {}
    send::<Writer>();
    send::<Reader>();
    shared::<Store>();
}

// ---- blocked attempts ------------------------------------------------------

fn attempt(
    client: &str,
    target: &str,
    method: simpul_proto::BlockMethod,
    last_seen: u64,
    attempts: u32,
) -> simpul_proto::BlockedAttempt {
    simpul_proto::BlockedAttempt {
        first_seen: ns(last_seen) - 5_000_000_000,
        last_seen: ns(last_seen),
        client: ip(client),
        agency: "dinkes".into(),
        unit: "sekretariat".into(),
        method,
        target: target.into(),
        server: Some(ip("198.51.100.7")),
        port: Some(443),
        proto: "tcp".into(),
        rule: target.into(),
        list: "judi".into(),
        attempts,
    }
}

fn with_blocked(seq: u64, blocked: Vec<simpul_proto::BlockedAttempt>) -> Batch {
    let mut b = batch(seq, vec![], vec![]);
    b.blocked = blocked;
    b
}

fn all_blocked(to: u64) -> BlockedFilter {
    BlockedFilter {
        from: 0,
        to,
        ..Default::default()
    }
}

#[test]
fn blocked_attempts_commit_with_their_batch_and_resends_add_nothing() {
    use simpul_proto::BlockMethod;
    let dir = tempfile::tempdir().unwrap();
    let (_s, mut w, r) = open(dir.path(), eager());
    let mut dns = attempt("10.20.1.10", "slot88.example", BlockMethod::Dns, T0 + 10, 4);
    dns.server = None;
    dns.port = None;
    dns.proto = "udp".into();
    // Whatever agency a record names, it is stored under the node's own
    // ("unknown": a client outside the agent's subnets, behind this router).
    dns.agency = "unknown".into();
    dns.unit = "unknown".into();
    let mut v6 = attempt(
        "fd00:10::20",
        "Ünïcode.example",
        BlockMethod::Sni,
        T0 + 20,
        1,
    );
    v6.rule = "x'); DROP TABLE blocked_attempts;--".into();
    v6.list = String::new();
    let mut b1 = batch(1, vec![flow(1, RecordKind::Final, 10, 20, T0)], vec![]);
    b1.blocked = vec![dns.clone(), v6.clone()];
    let b2 = with_blocked(
        2,
        vec![attempt(
            "10.20.1.11",
            "judi.example",
            BlockMethod::Http,
            T0 + 30,
            2,
        )],
    );
    assert_eq!(
        w.ingest("dinkes-01", "dinkes", &[b1.clone(), b2.clone()])
            .unwrap(),
        vec![BatchOutcome::Stored; 2]
    );
    let rows = r.blocked(&all_blocked(T0 + 3600)).unwrap();
    let targets: Vec<&str> = rows.iter().map(|b| b.attempt.target.as_str()).collect();
    assert_eq!(
        targets,
        ["judi.example", "Ünïcode.example", "slot88.example"]
    );
    assert!(rows.iter().all(|b| b.node_id == "dinkes-01"));
    // Stored and returned verbatim, except the agency (the node's).
    let mut want = dns.clone();
    want.agency = "dinkes".into();
    assert_eq!(rows[2].attempt, want);
    assert_eq!(rows[1].attempt, v6);
    let json = serde_json::to_value(&rows[2]).unwrap();
    assert_eq!(json["node_id"], "dinkes-01");
    assert_eq!(json["method"], "dns");
    assert_eq!(json["server"], serde_json::Value::Null);
    assert_eq!(json["last_seen"], "2025-11-27T09:35:10.000000Z");

    // The agent re-sends after a lost ack: acknowledged, nothing doubled.
    assert_eq!(
        w.ingest("dinkes-01", "dinkes", &[b2, b1]).unwrap(),
        vec![BatchOutcome::Duplicate; 2]
    );
    let again = r.blocked(&all_blocked(T0 + 3600)).unwrap();
    assert_eq!(again, rows);
    let sum = r.blocked_summary(&all_blocked(T0 + 3600)).unwrap();
    assert_eq!((sum.attempts, sum.records), (7, 3));
    // A batch of only blocked attempts, from a new boot, is stored.
    let mut b = with_blocked(
        1,
        vec![attempt("10.20.1.10", "a.example", BlockMethod::Sni, T0, 1)],
    );
    b.boot_epoch = 8;
    assert_eq!(
        w.ingest("dinkes-01", "dinkes", &[b]).unwrap(),
        vec![BatchOutcome::Stored]
    );
    assert_eq!(r.blocked(&all_blocked(T0 + 3600)).unwrap().len(), 4);
}

#[test]
fn blocked_filters_and_summary() {
    use simpul_proto::BlockMethod;
    let dir = tempfile::tempdir().unwrap();
    let (_s, mut w, r) = open(dir.path(), eager());
    w.ingest(
        "dinkes-01",
        "dinkes",
        &[with_blocked(
            1,
            vec![
                attempt("10.20.1.10", "slot88.example", BlockMethod::Dns, T0 + 10, 5),
                attempt("10.20.1.10", "slot88.example", BlockMethod::Sni, T0 + 70, 3),
                attempt("10.20.1.11", "slot88.example", BlockMethod::Sni, T0 + 80, 1),
                attempt("10.20.1.11", "dns.google", BlockMethod::Doh, T0 + 90, 2),
            ],
        )],
    )
    .unwrap();
    w.ingest(
        "dinkes-02",
        "dinkes",
        &[with_blocked(
            1,
            vec![attempt(
                "10.20.2.10",
                "judi.example",
                BlockMethod::Http,
                T0 + 100,
                1,
            )],
        )],
    )
    .unwrap();
    let mut k = attempt(
        "10.30.1.5",
        "slot88.example",
        BlockMethod::Quic,
        T0 + 200,
        7,
    );
    k.agency = "diskominfo".into();
    w.ingest("kominfo-01", "diskominfo", &[with_blocked(1, vec![k])])
        .unwrap();

    let count = |f: BlockedFilter| r.blocked(&f).unwrap().len();
    let base = all_blocked(T0 + 3600);
    assert_eq!(count(base.clone()), 6);
    let dinkes = BlockedFilter {
        agency: Some("dinkes".into()),
        ..base.clone()
    };
    assert_eq!(count(dinkes.clone()), 5);
    assert_eq!(
        count(BlockedFilter {
            node: Some("dinkes-02".into()),
            ..base.clone()
        }),
        1
    );
    assert_eq!(
        count(BlockedFilter {
            method: Some(BlockMethod::Sni),
            ..base.clone()
        }),
        2
    );
    assert_eq!(
        count(BlockedFilter {
            agency: Some("dinkes".into()),
            node: Some("kominfo-01".into()),
            ..base.clone()
        }),
        0
    );
    // [from, to) by last attempt: T0+70 and T0+80 only.
    let window = BlockedFilter {
        from: T0 + 70,
        to: T0 + 90,
        ..base.clone()
    };
    assert_eq!(count(window.clone()), 2);
    assert_eq!(
        count(BlockedFilter {
            limit: 2,
            ..base.clone()
        }),
        2
    );
    assert_eq!(
        count(BlockedFilter {
            to: 0,
            ..base.clone()
        }),
        0
    );
    let newest = r
        .blocked(&BlockedFilter {
            limit: 1,
            ..base.clone()
        })
        .unwrap();
    assert_eq!(newest[0].node_id, "kominfo-01");
    assert_eq!(newest[0].attempt.agency, "diskominfo");

    let s = r.blocked_summary(&base).unwrap();
    assert_eq!((s.attempts, s.records), (19, 6));
    assert_eq!(
        s.agencies,
        vec![
            BlockedAgency {
                agency: "dinkes".into(),
                attempts: 12,
                clients: 3
            },
            BlockedAgency {
                agency: "diskominfo".into(),
                attempts: 7,
                clients: 1
            }
        ]
    );
    let t = &s.targets[0];
    assert_eq!(
        (t.target.as_str(), t.attempts, t.clients),
        ("slot88.example", 16, 3)
    );
    // Method, rule and list of its newest record (the QUIC one).
    assert_eq!(t.method, BlockMethod::Quic);
    assert_eq!(t.last_seen, "2025-11-27T09:38:20.000000Z");
    let targets: Vec<(&str, u64)> = s
        .targets
        .iter()
        .map(|t| (t.target.as_str(), t.attempts))
        .collect();
    assert_eq!(
        targets,
        [
            ("slot88.example", 16),
            ("dns.google", 2),
            ("judi.example", 1)
        ]
    );
    let clients: Vec<(&str, &str, u64, u64)> = s
        .clients
        .iter()
        .map(|c| (c.client.as_str(), c.agency.as_str(), c.attempts, c.targets))
        .collect();
    assert_eq!(
        clients,
        [
            ("10.20.1.10", "dinkes", 8, 1),
            ("10.30.1.5", "diskominfo", 7, 1),
            ("10.20.1.11", "dinkes", 3, 2),
            ("10.20.2.10", "dinkes", 1, 1),
        ]
    );
    // Per agency, with a limit per list.
    let d = r
        .blocked_summary(&BlockedFilter { limit: 1, ..dinkes })
        .unwrap();
    assert_eq!((d.attempts, d.records), (12, 5));
    assert_eq!(d.targets.len(), 1);
    assert_eq!(d.targets[0].attempts, 9);
    assert_eq!(d.targets[0].method, BlockMethod::Sni);
    assert_eq!(d.clients.len(), 1);
    assert_eq!(d.clients[0].client, "10.20.1.10");
    let w = r.blocked_summary(&window).unwrap();
    assert_eq!((w.attempts, w.records), (4, 2));
    assert_eq!(w.from, "2025-11-27T09:36:10.000000Z");
    let empty = r
        .blocked_summary(&BlockedFilter {
            agency: Some("nope".into()),
            ..base
        })
        .unwrap();
    assert_eq!((empty.attempts, empty.targets.len()), (0, 0));
}

#[test]
fn blocked_retention_keeps_recent_attempts() {
    use simpul_proto::BlockMethod;
    let dir = tempfile::tempdir().unwrap();
    // Blocked attempts kept 7 days, flows the default 30.
    let cfg = StoreConfig {
        blocked_retention_days: 7,
        ..eager()
    };
    let (_s, mut w, r) = open(dir.path(), cfg);
    let day = 86_400;
    let now = T0 + 10 * day;
    let blocked: Vec<_> = [T0, now - 8 * day, now - 6 * day, now - 60]
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            attempt(
                "10.20.1.10",
                &format!("t{i}.example"),
                BlockMethod::Sni,
                t,
                1,
            )
        })
        .collect();
    let mut b = with_blocked(1, blocked);
    b.flows = vec![flow(1, RecordKind::Final, 1, 1, T0)];
    w.ingest("dinkes-01", "dinkes", &[b]).unwrap();
    let stats = w.apply_retention(at(now)).unwrap();
    assert_eq!(stats.blocked_attempts, 2);
    assert_eq!(stats.flows, 0, "the 10-day-old flow is within 30 days");
    let left: Vec<String> = r
        .blocked(&all_blocked(now + 1))
        .unwrap()
        .into_iter()
        .map(|b| b.attempt.target)
        .collect();
    assert_eq!(left, ["t3.example", "t2.example"]);
    assert_eq!(
        w.apply_retention(at(now)).unwrap(),
        RetentionStats::default()
    );
}
