//! Bidirectional flows: key, table, timeouts.

pub mod key;
pub mod table;

pub use key::{FlowKey, Side};
pub use table::{
    DirCounters, Direction, Export, Flow, FlowCore, FlowLimits, FlowStats, FlowTable, Observed,
};
