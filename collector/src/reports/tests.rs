//! The report's figures from known inputs, without a store.

use super::usage::{p95, rate_stats};
use super::*;
use crate::store::Availability;

const WIB: i32 = 7 * 3600;

#[test]
fn months_parse_strictly_and_cut_in_local_time() {
    let m = Month::parse("2026-11").unwrap();
    assert_eq!((m.year, m.month), (2026, 11));
    assert_eq!(m.to_string(), "2026-11");
    assert_eq!(m.days(), 30);
    assert_eq!(Month::parse("2024-02").unwrap().days(), 29);
    for bad in [
        "2026-13",
        "2026-00",
        "26-11",
        "2026/11",
        "2026-1",
        "",
        "1999-12",
        "2026-11-01",
        "２０２６-11",
    ] {
        let e = Month::parse(bad).unwrap_err().to_string();
        assert!(e.starts_with("month "), "{bad}: {e}");
    }
    // 1 Nov 2026 00:00 WIB is 31 Oct 17:00 UTC.
    assert_eq!(m.start(WIB), 1_793_466_000);
    assert_eq!(m.end(WIB) - m.start(WIB), 30 * 86_400);
    assert_eq!(Month::containing(m.start(WIB), WIB), m);
    assert_eq!(Month::containing(m.start(WIB) - 1, WIB), m.previous());
    assert_eq!(
        Month::parse("2026-01").unwrap().previous().to_string(),
        "2025-12"
    );
    assert_eq!(
        Month::parse("2026-12").unwrap().next().to_string(),
        "2027-01"
    );
    // Not in the future, at most 24 months back.
    let now = m.start(WIB) + 5 * 86_400;
    assert!(m.check(now, WIB).is_ok());
    assert!(m.next().check(now, WIB).is_err());
    assert!(Month::parse("2024-11").unwrap().check(now, WIB).is_ok());
    assert!(Month::parse("2024-10").unwrap().check(now, WIB).is_err());
}

#[test]
fn p95_is_nearest_rank_and_idle_minutes_count() {
    let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
    assert_eq!(p95(&mut v), 95.0);
    let mut v = vec![5.0; 19];
    v.push(100.0);
    assert_eq!(p95(&mut v), 5.0);
    assert_eq!(p95(&mut []), 0.0);
    // One busy minute of an hour: peak is it, p95 is 0 (59 idle minutes).
    let from = 1_000_000 * 3600;
    let minutes = [Sample {
        ts: from + 600,
        internet_in: 7_500_000,
        internet_out: 750_000,
        ..Sample::default()
    }];
    let r = rate_stats(&minutes, from, &[], from, from + 3600);
    assert_eq!(r.peak_in_bps, 1_000_000.0);
    assert_eq!(r.peak_out_bps, 100_000.0);
    assert_eq!(r.p95_in_bps, 0.0);
    assert_eq!(r.rate_step_secs, 60);
    // Minutes pruned: the hour's average stands for its sixty minutes.
    let hourly = [Sample {
        ts: from,
        internet_in: 450_000_000,
        ..Sample::default()
    }];
    let r = rate_stats(&[], from + 3600, &hourly, from, from + 3600);
    assert_eq!(r.peak_in_bps, 1_000_000.0);
    assert_eq!(r.p95_in_bps, 1_000_000.0);
    assert_eq!(r.rate_step_secs, 3600);
}

fn inputs() -> Inputs {
    let month = Month::parse("2026-11").unwrap();
    let from = month.start(WIB);
    // 10 Mbit/s allocation from the 3rd day on (hour 48).
    let mut alloc = vec![(0, 0); 30 * 24];
    for a in alloc.iter_mut().skip(48) {
        *a = (10_000_000, 5_000_000);
    }
    // Hour 50 at 9.6 Mbit/s (≥ 95 %), hour 51 at 9.4 (below).
    let hour = |h: u64, mbit: f64| Sample {
        ts: from + h * 3600,
        bytes_in: (mbit * 1e6 / 8.0 * 3600.0) as u64 + 1000,
        bytes_out: 2000,
        internet_in: (mbit * 1e6 / 8.0 * 3600.0) as u64,
        internet_out: 0,
    };
    let hourly = vec![hour(50, 9.6), hour(51, 9.4), hour(24 * 29 + 23, 1.0)];
    let minutes: Vec<Sample> = hourly
        .iter()
        .flat_map(|h| {
            (0..60).map(move |k| Sample {
                ts: h.ts + k * 60,
                internet_in: h.internet_in / 60,
                ..Sample::default()
            })
        })
        .collect();
    let av = |node: &str, down_ms: u64, unmonitored_ms: u64, pct: Option<f64>| Availability {
        node_id: node.into(),
        agency: "dinkes".into(),
        from_ms: from * 1000,
        to_ms: month.end(WIB) * 1000,
        down_ms,
        unreachable_ms: 0,
        maintenance_ms: 0,
        unmonitored_ms,
        availability_pct: pct,
        incidents: 1,
        never_seen: false,
    };
    let inc = |id: i64, severity: &str, kind: &str, maintenance: bool, ack: Option<u64>| Incident {
        id,
        node_id: "dinkes-01".into(),
        agency: "dinkes".into(),
        kind: kind.into(),
        severity: severity.into(),
        root_cause: None,
        children: vec![],
        started_ms: from * 1000 + 1000,
        detected_ms: from * 1000 + 11_000,
        notified_ms: None,
        acked_ms: ack,
        acked_by: ack.map(|_| "budi".into()),
        escalation: 0,
        resolved_ms: Some(from * 1000 + 601_000),
        maintenance,
    };
    Inputs {
        month: Some(month),
        offset_secs: WIB,
        agency: Some("dinkes".into()),
        name: "Dinas Kesehatan".into(),
        now_s: month.end(WIB) + 3600,
        hourly,
        minutes,
        minutes_from: from,
        alloc_hourly: alloc,
        availability: vec![
            av("dinkes-01", 3_600_000, 0, Some(99.86)),
            av("dinkes-02", 0, 30 * 86_400_000, None),
        ],
        incidents: vec![
            inc(1, "major", "down", false, Some(from * 1000 + 71_000)),
            inc(2, "critical", "down", false, None),
            inc(3, "major", "down", true, None),
            inc(4, "major", "unreachable", false, None),
        ],
        ..Inputs::default()
    }
}

#[test]
fn assemble_counts_usage_hours_availability_and_incidents() {
    let r = assemble(&inputs());
    assert_eq!(r.month, "2026-11");
    assert!(r.complete);
    assert_eq!(r.utc_offset, "+07:00");
    assert_eq!(r.from, "2026-10-31T17:00:00Z");
    let u = &r.usage;
    assert_eq!(u.hours_above_95_in, 1, "{u:?}");
    assert_eq!(u.hours_above_95_out, 0);
    assert_eq!(u.hours_with_allocation, 30 * 24 - 48);
    assert_eq!(u.alloc_down_bps, 10_000_000);
    assert_eq!(u.bytes_out, 6000);
    assert!((u.rates.peak_in_bps - 9.6e6).abs() < 1.0, "{u:?}");
    // 180 busy minutes of 43,200: the 95th percentile is idle.
    assert_eq!(u.rates.p95_in_bps, 0.0);
    assert_eq!(r.daily.len(), 30);
    assert_eq!(r.daily[0].alloc_down_bps, 0);
    assert_eq!(r.daily[2].alloc_down_bps, 10_000_000);
    assert!((r.daily[2].peak_in_bps - 9.6e6).abs() < 1.0);
    assert_eq!(r.daily[2].bytes_out, 4000);
    // Availability over measured time only: dinkes-02 was not enrolled.
    let all = r.availability.overall_pct.unwrap();
    assert!((all - 100.0 * (1.0 - 1.0 / 720.0)).abs() < 1e-9, "{all}");
    // Severities in the inventory's order; maintenance and unreachable apart.
    let sev: Vec<&str> = r
        .incidents
        .by_severity
        .iter()
        .map(|s| s.severity.as_str())
        .collect();
    assert_eq!(sev, ["critical", "major"]);
    let major = &r.incidents.by_severity[1].stats;
    assert_eq!(
        (major.incidents, major.acknowledged, major.resolved),
        (1, 1, 1)
    );
    assert_eq!(major.mean_ack_secs, Some(60.0));
    assert_eq!(major.max_resolve_secs, Some(600.0));
    assert_eq!(
        (r.incidents.in_maintenance, r.incidents.unreachable),
        (1, 1)
    );
    assert_eq!(r.incidents.total, 4);
}

#[test]
fn a_running_month_stops_at_now() {
    let mut inp = inputs();
    let from = inp.month.unwrap().start(WIB);
    inp.now_s = from + 2 * 86_400 + 3600;
    let r = assemble(&inp);
    assert!(!r.complete);
    assert_eq!(r.daily.len(), 3);
    assert_eq!(r.usage.hours_with_allocation, 1);
}

#[test]
fn every_text_key_has_both_languages() {
    let src =
        include_str!("pdf.rs").to_string() + include_str!("schedule.rs") + include_str!("mod.rs");
    let mut n = 0;
    for part in src
        .split("t(l, \"")
        .skip(1)
        .chain(src.split("d.t(\"").skip(1))
        .chain(src.split("text::t(lang, \"").skip(1))
    {
        let key = part.split('"').next().unwrap();
        for lang in [Lang::Id, Lang::En] {
            assert_ne!(text::t(lang, key), "?", "{key}");
        }
        n += 1;
    }
    assert!(n > 40, "{n}");
}

#[test]
fn pdf_and_csv_carry_the_figures() {
    let r = assemble(&inputs());
    let pdf = pdf::write(&r, Lang::Id);
    assert!(pdf.starts_with(b"%PDF-"));
    let csv = csv::write(&r);
    assert!(csv.contains("hours_above_95_in,1\r\n"), "{csv}");
    assert!(csv.contains("critical,1,0,1,"), "{csv}");
    assert_eq!(
        file_name(&r, Lang::Id, "pdf"),
        "simpul-laporan-2026-11-dinkes.pdf"
    );
    assert_eq!(
        file_name(&r, Lang::En, "csv"),
        "simpul-report-2026-11-dinkes.csv"
    );
}
