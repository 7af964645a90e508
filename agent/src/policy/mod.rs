//! The enforcement policy on the agent side: loading, validation, the
//! schedule in force, and the domain blocklist.

pub mod domains;
pub mod load;
pub mod matcher;
pub mod validate;
