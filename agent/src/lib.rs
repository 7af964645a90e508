//! Simpul agent: packets in, exact flows with names and agencies out.
//!
//! Pure logic (no I/O): [`decode`], [`dpi`], [`flow`], [`naming`], [`agency`],
//! [`counters`], [`processor`]. I/O: [`capture`] (pcap files, AF_PACKET) and
//! [`output`], [`link`] (the collector link: spool, WebSocket client).

pub mod agency;
pub mod attempts;
pub mod capture;
pub mod config;
pub mod counters;
pub mod decode;
pub mod dnsproxy;
pub mod dpi;
pub mod enforce;
pub mod flow;
pub mod fuzzing;
pub mod guard;
pub mod link;
pub mod logging;
pub mod naming;
pub mod output;
pub mod policy;
pub mod processor;
pub mod replay;
