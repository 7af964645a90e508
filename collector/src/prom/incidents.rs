//! Open incidents by severity and state, read from the incident store at
//! most every few seconds (a scrape every second costs one small query per
//! [`REFRESH`], never a scan of the flow database).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::text::{Exposition, Family, Kind};
use crate::state::AppState;
use crate::store::IncidentFilter;

/// How long a count is reused.
pub const REFRESH: Duration = Duration::from_secs(5);
/// Open incidents read at most (a province has a few hundred nodes).
const MAX_OPEN: usize = 100_000;

const SEVERITIES: [&str; 4] = ["critical", "major", "minor", "info"];
const STATES: [&str; 3] = ["unacknowledged", "acknowledged", "maintenance"];

const OPEN: Family = Family {
    name: "simpul_incidents_open",
    kind: Kind::Gauge,
    help: "Open incidents (outages and conditions) by severity and state: unacknowledged, acknowledged, or maintenance (it began inside a maintenance window).",
};
const OPEN_BY_KIND: Family = Family {
    name: "simpul_incidents_open_by_kind",
    kind: Kind::Gauge,
    help: "Open incidents by kind (down, group_down, unreachable, flapping, agent_health, clock_skew, allocation_high, ...).",
};

type Counts = BTreeMap<(String, &'static str), u64>;
type Kinds = BTreeMap<String, u64>;

struct Cached {
    db: PathBuf,
    at: Instant,
    counts: Counts,
    kinds: Kinds,
}

static CACHE: Mutex<Option<Cached>> = Mutex::new(None);

/// Read (or reuse) the counts; `None` when the store cannot be read (the
/// families are then written without samples, and the error logged).
pub async fn counts(s: &AppState) -> Option<(Counts, Kinds)> {
    let db = s.control.database_path().to_path_buf();
    {
        let g = CACHE.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = g.as_ref() {
            if c.db == db && c.at.elapsed() < REFRESH {
                return Some((c.counts.clone(), c.kinds.clone()));
            }
        }
    }
    let control = s.control.clone();
    let read = tokio::task::spawn_blocking(move || {
        control.incidents()?.list(&IncidentFilter {
            open_only: true,
            limit: MAX_OPEN,
            ..Default::default()
        })
    })
    .await;
    let list = match read {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "metrics: cannot read open incidents");
            return None;
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot read open incidents");
            return None;
        }
    };
    let mut counts = Counts::new();
    let mut kinds = Kinds::new();
    for i in &list {
        let sev = SEVERITIES
            .iter()
            .find(|s| **s == i.severity)
            .map_or("other", |s| *s)
            .to_string();
        let state = if i.maintenance {
            "maintenance"
        } else if i.acked_ms.is_some() {
            "acknowledged"
        } else {
            "unacknowledged"
        };
        *counts.entry((sev, state)).or_default() += 1;
        // Kinds are the detector's words; anything else is not a label.
        let kind =
            if i.kind.len() <= 32 && i.kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                i.kind.clone()
            } else {
                "other".into()
            };
        *kinds.entry(kind).or_default() += 1;
    }
    *CACHE.lock().unwrap_or_else(|p| p.into_inner()) = Some(Cached {
        db,
        at: Instant::now(),
        counts: counts.clone(),
        kinds: kinds.clone(),
    });
    Some((counts, kinds))
}

pub fn write(e: &mut Exposition, figures: Option<&(Counts, Kinds)>) {
    e.family(&OPEN);
    e.family(&OPEN_BY_KIND);
    let Some((counts, kinds)) = figures else {
        return;
    };
    for sev in SEVERITIES {
        for st in STATES {
            let n = counts.get(&(sev.to_string(), st)).copied().unwrap_or(0);
            e.family(&OPEN).int(&[("severity", sev), ("state", st)], n);
        }
    }
    for ((sev, st), n) in counts.iter().filter(|((s, _), _)| s == "other") {
        e.family(&OPEN)
            .int(&[("severity", sev.as_str()), ("state", st)], *n);
    }
    for (kind, n) in kinds {
        e.family(&OPEN_BY_KIND).int(&[("kind", kind.as_str())], *n);
    }
}
