//! `simpul-demo`: the collector with its dashboard and demo agencies whose
//! real agents replay recorded traffic (see `demo.rs`).

mod accounts;
mod demo;
mod exporter;
mod province;
mod rewrite;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "simpul-demo",
    version,
    about = "Simpul demo: the collector, its dashboard and demo agents replaying recorded traffic"
)]
struct Cli {
    /// Dashboard address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Database, TLS material, the demo's inventory, policies and agents
    /// [default: data, or data-province for a larger demo].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A province-sized demo: 60 agencies and 120 real agents
    /// (= --agencies 60 --agents 120).
    #[arg(long, conflicts_with_all = ["agencies", "agents"])]
    province: bool,
    /// Agencies (4..=60; the first four are the usual demo's).
    #[arg(long)]
    agencies: Option<usize>,
    /// Real agents replaying traffic, spread over the added agencies
    /// [default: 6, plus 2 per added agency].
    #[arg(long)]
    agents: Option<usize>,
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn stop_signal() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

fn main() {
    simpul_collector::logging::init();
    let cli = Cli::parse();
    let (agencies, agents) = if cli.province {
        (60, 120)
    } else {
        let a = cli.agencies.unwrap_or(4);
        let usual = demo::USUAL_AGENTS + 2 * a.saturating_sub(4);
        (a, cli.agents.unwrap_or(usual))
    };
    let larger = agencies != 4 || agents != demo::USUAL_AGENTS;
    let data_dir = cli
        .data_dir
        .unwrap_or_else(|| PathBuf::from(if larger { "data-province" } else { "data" }));
    let result = tokio::runtime::Runtime::new()
        .context("tokio runtime")
        .and_then(|rt| {
            rt.block_on(demo::run(demo::DemoOptions {
                listen: cli.listen,
                data_dir,
                agencies,
                agents,
            }))
        });
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
