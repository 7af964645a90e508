//! `GET /api/v1/collectors`: which collector answers, and who holds each
//! lease of the control store, so that with several collectors on one
//! PostgreSQL the NOC sees who detects outages, and that somebody does.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use crate::api::{store_error, ApiError, NoParams, Q};
use crate::outage::leader::{host_pid, split_holder, OUTAGE_LEASE};
use crate::reports::schedule::mail_claim_month;
use crate::state::AppState;
use crate::store::Lease;

/// The outage detector's lease and a mailing claim a month (kept for 400
/// days) make a few dozen rows; this bounds the answer if something else
/// fills the table.
const MAX_LEASES: usize = 500;

#[derive(Debug, Serialize)]
pub struct Collectors {
    /// The collector answering this request.
    pub this_collector: String,
    /// "sqlite" (one collector, which leads without a lease) or "postgres".
    pub control: &'static str,
    /// Who detects outages and sends their alerts now; None: nobody does.
    pub outage_leader: Option<OutageLeader>,
    /// Outage detection first, then the mailing claims newest month first.
    pub leases: Vec<LeaseView>,
}

#[derive(Debug, Serialize)]
pub struct OutageLeader {
    pub collector_id: String,
    pub instance: Option<String>,
    pub this_collector: bool,
    /// None: a single collector on SQLite, which leads for as long as it runs.
    pub until_ms: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct LeaseView {
    pub name: String,
    /// "outage-detection", "report-mailing" or "other".
    pub purpose: &'static str,
    /// The month a mailing claim is for (`YYYY-MM`).
    pub month: Option<String>,
    pub holder: String,
    pub collector_id: String,
    pub instance: Option<String>,
    pub this_collector: bool,
    /// False: expired, nobody holds it now.
    pub live: bool,
    pub expires_ms: u64,
}

pub async fn collectors(
    State(s): State<AppState>,
    Q(_): Q<NoParams>,
) -> Result<Json<Collectors>, ApiError> {
    let control = s.control.clone();
    let rows = tokio::task::spawn_blocking(move || control.leases(MAX_LEASES))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(store_error)?;
    let me = match s.outage.collector_id() {
        Some(id) => id.to_owned(),
        None if !s.config.storage.control.collector_id.is_empty() => {
            s.config.storage.control.collector_id.clone()
        }
        None => host_pid(),
    };
    Ok(Json(describe(
        me,
        s.control.backend(),
        s.outage.collector_id().is_none() && s.outage.is_leading(),
        rows,
    )))
}

/// `alone_leading`: a single collector on SQLite leads without a lease.
pub fn describe(
    me: String,
    control: &'static str,
    alone_leading: bool,
    rows: Vec<Lease>,
) -> Collectors {
    let mut leases: Vec<LeaseView> = rows
        .into_iter()
        .map(|l| {
            let (id, instance) = split_holder(&l.holder);
            let (purpose, month) = match mail_claim_month(&l.name) {
                _ if l.name == OUTAGE_LEASE => ("outage-detection", None),
                Some(m) => ("report-mailing", Some(m.to_owned())),
                None => ("other", None),
            };
            LeaseView {
                purpose,
                month,
                collector_id: id.to_owned(),
                instance: instance.map(str::to_owned),
                this_collector: id == me,
                live: l.live,
                expires_ms: l.expires_ms,
                holder: l.holder.clone(),
                name: l.name,
            }
        })
        .collect();
    let rank = |l: &LeaseView| match l.purpose {
        "outage-detection" => 0,
        "report-mailing" => 1,
        _ => 2,
    };
    leases.sort_by(|a, b| {
        rank(a)
            .cmp(&rank(b))
            .then_with(|| b.month.cmp(&a.month))
            .then_with(|| a.name.cmp(&b.name))
    });
    let outage_leader = if alone_leading {
        Some(OutageLeader {
            collector_id: me.clone(),
            instance: None,
            this_collector: true,
            until_ms: None,
        })
    } else {
        leases
            .iter()
            .find(|l| l.name == OUTAGE_LEASE && l.live)
            .map(|l| OutageLeader {
                collector_id: l.collector_id.clone(),
                instance: l.instance.clone(),
                this_collector: l.this_collector,
                until_ms: Some(l.expires_ms),
            })
    };
    Collectors {
        this_collector: me,
        control,
        outage_leader,
        leases,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(name: &str, holder: &str, live: bool) -> Lease {
        Lease {
            name: name.into(),
            holder: holder.into(),
            expires_ms: 1_000,
            live,
        }
    }

    #[test]
    fn an_expired_outage_lease_means_nobody_leads() {
        let rows = vec![
            lease("reports-mailed-2026-10", "noc-a", true),
            lease(OUTAGE_LEASE, "noc-b#00000000000000ff", false),
            lease("reports-mailed-2026-11", "noc-b", true),
        ];
        let c = describe("noc-a".into(), "postgres", false, rows.clone());
        assert!(c.outage_leader.is_none());
        let names: Vec<_> = c.leases.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(
            names,
            [
                OUTAGE_LEASE,
                "reports-mailed-2026-11",
                "reports-mailed-2026-10"
            ]
        );
        assert_eq!(c.leases[0].collector_id, "noc-b");
        assert_eq!(c.leases[0].instance.as_deref(), Some("00000000000000ff"));
        assert!(!c.leases[0].live);
        assert!(c.leases[2].this_collector && !c.leases[1].this_collector);

        let mut rows = rows;
        rows[1].live = true;
        let c = describe("noc-b".into(), "postgres", false, rows);
        let l = c.outage_leader.expect("noc-b leads");
        assert_eq!((l.collector_id.as_str(), l.this_collector), ("noc-b", true));
        assert_eq!(l.until_ms, Some(1_000));
    }

    #[test]
    fn one_collector_on_sqlite_leads_without_a_lease() {
        let c = describe("host:1".into(), "sqlite", true, vec![]);
        let l = c.outage_leader.expect("it leads");
        assert_eq!((l.collector_id.as_str(), l.until_ms), ("host:1", None));
    }
}
