//! Node outages: the liveness state machine (`detector`, pure) and the
//! monitor that feeds it heartbeats, keeps incidents and asks for
//! notifications (`monitor`, I/O).

pub mod api;
pub mod bench;
pub mod conditions;
pub mod detector;
pub mod leader;
pub mod monitor;
pub mod shared;
