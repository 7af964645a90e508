//! `/metrics` for the NOC's Prometheus: one exposition with help text and
//! type on every family, bounded label sets (inventory codes, channel
//! names, fixed words — never an address or a domain) and nothing that
//! scans the flow database on a scrape.
//!
//! Two sources meet here. The families this module writes from state in
//! memory ([`nodes`], [`agencies`], [`incidents`], [`collector`]; the
//! writer feeds [`figures`] as it commits), and the event counters the
//! code records where things happen, rendered by the `metrics` recorder
//! with the help text of [`recorded`]. The two must not share a family
//! name: `collector/tests/metrics.rs` fails on a HELP or TYPE line seen twice.

pub mod agencies;
pub mod collector;
pub mod figures;
pub mod incidents;
pub mod nodes;
pub mod recorded;
pub mod text;

use crate::state::{now_ms, AppState};

/// The whole exposition, as `/metrics` answers it.
pub async fn render(s: &AppState) -> String {
    recorded::describe();
    let open = incidents::counts(s).await;
    let now = now_ms();
    let mut e = text::Exposition::default();
    nodes::write(&mut e, s, now);
    agencies::write(&mut e, s, now / 1000);
    incidents::write(&mut e, open.as_ref());
    collector::write(&mut e, s);
    e.append(&s.metrics.render());
    e.finish()
}

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
