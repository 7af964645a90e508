//! Top hosts and sites over days: the hour and day folds (`rollups::COARSE`)
//! give the answers SQLite gives, for aligned and unaligned ranges, while a
//! late batch into an old hour is pending and after it is folded; and they
//! are really what answers (a day whose minutes are gone still answers).

use std::time::Duration;

use simpul_proto::wire::Batch;

use super::tests::{cfg, ingest, open, server};
use crate::store::bench::Generator;
use crate::store::traits::{FlowReader, FlowStore};
use crate::store::{NodeBatches, Store};

/// Spread 97 minutes apart: 40 batches cover about 2.7 days.
const SPREAD_NS: u64 = 97 * 60 * 1_000_000_000;

fn shifted(mut b: Batch, by_ns: u64) -> Batch {
    for f in &mut b.flows {
        f.first_seen += by_ns;
        f.last_seen += by_ns;
    }
    for c in &mut b.counters {
        c.ts += by_ns / 1_000_000_000;
    }
    for a in &mut b.blocked {
        a.first_seen += by_ns;
        a.last_seen += by_ns;
    }
    b.sealed_ms += by_ns / 1_000_000;
    b
}

fn batch(g: &mut Generator, k: u64) -> (String, String, Batch) {
    let (node, b) = g.batch(200);
    (
        format!("node-{node:02}"),
        format!("agency{node:02}"),
        shifted(b, k * SPREAD_NS),
    )
}

/// The top-N answers over ranges of every shape within `[first, last)`.
fn assert_same_tops(a: &dyn FlowReader, b: &dyn FlowReader, first: u64, last: u64, when: &str) {
    let day = 86_400;
    let first_day = first.div_ceil(day) * day;
    let ranges = [
        (first, last),
        (first_day, first_day + day),
        (first + 1234, last - 4321),
        (first_day - 5400, first_day + 2 * 3600 + 60),
        (last - 90 * 60, last),
    ];
    for (from, to) in ranges {
        for agency in [None, Some("agency01")] {
            let what = format!("{when}: {from}..{to} {agency:?}");
            assert_eq!(
                a.top_hosts(agency, from, to, 20).unwrap(),
                b.top_hosts(agency, from, to, 20).unwrap(),
                "top hosts {what}"
            );
            assert_eq!(
                a.top_sites(agency, from, to, 20).unwrap(),
                b.top_sites(agency, from, to, 20).unwrap(),
                "top sites {what}"
            );
        }
        assert_eq!(
            a.unit_hosts("agency02", "unit1", from, to, 7).unwrap(),
            b.unit_hosts("agency02", "unit1", from, to, 7).unwrap(),
            "unit hosts {when}: {from}..{to}"
        );
    }
}

#[test]
fn top_hosts_and_sites_over_days_come_from_hour_and_day_folds_like_sqlite() {
    let ch = server();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(dir.path(), cfg()).unwrap();
    let click = open(&ch, "coarse");
    let mut g = Generator::new();
    let all: Vec<_> = (0..40).map(|k| batch(&mut g, k)).collect();
    let mut writers = Vec::new();
    for s in [&sqlite as &dyn FlowStore, &click] {
        let mut w = s.writer().unwrap();
        ingest(w.as_mut(), &all);
        writers.push(w);
    }
    let secs = |b: &Batch| b.sealed_ms / 1000;
    let first = all.iter().map(|x| secs(&x.2)).min().unwrap() - 3600;
    let last = all.iter().map(|x| secs(&x.2)).max().unwrap() + 1;
    let (r0, r1) = (FlowStore::reader(&sqlite).unwrap(), click.reader().unwrap());
    let count = |t: &str| -> u64 {
        #[derive(serde::Deserialize)]
        struct N {
            n: u64,
        }
        let rows: Vec<N> = click
            .client()
            .rows(&format!("SELECT count() AS n FROM coarse.{t}"))
            .unwrap();
        rows[0].n
    };
    assert!(count("top_hosts_1h_f") > 0 && count("top_sites_1d_f") > 0);
    assert_same_tops(r0.as_ref(), r1.as_ref(), first, last, "stored");

    // A late batch (a spool emptied after an outage) into an ended hour
    // of the first day: pending until the writer folds, then folded into
    // its hour and day again; the answers equal SQLite's in between too.
    let late = batch(&mut g, 3);
    for w in &mut writers {
        let group = NodeBatches {
            node_id: &late.0,
            agency: &late.1,
            strict_seq: true,
            batches: std::slice::from_ref(&late.2),
        };
        w.ingest_many(&[group]).unwrap();
    }
    assert_same_tops(r0.as_ref(), r1.as_ref(), first, last, "late, pending");
    for w in &mut writers {
        w.fold_aggregates().unwrap();
    }
    assert_same_tops(r0.as_ref(), r1.as_ref(), first, last, "late, folded");

    // The day folds are what answers a whole day: with that day's minute
    // folds gone (and the views' rows they came from), it still answers.
    let day = 86_400;
    let whole_day = (first.div_ceil(day) * day, first.div_ceil(day) * day + day);
    let before = r1.top_hosts(None, whole_day.0, whole_day.1, 5).unwrap();
    assert!(!before.is_empty());
    for t in ["top_hosts_1m_f", "top_hosts_1m"] {
        click
            .client()
            .exec(&format!(
                "ALTER TABLE coarse.{t} DELETE WHERE minute >= {} AND minute < {}",
                whole_day.0, whole_day.1
            ))
            .unwrap();
    }
    let gone = |t: &str| {
        count(&format!(
            "{t} WHERE minute >= {} AND minute < {}",
            whole_day.0, whole_day.1
        ))
    };
    // A mutation is asynchronous; on a loaded machine it can take a while.
    for _ in 0..600 {
        if gone("top_hosts_1m_f") == 0 && gone("top_hosts_1m") == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(gone("top_hosts_1m_f"), 0, "the mutation did not finish");
    assert_eq!(
        r1.top_hosts(None, whole_day.0, whole_day.1, 5).unwrap(),
        before
    );
}
