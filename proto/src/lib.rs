//! Types shared by the Simpul agent and collector.
//!
//! One definition drives the agent's JSONL output, the wire protocol, the
//! collector's storage and the API: a field added here shows up everywhere.

pub mod blocked;
pub mod counters;
pub mod flow;
pub mod fuzzing;
pub mod inventory;
pub mod policy;
pub mod problem;
pub mod signed;
pub mod time_format;
pub mod time_window;
pub mod wire;

pub use blocked::{BlockMethod, BlockedAttempt};
pub use counters::CounterSample;
pub use flow::{proto_name, EndReason, FlowRecord, RecordKind, SiteSource, TrafficScope, UNKNOWN};
pub use inventory::{valid_code, Inventory};
pub use problem::Problem;
