//! Flows exported in other tools' formats besides the collector link:
//! `[export.ipfix]` (RFC 7011 over UDP, see [`ipfix`]).

pub mod ipfix;

use serde::Deserialize;
use simpul_proto::Problem;

pub use ipfix::{IpfixConfig, IpfixSink, IpfixTotals};

/// `[export]` in agent.toml; every exporter is off unless its section is there.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportConfig {
    pub ipfix: Option<IpfixConfig>,
}

impl ExportConfig {
    pub fn check(&self, out: &mut Vec<Problem>) {
        if let Some(i) = &self.ipfix {
            i.check("export.ipfix", out);
        }
    }
}
