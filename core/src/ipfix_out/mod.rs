//! IPFIX export (RFC 7011) of the agent's flows, so nfdump, ntopng and
//! Akvorado can read them: pure encoding to byte slices, no sockets.
//!
//! - [`elements`]: the two data templates (IPv4, IPv6), one list of
//!   elements that both the template and every data record are written from,
//!   so they cannot disagree. Biflows per RFC 5103 (reverse elements under
//!   PEN 29305 for the responder's direction); Simpul's own elements (site
//!   name, naming method, agency, unit, scope, flow id) under [`SIMPUL_PEN`].
//! - [`delta`]: interim records carry cumulative counters, IPFIX delta
//!   counters: each flow's records become deltas since its last export, so a
//!   long flow's pieces sum to its total at the collector.
//! - [`encode`]: messages no longer than the path MTU allows, templates first
//!   and re-sent every N seconds or messages, sequence numbers per RFC 7011.
//! - [`reader`]: a strict reader of IPFIX messages (any template) — the
//!   tests' check that what is written parses back.

pub mod delta;
pub mod elements;
pub mod encode;
pub mod reader;

pub use delta::{Deltas, Piece};
pub use elements::{BiflowRecord, NamingMethod, SIMPUL_PEN};
pub use encode::{Encoder, EncoderSettings, SettingsError};

#[cfg(test)]
mod tests;
