//! Simpul agent: the I/O around `simpul_core` on an agency's edge router.
//!
//! [`agent::Agent`] is the component (start/stop) that `main.rs` runs.
//! Inside: [`capture`] (AF_PACKET, pcap files) and [`replay`] feed packets
//! to `simpul_core::processor`; records go to [`output`] (JSON lines) and
//! [`link`] (spool and WebSocket to the collector), and [`export`] (IPFIX)
//! when configured; [`control`] follows the inventory and policy (collector
//! or standalone files) and drives
//! [`enforce`] (nft/tc) and the [`dnsproxy`] responder.

pub mod agent;
pub mod capture;
pub mod config;
pub mod control;
pub mod dnsproxy;
pub mod enforce;
pub mod export;
pub mod fuzzing;
pub mod link;
pub mod lists;
pub mod live_shards;
pub mod logging;
pub mod output;
pub mod replay;
pub mod state_files;

use std::path::Path;

use simpul_core::inventory::NodeView;
use simpul_proto::inventory::Inventory;

/// The inventory this node would work with now, and its view of it.
pub fn current_inventory(
    cfg: &config::AgentConfig,
    override_file: Option<&Path>,
) -> anyhow::Result<Option<(Inventory, NodeView)>> {
    let Some(inv) = read_inventory(cfg, override_file)? else {
        return Ok(None);
    };
    let view = NodeView::from_inventory(&inv, &cfg.agent.id)?;
    Ok(Some((inv, view)))
}

/// `override_file`, or `[standalone] inventory_file`, or what the collector
/// sent last (kept in the state directory). None when there is none.
pub fn read_inventory(
    cfg: &config::AgentConfig,
    override_file: Option<&Path>,
) -> anyhow::Result<Option<Inventory>> {
    use anyhow::Context;
    let file = override_file.map(Path::to_path_buf).or_else(|| {
        cfg.standalone
            .as_ref()
            .and_then(|s| s.inventory_file.clone())
    });
    let inv = match file {
        Some(f) => {
            let text = std::fs::read_to_string(&f)
                .with_context(|| format!("cannot read {}", f.display()))?;
            Inventory::parse(&text).with_context(|| format!("{}", f.display()))?
        }
        None => {
            let kept = cfg.agent.state_dir.join(control::INVENTORY_FILE);
            match state_files::read_json::<Inventory>(&kept)? {
                Some(i) => i,
                None => return Ok(None),
            }
        }
    };
    simpul_core::inventory::validate(&inv).map_err(|p| {
        anyhow::anyhow!("the inventory has {}", simpul_proto::problem::describe(&p))
    })?;
    Ok(Some(inv))
}
