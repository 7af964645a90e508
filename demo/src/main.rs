//! `simpul-demo`: the collector with its dashboard and demo agencies whose
//! real agents replay recorded traffic (see `demo.rs`).

mod accounts;
mod demo;
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
    /// Database, TLS material, the demo's inventory, policies and agents.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
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
    let result = tokio::runtime::Runtime::new()
        .context("tokio runtime")
        .and_then(|rt| {
            rt.block_on(demo::run(demo::DemoOptions {
                listen: cli.listen,
                data_dir: cli.data_dir,
            }))
        });
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
