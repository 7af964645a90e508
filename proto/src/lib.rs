//! Wire types shared by the Simpul agent and collector.
//!
//! One definition drives the agent's JSONL output, the collector's storage and
//! the API: a field added here shows up everywhere.

pub mod flow;

pub use flow::{proto_name, EndReason, FlowRecord, RecordKind, SiteSource, TrafficScope, UNKNOWN};
pub mod counters;
pub use counters::CounterSample;
