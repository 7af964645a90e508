//! One suite, two backends: the same batches into SQLite and into a private
//! ClickHouse (Debian's clickhouse-server, started on a temporary directory;
//! these tests fail, never skip, when it is not installed), then every
//! reader method asked the same questions.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use simpul_proto::wire::Batch;
use simpul_proto::BlockMethod;

use super::server::TempClickHouse;
use super::writer::ChWriter;
use super::{ClickHouseConfig, ClickHouseFlowStore, WriterSlot};
use crate::store::bench::comparison::comparison_batches;
use crate::store::traits::{FlowReader, FlowStore, FlowWriter};
use crate::store::{
    BatchOutcome, BlockedFilter, BlockedMatch, BlockedRow, FlowFilter, FlowRow, FlowSort, Net,
    NodeBatches, Step, Store, StoreConfig,
};

pub(super) fn server() -> TempClickHouse {
    TempClickHouse::start().unwrap_or_else(|e| panic!("ClickHouse tests need a server: {e}"))
}

pub(super) fn cfg() -> StoreConfig {
    StoreConfig {
        aggregate_delay_ms: 0,
        flow_retention_days: 36_500,
        blocked_retention_days: 36_500,
        ..StoreConfig::default()
    }
}

pub(super) fn open(ch: &TempClickHouse, db: &str) -> ClickHouseFlowStore {
    let c = ClickHouseConfig {
        url: ch.url.clone(),
        database: db.into(),
        ..ClickHouseConfig::default()
    };
    ClickHouseFlowStore::open(&c, &cfg()).expect("open the ClickHouse store")
}

pub(super) fn ingest(w: &mut dyn FlowWriter, all: &[(String, String, Batch)]) -> Vec<BatchOutcome> {
    let mut o = Vec::new();
    for (node, agency, b) in all {
        let g = NodeBatches {
            node_id: node,
            agency,
            strict_seq: true,
            batches: std::slice::from_ref(b),
        };
        o.extend(w.ingest_many(&[g]).expect("ingest").concat());
    }
    w.fold_aggregates().expect("fold");
    o
}

fn range(all: &[(String, String, Batch)]) -> (u64, u64) {
    let last = all
        .iter()
        .map(|(_, _, b)| b.sealed_ms / 1000)
        .max()
        .unwrap()
        + 1;
    (last - 3600, last)
}

fn sorted_flows(mut v: Vec<FlowRow>) -> Vec<FlowRow> {
    v.sort_by(|x, y| (&x.node_id, x.record.flow_id).cmp(&(&y.node_id, y.record.flow_id)));
    v
}

fn sorted_blocked(mut v: Vec<BlockedRow>) -> Vec<BlockedRow> {
    v.sort_by(|x, y| {
        let k = |r: &BlockedRow| {
            (
                r.attempt.last_seen,
                r.node_id.clone(),
                r.attempt.target.clone(),
                r.attempt.client,
            )
        };
        k(x).cmp(&k(y))
    });
    v
}

/// Every page of a filter, followed by cursor.
fn all_pages(r: &dyn FlowReader, f: &FlowFilter) -> Vec<FlowRow> {
    let mut f = f.clone();
    let mut out = Vec::new();
    for _ in 0..1000 {
        let p = r.flow_page(&f).expect("page");
        out.extend(p.rows);
        match p.next {
            Some(c) => f.cursor = crate::store::FlowCursor::decode(&c),
            None => return out,
        }
    }
    panic!("pages never ended");
}

/// The answers of two readers over the data of `all`.
fn assert_same_answers(a: &dyn FlowReader, b: &dyn FlowReader, all: &[(String, String, Batch)]) {
    let (first, last) = range(all);
    let now = UNIX_EPOCH + Duration::from_secs(last);
    for step in [Step::Second, Step::Minute, Step::Hour] {
        for ag in ["agency00", "agency03", "nope"] {
            assert_eq!(
                a.usage(ag, first, last, step).unwrap(),
                b.usage(ag, first, last, step).unwrap(),
                "usage {ag} {step:?}"
            );
            assert_eq!(
                a.unit_usage(ag, first, last, step).unwrap(),
                b.unit_usage(ag, first, last, step).unwrap(),
                "unit usage {ag} {step:?}"
            );
        }
    }
    assert_eq!(a.traffic(now, 5).unwrap(), b.traffic(now, 5).unwrap());
    assert_eq!(a.traffic(now, 900).unwrap(), b.traffic(now, 900).unwrap());
    assert_eq!(
        a.usage_series_since(last - 60).unwrap(),
        b.usage_series_since(last - 60).unwrap()
    );
    for agency in [None, Some("agency01")] {
        let hosts = a.top_hosts(agency, first, last, 20).unwrap();
        assert!(!hosts.is_empty());
        assert_eq!(hosts, b.top_hosts(agency, first, last, 20).unwrap());
        let sites = a.top_sites(agency, first, last, 20).unwrap();
        assert!(!sites.is_empty());
        assert_eq!(sites, b.top_sites(agency, first, last, 20).unwrap());
    }
    let unit = a.unit_usage("agency01", first, last, Step::Minute).unwrap()[0]
        .unit
        .clone();
    assert_eq!(
        a.unit_hosts("agency01", &unit, first, last, 7).unwrap(),
        b.unit_hosts("agency01", &unit, first, last, 7).unwrap()
    );
    let host = a.top_hosts(None, first, last, 1).unwrap()[0]
        .host
        .parse()
        .unwrap();
    let site = a.top_sites(Some("agency02"), first, last, 1).unwrap()[0]
        .site
        .clone();
    let base = FlowFilter {
        from: first,
        to: last,
        limit: 1000,
        ..FlowFilter::default()
    };
    let filters = [
        FlowFilter {
            host: Some(host),
            ..base.clone()
        },
        FlowFilter {
            site: Some(site.to_uppercase()),
            agency: Some("agency02".into()),
            ..base.clone()
        },
        FlowFilter {
            net: Some(Net::parse("10.0.0.0/8").unwrap()),
            proto: Some("TCP".into()),
            agency: Some("agency05".into()),
            ..base.clone()
        },
        FlowFilter {
            peer: Some(Net::parse("0.0.0.0/1").unwrap()),
            unit: Some(unit.clone()),
            agency: Some("agency01".into()),
            ..base.clone()
        },
    ];
    for f in &filters {
        let x = sorted_flows(a.flows(f).unwrap());
        assert!(
            !x.is_empty() && x.len() < 1000,
            "{} rows for {f:?}",
            x.len()
        );
        // In the same order too: ties go by flow identity on both.
        assert_eq!(a.flows(f).unwrap(), b.flows(f).unwrap(), "{f:?}");
        assert_eq!(
            a.investigate(f, 5).unwrap(),
            b.investigate(f, 5).unwrap(),
            "{f:?}"
        );
        // Small pages in both orders: every flow once, the same set.
        for sort in [FlowSort::Time, FlowSort::Bytes] {
            let paged = FlowFilter {
                limit: 7,
                sort,
                ..f.clone()
            };
            let pa = all_pages(a, &paged);
            assert_eq!(pa.len(), x.len(), "{sort:?} {f:?}");
            assert_eq!(sorted_flows(pa.clone()), x);
            assert_eq!(all_pages(b, &paged), pa, "{sort:?} {f:?}");
            // Newest (or biggest) first within the pages.
            let keys: Vec<u64> = pa
                .iter()
                .map(|r| match sort {
                    FlowSort::Time => r.record.last_seen,
                    FlowSort::Bytes => r.record.bytes_total(),
                })
                .collect();
            assert!(keys.windows(2).all(|w| w[0] >= w[1]), "{sort:?}");
        }
    }
    // The flows page as it opens, newest or biggest first (time and agency
    // only: on ClickHouse read through `flow_index`, by time in windows from
    // the end): every page, in order, the same flows.
    for sort in [FlowSort::Time, FlowSort::Bytes] {
        for (agency, limit) in [(None, 500), (Some("agency03"), 7)] {
            let f = FlowFilter {
                agency: agency.map(str::to_string),
                limit,
                sort,
                ..base.clone()
            };
            let pa = all_pages(a, &f);
            assert!(pa.len() > 200, "{}", pa.len());
            let pb = all_pages(b, &f);
            let keys = |p: &[FlowRow]| {
                p.iter()
                    .map(|r| match sort {
                        FlowSort::Time => r.record.last_seen,
                        FlowSort::Bytes => r.record.bytes_total(),
                    })
                    .collect::<Vec<_>>()
            };
            assert_eq!(keys(&pa), keys(&pb), "{sort:?} {agency:?}");
            assert!(keys(&pa).windows(2).all(|w| w[0] >= w[1]));
            assert_eq!(pa, pb, "{sort:?} {agency:?}");
        }
    }
    let blocked = BlockedFilter {
        from: first,
        to: last,
        limit: 1000,
        ..BlockedFilter::default()
    };
    let rows = a.blocked(&blocked).unwrap();
    assert_eq!(rows.len(), 160);
    assert_eq!(
        sorted_blocked(rows),
        sorted_blocked(b.blocked(&blocked).unwrap())
    );
    for summary in [
        BlockedFilter {
            limit: 3,
            agency: Some("agency04".into()),
            ..blocked.clone()
        },
        BlockedFilter {
            limit: 50,
            method: Some(BlockMethod::Dns),
            ..blocked.clone()
        },
    ] {
        assert_eq!(
            a.blocked_summary(&summary).unwrap(),
            b.blocked_summary(&summary).unwrap()
        );
        assert_eq!(
            a.blocked_categories(&summary).unwrap(),
            b.blocked_categories(&summary).unwrap()
        );
    }
    let m = BlockedMatch {
        client: Some(Net::parse("10.0.0.0/30").unwrap()),
        target: Some("SITE2.example".into()),
        unit: Some("unit0".into()),
    };
    let x = sorted_blocked(a.blocked_matching(first, last, None, &m, 1000).unwrap());
    assert!(!x.is_empty());
    assert_eq!(
        x,
        sorted_blocked(b.blocked_matching(first, last, None, &m, 1000).unwrap())
    );
}

#[test]
fn clickhouse_answers_like_sqlite() {
    let ch = server();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(dir.path(), cfg()).unwrap();
    let click = open(&ch, "same_answers");
    assert_eq!(click.kind(), "clickhouse");
    assert!(matches!(
        click
            .writer()
            .map(|_| ())
            .and_then(|_| click.writer().map(|_| ())),
        Ok(())
    ));
    let all = comparison_batches();
    let mut outcomes = Vec::new();
    for s in [&sqlite as &dyn FlowStore, &click] {
        let mut w = s.writer().unwrap();
        assert!(matches!(
            s.writer().map(|_| ()),
            Err(crate::store::StoreError::WriterInUse)
        ));
        outcomes.push(ingest(w.as_mut(), &all));
    }
    assert_eq!(outcomes[0], outcomes[1]);
    let dups = outcomes[1]
        .iter()
        .filter(|o| **o == BatchOutcome::Duplicate)
        .count();
    assert_eq!(dups, 5);
    let (r0, r1) = (FlowStore::reader(&sqlite).unwrap(), click.reader().unwrap());
    r1.check().unwrap();
    assert_same_answers(r0.as_ref(), r1.as_ref(), &all);

    // A new writer (a restarted collector) knows the marks: everything again
    // is a duplicate, and nothing changes.
    let mut w = click.writer().unwrap();
    let again = ingest(w.as_mut(), &all);
    assert!(again.iter().all(|o| *o == BatchOutcome::Duplicate));
    drop(w);
    // Merged or not, the same answers.
    for t in super::schema::RETAINED {
        click
            .client()
            .exec(&format!("OPTIMIZE TABLE same_answers.{} FINAL", t.name))
            .unwrap();
    }
    assert_same_answers(r0.as_ref(), r1.as_ref(), &all);
}

#[test]
fn a_crash_between_the_data_and_the_marks_doubles_nothing() {
    let ch = server();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(dir.path(), cfg()).unwrap();
    let click = open(&ch, "crash");
    let all = comparison_batches();
    let (first_half, rest) = all.split_at(20);
    ingest(FlowStore::writer(&sqlite).unwrap().as_mut(), &all);
    {
        let mut w = click.writer().unwrap();
        ingest(w.as_mut(), first_half);
    }
    // Data of the next batches written, their marks not: the writer dies
    // (its caches with it) before acknowledging.
    {
        let mut w =
            ChWriter::open(click.clone(), WriterSlot(Arc::new(AtomicBool::new(true)))).unwrap();
        w.crash_before_marks = true;
        for (node, agency, b) in &rest[..10] {
            let g = NodeBatches {
                node_id: node,
                agency,
                strict_seq: true,
                batches: std::slice::from_ref(b),
            };
            assert!(w.ingest_many(&[g]).is_err());
        }
    }
    let raw = |sql: &str| -> u64 {
        #[derive(serde::Deserialize)]
        struct N {
            n: u64,
        }
        click.client().rows::<N>(sql).unwrap()[0].n
    };
    // Rows of those batches are in, above the marks.
    for t in [
        "flow_records",
        "usage_1s",
        "blocked",
        "top_hosts_1m",
        "usage_1m",
    ] {
        assert!(
            raw(&format!("SELECT count() AS n FROM crash.{t}")) > 0,
            "{t}"
        );
    }
    // No merges from here: the answers must count one copy through FINAL,
    // not because ClickHouse merged the copies away in the background.
    click.client().exec("SYSTEM STOP MERGES").unwrap();
    // The agent sends them again, and the rest: stored, not duplicates.
    let mut w = click.writer().unwrap();
    let o = ingest(w.as_mut(), rest);
    assert_eq!(
        o.iter().filter(|o| **o == BatchOutcome::Stored).count(),
        20,
        "{o:?}"
    );
    drop(w);
    // Both copies are there; every answer counts one (the SQLite store had
    // every batch once).
    let copies = raw("SELECT count() AS n FROM crash.usage_1s");
    let once = raw("SELECT count() AS n FROM crash.usage_1s FINAL");
    assert!(copies > once, "{copies} {once}");
    let (r0, r1) = (FlowStore::reader(&sqlite).unwrap(), click.reader().unwrap());
    assert_same_answers(r0.as_ref(), r1.as_ref(), &all);
}

#[test]
fn restart_closes_and_retention_drop_whole_days() {
    let ch = server();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(dir.path(), cfg()).unwrap();
    // Flows and blocked attempts kept 30 days here (the SQLite side keeps
    // them for the comparison before retention runs).
    let click = ClickHouseFlowStore::open(
        &ClickHouseConfig {
            url: ch.url.clone(),
            database: "retention".into(),
            flow_retention_days: Some(30),
            blocked_retention_days: Some(30),
            ..ClickHouseConfig::default()
        },
        &cfg(),
    )
    .unwrap();
    let all = comparison_batches();
    for s in [&sqlite as &dyn FlowStore, &click] {
        let mut w = s.writer().unwrap();
        ingest(w.as_mut(), &all);
        // Every node restarted: its open flows end as agent_restart.
        let mut closed = 0;
        for n in 0..40 {
            closed += w.close_interim(&format!("node-{n:02}"), u64::MAX).unwrap();
        }
        assert!(closed > 0);
        let again: u64 = (0..40)
            .map(|n| w.close_interim(&format!("node-{n:02}"), u64::MAX).unwrap())
            .sum();
        assert_eq!(again, 0);
    }
    let (r0, r1) = (FlowStore::reader(&sqlite).unwrap(), click.reader().unwrap());
    assert_same_answers(r0.as_ref(), r1.as_ref(), &all);

    let (first, last) = range(&all);
    let mut w = click.writer().unwrap();
    // Within every retention: nothing goes.
    let st = w
        .apply_retention(UNIX_EPOCH + Duration::from_secs(last + 86_400))
        .unwrap();
    assert_eq!((st.flows, st.usage_1s, st.usage_1h), (0, 0, 0));
    // 40 days on: flows, blocked, seconds, minutes and top lists (30 days)
    // go; the hours (730 days) stay.
    let st = w
        .apply_retention(UNIX_EPOCH + Duration::from_secs(last + 40 * 86_400))
        .unwrap();
    assert!(
        st.flows > 0 && st.blocked_attempts > 0 && st.usage_1s > 0 && st.top_hosts_1m > 0,
        "{st:?}"
    );
    assert_eq!(st.usage_1h, 0);
    let f = FlowFilter {
        from: first,
        to: last,
        limit: 10,
        ..FlowFilter::default()
    };
    assert!(r1.flows(&f).unwrap().is_empty());
    assert!(r1.top_hosts(None, first, last, 5).unwrap().is_empty());
    let hours = r1.unit_usage("agency00", first, last, Step::Hour).unwrap();
    assert!(!hours.is_empty());
    assert_eq!(
        hours,
        r0.unit_usage("agency00", first, last, Step::Hour).unwrap()
    );
    // The seconds are gone; the hours' peaks and p95 are kept with them
    // (usage_peak_1h), so the answer is still SQLite's.
    let u = r1.usage("agency00", first, last, Step::Hour).unwrap();
    assert!(u.peaks.peak_in_bps.is_some() && u.peaks.steps_without_peaks == 0);
    assert_eq!(u, r0.usage("agency00", first, last, Step::Hour).unwrap());
    assert!(st.usage_peak_1m > 0 && st.usage_peak_1h == 0, "{st:?}");
}

#[test]
fn a_missing_or_wrong_server_is_a_clear_error() {
    let c = ClickHouseConfig {
        url: "http://127.0.0.1:1".into(),
        timeout_secs: 2,
        ..ClickHouseConfig::default()
    };
    let e = ClickHouseFlowStore::open(&c, &cfg())
        .unwrap_err()
        .to_string();
    assert!(e.contains("ClickHouse at http://127.0.0.1:1"), "{e}");
    let bad = ClickHouseConfig {
        database: "a-b".into(),
        ..c.clone()
    };
    let e = ClickHouseFlowStore::open(&bad, &cfg())
        .unwrap_err()
        .to_string();
    assert!(e.contains("storage.clickhouse.database"), "{e}");
}

#[test]
fn collector_toml_chooses_the_backend() {
    use crate::config::{CollectorConfig, StorageBackend};
    let path = std::path::Path::new("/etc/simpul/collector.toml");
    let base = "[server]\nlisten = \"127.0.0.1:8080\"\n";
    let c = CollectorConfig::parse(base, path).unwrap();
    assert_eq!(c.storage.backend, StorageBackend::Sqlite);
    let c = CollectorConfig::parse(
        &format!(
            "{base}[storage]\nbackend = \"clickhouse\"\n[storage.clickhouse]\n\
             url = \"http://10.0.0.5:8123\"\ndatabase = \"noc\"\nusage_1h_retention_days = 365\n"
        ),
        path,
    )
    .unwrap();
    assert_eq!(c.storage.backend, StorageBackend::Clickhouse);
    assert_eq!(c.storage.clickhouse.url, "http://10.0.0.5:8123");
    assert_eq!(c.storage.clickhouse.database, "noc");
    assert_eq!(c.storage.clickhouse.usage_1h_retention_days, 365);
    assert_eq!(c.storage.clickhouse.top_retention_days, 30);
    let e = CollectorConfig::parse(
        &format!(
            "{base}[storage]\nbackend = \"clickhouse\"\n[storage.clickhouse]\nurl = \"https://x\"\n"
        ),
        path,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("storage.clickhouse.url"), "{e}");
    assert!(
        CollectorConfig::parse(&format!("{base}[storage]\nbackend = \"mongo\"\n"), path).is_err()
    );
}

#[derive(serde::Deserialize)]
struct Count {
    n: u64,
}

fn count(c: &super::Client, sql: &str) -> u64 {
    c.rows::<Count>(sql).expect("count")[0].n
}

#[test]
fn a_cluster_of_two_shards_answers_like_one_server() {
    let shards = TempClickHouse::start_cluster("simpul_test", 2)
        .unwrap_or_else(|e| panic!("ClickHouse tests need a server: {e}"));
    let urls: Vec<String> = shards.iter().map(|s| s.url.clone()).collect();
    let c = ClickHouseConfig {
        url: urls[1].clone(),
        database: "spread".into(),
        cluster: Some("simpul_test".into()),
        shards: urls.clone(),
        ..ClickHouseConfig::default()
    };
    let click = ClickHouseFlowStore::open(&c, &cfg()).expect("open on the cluster");
    // A second collector opening the same cluster changes nothing.
    ClickHouseFlowStore::open(&c, &cfg()).expect("open again");
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(dir.path(), cfg()).unwrap();
    let all = comparison_batches();
    let o0 = ingest(FlowStore::writer(&sqlite).unwrap().as_mut(), &all);
    let o1 = ingest(click.writer().unwrap().as_mut(), &all);
    assert_eq!(o0, o1);

    // Real Distributed tables: every shard holds some nodes' rows, none all.
    let local = |t: &str| -> Vec<u64> {
        shards
            .iter()
            .map(|s| {
                let c = super::Client::new(&s.url, Duration::from_secs(10)).unwrap();
                count(&c, &format!("SELECT count() AS n FROM spread_local.{t}"))
            })
            .collect()
    };
    for t in ["flow_records", "usage_1s", "top_hosts_1m", "usage_peak_1m"] {
        let total = count(
            click.client(),
            &format!("SELECT count() AS n FROM spread.{t}"),
        );
        let per = local(t);
        assert!(
            per.iter().all(|&n| n > 0 && n < total),
            "{t}: {per:?} of {total}"
        );
        assert_eq!(per.iter().sum::<u64>(), total, "{t}");
    }
    let (r0, r1) = (FlowStore::reader(&sqlite).unwrap(), click.reader().unwrap());
    r1.check().unwrap();
    assert_same_answers(r0.as_ref(), r1.as_ref(), &all);

    // A restarted collector knows the marks kept on the shards.
    let again = ingest(click.writer().unwrap().as_mut(), &all);
    assert!(again.iter().all(|o| *o == BatchOutcome::Duplicate));
    assert_same_answers(r0.as_ref(), r1.as_ref(), &all);

    // Retention drops the partitions on every shard.
    let (_, last) = range(&all);
    let before: u64 = local("usage_1s").iter().sum();
    let st = click
        .writer()
        .unwrap()
        .apply_retention(UNIX_EPOCH + Duration::from_secs(last + 40 * 86_400))
        .unwrap();
    assert_eq!(st.usage_1s, before);
    assert_eq!(local("usage_1s"), vec![0, 0]);
    assert!(local("usage_1h").iter().all(|&n| n > 0));
}

/// A batch carrying only what the agent says its spool dropped.
fn drops(boot: u64, seq: u64, records: u64) -> Batch {
    Batch {
        boot_epoch: boot,
        seq,
        sealed_ms: 0,
        flows: Vec::new(),
        counters: Vec::new(),
        blocked: Vec::new(),
        dropped_records: records,
        dropped_batches: 0,
    }
}

fn on(node: &str, b: Batch) -> (String, String, Batch) {
    (node.into(), "agency00".into(), b)
}

fn one_batch(
    w: &mut dyn FlowWriter,
    node: &str,
    b: &Batch,
) -> Result<Vec<BatchOutcome>, crate::store::StoreError> {
    let g = NodeBatches {
        node_id: node,
        agency: "agency00",
        strict_seq: true,
        batches: std::slice::from_ref(b),
    };
    Ok(w.ingest_many(&[g])?.concat())
}

/// The records each agent's spool dropped, as the nodes list shows them:
/// summed per boot over its stored batches (a re-sent batch adds nothing,
/// a forged count is capped), over all boots per node, equal to SQLite's
/// through a restarted writer, a crash between the data and the marks,
/// and merges.
#[test]
fn dropped_records_are_kept_per_boot_like_sqlite() {
    let ch = server();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(dir.path(), cfg()).unwrap();
    let click = open(&ch, "drops");
    let all = vec![
        on("node-a", drops(1, 1, 5)),
        on("node-a", drops(1, 2, 2)),
        on("node-a", drops(1, 2, 2)),
        on("node-a", drops(2, 1, 7)),
        on("node-b", drops(9, 1, u64::MAX)),
        on("node-b", drops(9, 2, 1)),
        on("node-c", drops(1, 1, 0)),
    ];
    for s in [&sqlite as &dyn FlowStore, &click] {
        let o = ingest(s.writer().unwrap().as_mut(), &all);
        assert_eq!(o[2], BatchOutcome::Duplicate, "{o:?}");
    }
    let (r0, r1) = (FlowStore::reader(&sqlite).unwrap(), click.reader().unwrap());
    let cap = (1u64 << 53) - 1;
    let want = |a: u64| {
        std::collections::HashMap::from([
            ("node-a".to_string(), a),
            ("node-b".to_string(), cap),
            ("node-c".to_string(), 0),
        ])
    };
    assert_eq!(r0.dropped_records().unwrap(), want(14));
    assert_eq!(r1.dropped_records().unwrap(), want(14));

    // A restarted writer goes on from the counts kept with the marks.
    for s in [&sqlite as &dyn FlowStore, &click] {
        let mut w = s.writer().unwrap();
        let o = one_batch(w.as_mut(), "node-a", &drops(2, 2, 3)).unwrap();
        assert_eq!(o, [BatchOutcome::Stored]);
    }
    assert_eq!(r1.dropped_records().unwrap(), want(17));

    // The data of a batch written, its marks not (the writer dies before
    // acknowledging): not counted, and counted once when it comes again.
    let again = drops(2, 3, 4);
    {
        let mut w =
            ChWriter::open(click.clone(), WriterSlot(Arc::new(AtomicBool::new(true)))).unwrap();
        w.crash_before_marks = true;
        assert!(one_batch(&mut w, "node-a", &again).is_err());
    }
    assert_eq!(r1.dropped_records().unwrap(), want(17));
    for s in [&sqlite as &dyn FlowStore, &click] {
        let mut w = s.writer().unwrap();
        assert_eq!(
            one_batch(w.as_mut(), "node-a", &again).unwrap(),
            [BatchOutcome::Stored]
        );
        assert_eq!(
            one_batch(w.as_mut(), "node-a", &again).unwrap(),
            [BatchOutcome::Duplicate]
        );
    }
    assert_eq!(r0.dropped_records().unwrap(), want(21));
    assert_eq!(r1.dropped_records().unwrap(), want(21));
    click
        .client()
        .exec("OPTIMIZE TABLE drops.streams FINAL")
        .unwrap();
    assert_eq!(r1.dropped_records().unwrap(), want(21));
}

/// A database a collector made before the counts were kept (schema 3: no
/// `dropped_records` in `streams`) gains the column on opening: its marks
/// still hold, its earlier boots count 0 (nothing kept them), and drops
/// from then on are counted.
#[test]
fn an_older_database_gains_the_drop_counts() {
    let ch = server();
    let c = super::Client::new(&ch.url, Duration::from_secs(10)).unwrap();
    for sql in [
        "CREATE DATABASE old",
        "CREATE TABLE old.meta (key String, value UInt64) \
         ENGINE = ReplacingMergeTree(value) ORDER BY key",
        "CREATE TABLE old.streams (node String, boot UInt64, seq UInt64, dropped UInt64) \
         ENGINE = ReplacingMergeTree(seq) ORDER BY (node, boot)",
        "INSERT INTO old.meta VALUES ('schema', 3)",
        "INSERT INTO old.streams VALUES ('node-a', 1, 4, 0)",
    ] {
        c.exec(sql).unwrap();
    }
    let click = open(&ch, "old");
    assert_eq!(
        super::schema::version(&c, "old").unwrap(),
        super::schema::VERSION
    );
    let r = click.reader().unwrap();
    assert_eq!(r.dropped_records().unwrap().get("node-a"), Some(&0));
    let mut w = click.writer().unwrap();
    assert_eq!(
        one_batch(w.as_mut(), "node-a", &drops(1, 4, 9)).unwrap(),
        [BatchOutcome::Duplicate]
    );
    assert_eq!(
        one_batch(w.as_mut(), "node-a", &drops(1, 5, 6)).unwrap(),
        [BatchOutcome::Stored]
    );
    assert_eq!(r.dropped_records().unwrap().get("node-a"), Some(&6));
    // Opening it again changes nothing.
    drop(w);
    let again = open(&ch, "old");
    assert_eq!(
        again
            .reader()
            .unwrap()
            .dropped_records()
            .unwrap()
            .get("node-a"),
        Some(&6)
    );
}

/// A database of schema 5 (`flow_times`, no sizes) opened by this code:
/// `flow_index` is filled from the records written before and while it had
/// its old view, `flow_times` is gone, and every answer (the biggest flows
/// among them) is SQLite's. Opening it again changes nothing.
#[test]
fn a_version_5_database_gains_the_flow_index() {
    let ch = server();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(dir.path(), cfg()).unwrap();
    let sqlite: &dyn FlowStore = &sqlite;
    let all = comparison_batches();
    let (before, after) = all.split_at(all.len() / 2);
    let click = open(&ch, "v5");
    let mut w = click.writer().unwrap();
    ingest(w.as_mut(), before);
    let c = super::Client::new(&ch.url, Duration::from_secs(10)).unwrap();
    // Back to version 5's shape: its time index and view, its version.
    for sql in [
        "DROP TABLE v5.flow_index_mv",
        "DROP TABLE v5.flow_index",
        "CREATE TABLE v5.flow_times (last_seen UInt64, node String, boot UInt64, \
         seq UInt64, idx UInt32, flow_id UInt64, agency String) \
         ENGINE = ReplacingMergeTree() PARTITION BY intDiv(last_seen, 86400000000000) \
         ORDER BY (last_seen, node, boot, seq, idx)",
        "CREATE MATERIALIZED VIEW v5.flow_times_mv TO v5.flow_times AS \
         SELECT last_seen, node, boot, seq, idx, flow_id, agency FROM v5.flow_records",
        "TRUNCATE TABLE v5.meta",
        "INSERT INTO v5.meta VALUES ('schema', 5)",
    ] {
        c.exec(sql).unwrap();
    }
    // What a version-5 collector wrote: through the old view.
    ingest(w.as_mut(), after);
    drop((w, click));
    assert!(count(&c, "SELECT count() AS n FROM v5.flow_times") > 0);
    let click = open(&ch, "v5");
    assert_eq!(super::schema::version(&c, "v5").unwrap(), 6);
    let tables = |name: &str| {
        count(
            &c,
            &format!(
                "SELECT count() AS n FROM system.tables WHERE database = 'v5' AND name = '{name}'"
            ),
        )
    };
    assert_eq!((tables("flow_times"), tables("flow_times_mv")), (0, 0));
    let records = count(&c, "SELECT count() AS n FROM v5.flow_records FINAL");
    let indexed = "SELECT count() AS n FROM v5.flow_index FINAL";
    assert_eq!(count(&c, indexed), records);
    ingest(sqlite.writer().unwrap().as_mut(), &all);
    let (s, r) = (sqlite.reader().unwrap(), click.reader().unwrap());
    assert_same_answers(s.as_ref(), r.as_ref(), &all);
    drop((r, click));
    let again = open(&ch, "v5");
    assert_eq!(count(&c, indexed), records);
    assert_same_answers(s.as_ref(), again.reader().unwrap().as_ref(), &all);
}

/// The nodes list of a collector whose flows are on ClickHouse (its
/// registry in SQLite, which holds none of the flows' streams) shows the
/// records each node's agent dropped, from the flow store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_list_shows_drops_kept_on_clickhouse() {
    use simpul_proto::inventory::{Agency, Inventory, Node};
    let ch = server();
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::config::CollectorConfig::default();
    config.server.listen = Some("127.0.0.1:0".parse().unwrap());
    config.storage.data_dir = dir.path().to_owned();
    config.storage.backend = crate::config::StorageBackend::Clickhouse;
    config.storage.clickhouse = ClickHouseConfig {
        url: ch.url.clone(),
        database: "nodes_list".into(),
        ..ClickHouseConfig::default()
    };
    let c = crate::server::Collector::start(config).await.unwrap();
    let inv = Inventory {
        agencies: vec![Agency {
            code: "agency00".into(),
            name: "Agency 00".into(),
            units: vec![],
        }],
        nodes: vec![Node {
            id: "node-a".into(),
            agency: "agency00".into(),
            ..Node::default()
        }],
        ..Inventory::default()
    };
    c.state.inventory.set(&inv).unwrap();
    let hour = Duration::from_secs(3600);
    let token = c
        .state
        .control
        .create_enrollment_token("agency00", "node-a", hour)
        .unwrap();
    c.state.control.enroll("node-a", &token).unwrap();
    // Another handle on the same database (the collector holds its own
    // store's writer), as a second collector of a cluster would write.
    let other = open(&ch, "nodes_list");
    ingest(
        other.writer().unwrap().as_mut(),
        &[
            on("node-a", drops(1, 1, 5)),
            on("node-a", drops(1, 2, 2)),
            on("node-a", drops(2, 1, 7)),
        ],
    );
    let state = c.state.clone();
    let nodes = tokio::task::spawn_blocking(move || {
        crate::service::nodes(&state, std::time::SystemTime::now())
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!(
        (nodes[0].node_id.as_str(), nodes[0].dropped_records),
        ("node-a", 14)
    );
    c.stop().await;
}

/// Flows that tie on every sort key (one instant, one byte count) across
/// nodes, boots and flow ids (some above i64::MAX, where a signed compare
/// would turn them around), paged seven at a time: every store gives the
/// same sequence, (node, boot, flow id) descending, each flow once, whether
/// the page reads by time alone (ClickHouse's flow_times, SQLite's newest
/// rows of a chunk), by agency, with a row condition, or by bytes.
#[test]
fn tied_flows_page_alike_on_every_store() {
    use simpul_proto::{EndReason, FlowRecord, RecordKind, TrafficScope};
    const T: u64 = 1_764_236_100;
    let flow = |flow_id: u64, agency: &str, last_seen: u64, bytes: u64| FlowRecord {
        flow_id,
        kind: RecordKind::Final,
        end_reason: EndReason::Fin,
        proto: if flow_id.is_multiple_of(3) {
            "udp"
        } else {
            "tcp"
        }
        .into(),
        src_ip: format!("10.9.{}.{}", flow_id % 7, flow_id % 200 + 1)
            .parse()
            .unwrap(),
        src_port: Some(40_000),
        dst_ip: "203.0.113.9".parse().unwrap(),
        dst_port: Some(443),
        vlan: None,
        vlan_inner: None,
        packets_up: 1,
        bytes_up: bytes,
        packets_down: 0,
        bytes_down: 0,
        first_seen: (T - 5) * 1_000_000_000,
        last_seen,
        tcp_flags_up: None,
        tcp_flags_down: None,
        sni: None,
        http_host: None,
        dns_query: None,
        site: None,
        site_source: None,
        agency: agency.into(),
        unit: "umum".into(),
        scope: TrafficScope::Internet,
    };
    // (node, agency, boot, first flow id): node ids that sort apart only by
    // case, two boots of one node, flow ids either side of 2^63.
    let streams: [(&str, &str, u64, u64); 5] = [
        ("node-a", "agency00", 100, 1),
        ("node-a", "agency00", 200, 1),
        ("node-b", "agency01", 100, 1),
        ("Node-b", "agency00", 100, (1 << 63) - 20),
        ("node-c", "agency01", 300, 40),
    ];
    let tied = T * 1_000_000_000;
    let mut all = Vec::new();
    let mut want = Vec::new();
    for (node, agency, boot, first) in streams {
        let mut flows = Vec::new();
        for i in 0..40u64 {
            let id = first + i;
            // Most tie; a few are older and bigger (not tied by time, but
            // tied by bytes with each other).
            let (ls, bytes) = if i % 10 == 9 {
                (tied - 1_000_000_000, 5000)
            } else {
                (tied, 1000)
            };
            flows.push(flow(id, agency, ls, bytes));
            want.push((node.to_string(), agency, boot, id, ls, bytes));
        }
        all.push((
            node.to_string(),
            agency.to_string(),
            Batch {
                boot_epoch: boot,
                seq: 1,
                sealed_ms: T * 1000,
                flows,
                counters: vec![],
                blocked: vec![],
                dropped_records: 0,
                dropped_batches: 0,
            },
        ));
    }
    let ch = server();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(dir.path(), cfg()).unwrap();
    let memory = crate::store::memory::MemoryFlowStore::new(cfg());
    let click = open(&ch, "tied_pages");
    let stores: [&dyn FlowStore; 3] = [&memory, &sqlite, &click];
    for s in stores {
        ingest(s.writer().unwrap().as_mut(), &all);
    }
    let readers: Vec<_> = stores.iter().map(|s| s.reader().unwrap()).collect();
    let base = FlowFilter {
        from: T - 60,
        to: T + 60,
        limit: 7,
        ..FlowFilter::default()
    };
    let filters = [
        base.clone(),
        FlowFilter {
            agency: Some("agency00".into()),
            ..base.clone()
        },
        FlowFilter {
            proto: Some("tcp".into()),
            ..base.clone()
        },
    ];
    for f in filters {
        for sort in [FlowSort::Time, FlowSort::Bytes] {
            let f = FlowFilter { sort, ..f.clone() };
            let mut expect: Vec<_> = want
                .iter()
                .filter(|w| f.agency.as_deref().is_none_or(|a| a == w.1))
                .filter(|w| f.proto.is_none() || !w.3.is_multiple_of(3))
                .map(|w| {
                    let key = if sort == FlowSort::Time { w.4 } else { w.5 };
                    (key, w.0.clone(), w.2, w.3)
                })
                .collect();
            expect.sort_by(|a, b| b.cmp(a));
            let expect: Vec<(String, u64)> = expect.into_iter().map(|e| (e.1, e.3)).collect();
            let pages: Vec<Vec<FlowRow>> =
                readers.iter().map(|r| all_pages(r.as_ref(), &f)).collect();
            let ids = |p: &[FlowRow]| -> Vec<(String, u64)> {
                p.iter()
                    .map(|r| (r.node_id.clone(), r.record.flow_id))
                    .collect()
            };
            assert_eq!(ids(&pages[0]), expect, "memory {sort:?} {f:?}");
            assert_eq!(ids(&pages[1]), expect, "SQLite {sort:?} {f:?}");
            assert_eq!(ids(&pages[2]), expect, "ClickHouse {sort:?} {f:?}");
            assert_eq!(pages[1], pages[2], "{sort:?} {f:?}");
            // And the cursors themselves: each store's next page starts
            // where the others' does.
            let first: Vec<Option<String>> = readers
                .iter()
                .map(|r| r.flow_page(&f).unwrap().next)
                .collect();
            assert!(first[0].is_some());
            assert!(first.iter().all(|c| *c == first[0]), "{first:?}");
        }
    }
}

/// The same on a cluster made before the counts were kept: each shard's
/// `streams` and the Distributed table over them gain the column (a
/// Distributed table reads only the columns it declares).
#[test]
fn an_older_cluster_gains_the_drop_counts() {
    let shards = TempClickHouse::start_cluster("simpul_test", 2)
        .unwrap_or_else(|e| panic!("ClickHouse tests need a server: {e}"));
    let urls: Vec<String> = shards.iter().map(|s| s.url.clone()).collect();
    let clients: Vec<super::Client> = urls
        .iter()
        .map(|u| super::Client::new(u, Duration::from_secs(10)).unwrap())
        .collect();
    for (i, c) in clients.iter().enumerate() {
        for sql in [
            "CREATE DATABASE old_local",
            "CREATE TABLE old_local.meta (key String, value UInt64) \
             ENGINE = ReplacingMergeTree(value) ORDER BY key",
            "CREATE TABLE old_local.streams (node String, boot UInt64, seq UInt64, \
             dropped UInt64) ENGINE = ReplacingMergeTree(seq) ORDER BY (node, boot)",
            "CREATE DATABASE old",
            "CREATE TABLE old.meta AS old_local.meta \
             ENGINE = Distributed(simpul_test, old_local, meta, cityHash64(key))",
            "CREATE TABLE old.streams AS old_local.streams \
             ENGINE = Distributed(simpul_test, old_local, streams, cityHash64(node))",
        ] {
            c.exec(sql).unwrap();
        }
        if i == 0 {
            c.exec("INSERT INTO old_local.meta VALUES ('schema', 3)")
                .unwrap();
            c.exec("INSERT INTO old_local.streams VALUES ('node-a', 1, 4, 0)")
                .unwrap();
        }
    }
    let click = ClickHouseFlowStore::open(
        &ClickHouseConfig {
            url: urls[1].clone(),
            database: "old".into(),
            cluster: Some("simpul_test".into()),
            shards: urls.clone(),
            ..ClickHouseConfig::default()
        },
        &cfg(),
    )
    .expect("open the older cluster");
    for c in &clients {
        for db in ["old", "old_local"] {
            let n = count(
                c,
                &format!(
                    "SELECT count() AS n FROM system.columns WHERE database = '{db}' \
                     AND table = 'streams' AND name = 'dropped_records'"
                ),
            );
            assert_eq!(n, 1, "{db} on {}", c.url());
        }
    }
    let r = click.reader().unwrap();
    assert_eq!(r.dropped_records().unwrap().get("node-a"), Some(&0));
    let mut w = click.writer().unwrap();
    assert_eq!(
        one_batch(w.as_mut(), "node-a", &drops(1, 4, 9)).unwrap(),
        [BatchOutcome::Duplicate]
    );
    assert_eq!(
        one_batch(w.as_mut(), "node-a", &drops(1, 5, 6)).unwrap(),
        [BatchOutcome::Stored]
    );
    assert_eq!(r.dropped_records().unwrap().get("node-a"), Some(&6));
}
