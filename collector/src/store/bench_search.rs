//! Investigation read benchmark: the ingest benchmark's synthetic traffic
//! (40 agencies, skewed hosts and sites) stored, then the reads the search
//! page and the flows table make, each timed over several runs.

use std::path::Path;
use std::time::Instant;

use super::bench::{bench_ingest_with, BATCHES_PER_CALL};
use super::search::{FlowCursor, FlowSort, Net};
use super::{FlowFilter, Step, Store, StoreConfig, StoreError};

/// The generator's clock starts here (Unix s); its records span
/// `records / 200 000` seconds after it.
const START: u64 = 1_764_236_140;

/// One read: its name, what it returned and the median time of `runs`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Timed {
    pub name: &'static str,
    pub rows: u64,
    pub median_ms: f64,
    pub max_ms: f64,
}

/// Ingest `records` flow records into a fresh store in `dir`, then time the
/// investigation reads (`runs` each; the first run warms the page cache).
pub fn bench_search(dir: &Path, records: usize, runs: usize) -> Result<Vec<Timed>, StoreError> {
    bench_ingest_with(dir, records, BATCHES_PER_CALL)?;
    let store = Store::open(dir, StoreConfig::default())?;
    let r = store.reader()?;
    let (from, to) = (START - 3600, START + 3600);
    let base = FlowFilter {
        from,
        to,
        limit: 100,
        ..FlowFilter::default()
    };
    let agency = |f: FlowFilter| FlowFilter {
        agency: Some("agency00".into()),
        ..f
    };
    let host = "10.0.0.1".parse().ok();
    let mut out = Vec::new();
    let mut time = |name: &'static str,
                    f: &mut dyn FnMut() -> Result<u64, StoreError>|
     -> Result<(), StoreError> {
        let mut ms = Vec::new();
        let mut rows = 0;
        for _ in 0..runs.max(1) + 1 {
            let t = Instant::now();
            rows = f()?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        ms.remove(0); // the warm-up
        ms.sort_by(f64::total_cmp);
        out.push(Timed {
            name,
            rows,
            median_ms: ms[ms.len() / 2],
            max_ms: ms[ms.len() - 1],
        });
        Ok(())
    };
    time("flows: newest 100, all agencies", &mut || {
        Ok(r.flow_page(&base)?.rows.len() as u64)
    })?;
    time("flows: newest 100 of one agency", &mut || {
        Ok(r.flow_page(&agency(base.clone()))?.rows.len() as u64)
    })?;
    time("flows: 10 pages of 100 through the cursor", &mut || {
        let mut f = agency(base.clone());
        let mut n = 0;
        for _ in 0..10 {
            let p = r.flow_page(&f)?;
            n += p.rows.len() as u64;
            f.cursor = p.next.as_deref().and_then(FlowCursor::decode);
        }
        Ok(n)
    })?;
    time("flows: one busy host, newest 100", &mut || {
        Ok(r.flow_page(&FlowFilter {
            host,
            ..base.clone()
        })?
        .rows
        .len() as u64)
    })?;
    time("flows: one agency by bytes, top 100", &mut || {
        Ok(r.flow_page(&agency(FlowFilter {
            sort: FlowSort::Bytes,
            ..base.clone()
        }))?
        .rows
        .len() as u64)
    })?;
    time("flows: all agencies by bytes, top 100", &mut || {
        Ok(r.flow_page(&FlowFilter {
            sort: FlowSort::Bytes,
            ..base.clone()
        })?
        .rows
        .len() as u64)
    })?;
    time("search: one busy host (summary)", &mut || {
        Ok(r.investigate(
            &FlowFilter {
                host,
                ..base.clone()
            },
            20,
        )?
        .flows)
    })?;
    time("search: an agency's /16 (summary)", &mut || {
        let net = Net::parse("10.0.0.0/16").ok();
        Ok(r.investigate(
            &FlowFilter {
                net,
                ..base.clone()
            },
            20,
        )?
        .flows)
    })?;
    time("search: a site and its subdomains (summary)", &mut || {
        let site = Some("kupangkota.go.id".to_string());
        Ok(r.investigate(
            &FlowFilter {
                site,
                ..base.clone()
            },
            20,
        )?
        .flows)
    })?;
    time("drill-down: one unit's hosts", &mut || {
        Ok(r.unit_hosts("agency00", "unit0", from, to, 100)?.len() as u64)
    })?;
    time("drill-down: an agency's units", &mut || {
        Ok(r.unit_usage("agency00", from, to, Step::Minute)?.len() as u64)
    })?;
    Ok(out)
}
