//! Deep packet inspection on byte slices: one file per protocol, no I/O.
//!
//! Every parser takes payload bytes and returns what it learned; none panics on
//! hostile input (see `fuzz/`).

pub mod dns;
pub mod http;
pub mod quic;
pub mod tls;
