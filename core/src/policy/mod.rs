//! The enforcement policy: validation, what is in force when, the domain
//! set, and the matcher that mirrors the kernel's rules for events.

pub mod document;
pub mod domains;
pub mod matcher;
pub mod schedule;
pub mod validate;

pub use schedule::{active_schedule, parse_policy, suspension_active, PolicyError};
pub use validate::{validate, PolicyScope};
