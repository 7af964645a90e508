//! Simpul's pure logic: bytes and typed inputs in, records and decisions
//! out. No sockets, files, threads or clocks (time comes from the caller),
//! so everything here is tested fast and fuzzed.
//!
//! - Packets: [`decode`] → [`processor`] (flows in [`flow`], names from
//!   [`dpi`] and [`naming`], agencies from [`agency`], per-second
//!   [`counters`]) → a [`processor::RecordSink`].
//! - Inventory: [`inventory`] (validation, a node's view).
//! - Policy: [`policy`] (validation, schedules, domain sets, the matcher),
//!   [`guard`] and [`attempts`] (events in the packet path),
//!   [`enforce::plan`] (desired kernel state), [`signing`].

pub mod agency;
pub mod attempts;
pub mod cidr;
pub mod counters;
pub mod decode;
pub mod dpi;
pub mod enforce;
pub mod flow;
pub mod fuzzing;
pub mod guard;
pub mod inventory;
pub mod ipfix_out;
pub mod lists;
pub mod naming;
pub mod netflow;
pub mod policy;
pub mod processor;
pub mod shard;
pub mod signing;
pub mod sketch;
