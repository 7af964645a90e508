//! `simpul-collector`: serve, demo, enrollment tokens and node revocation.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use simpul_collector::config::CollectorConfig;
use simpul_collector::demo::{self, DemoOptions};
use simpul_collector::server::Collector;
use simpul_collector::store::{Store, StoreConfig};

#[derive(Parser)]
#[command(
    name = "simpul-collector",
    version,
    about = "Simpul collector: agent ingest, storage, API and the live NOC dashboard"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the collector.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Run the collector with demo agencies whose agents replay recorded traffic.
    Demo {
        /// Dashboard address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
    },
    /// Issue a one-time enrollment token for a node of an agency.
    Token {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        agency: String,
        #[arg(long)]
        node: String,
        /// Hours until the token expires.
        #[arg(long, default_value_t = 72)]
        valid_hours: u64,
    },
    /// Measure ingest of agent batches into SQLite (records per second, one core).
    BenchIngest {
        #[arg(long, default_value_t = 1_000_000)]
        records: usize,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Benchmark: heartbeats through decode, node registry and the outage
    /// monitor, as fast as they go (pin to one core to measure one core).
    BenchHeartbeats {
        #[arg(long, default_value_t = 50_000)]
        nodes: usize,
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
    },
    /// Revoke a node's credential: its connections are refused from now on.
    Revoke {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        node: String,
    },
}

fn main() {
    simpul_agent::logging::init();
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn open_store(cfg: &CollectorConfig) -> Result<Store> {
    std::fs::create_dir_all(&cfg.storage.data_dir)?;
    let store = Store::open(&cfg.storage.data_dir, StoreConfig::default())?;
    store
        .writer()?
        .sync_agencies(&simpul_collector::server::agency_defs(&cfg.agencies))?;
    Ok(store)
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve { config } => {
            let cfg = CollectorConfig::load(&config)?;
            let rt = tokio::runtime::Runtime::new().context("tokio runtime")?;
            rt.block_on(async move {
                let c = Collector::start(cfg).await?;
                if let Some(a) = c.http_addr {
                    println!("Dashboard: http://{a}/");
                }
                tokio::signal::ctrl_c().await.ok();
                c.stop().await;
                Ok(())
            })
        }
        Command::Demo { listen, data_dir } => {
            let rt = tokio::runtime::Runtime::new().context("tokio runtime")?;
            rt.block_on(demo::run(DemoOptions { listen, data_dir }))
        }
        Command::Token {
            config,
            agency,
            node,
            valid_hours,
        } => {
            let cfg = CollectorConfig::load(&config)?;
            if !cfg.agencies.iter().any(|a| a.code == agency) {
                anyhow::bail!("agency {agency:?} is not in {}", config.display());
            }
            let store = open_store(&cfg)?;
            let token = store.writer()?.create_enrollment_token(
                &agency,
                &node,
                std::time::Duration::from_secs(valid_hours * 3600),
            )?;
            println!("{token}");
            Ok(())
        }
        Command::BenchIngest { records, data_dir } => {
            let tmp;
            let dir = match data_dir {
                Some(d) => d,
                None => {
                    tmp = std::env::temp_dir().join(format!("simpul-bench-{}", std::process::id()));
                    tmp
                }
            };
            std::fs::create_dir_all(&dir)?;
            let rate = simpul_collector::store::bench_ingest(&dir, records)?;
            println!("{{\"records\": {records}, \"records_per_sec\": {rate:.0}}}");
            let _ = std::fs::remove_dir_all(&dir);
            Ok(())
        }
        Command::BenchHeartbeats { nodes, secs } => {
            let dir = std::env::temp_dir().join(format!("simpul-hb-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let report = simpul_collector::outage::bench::bench_heartbeats(&dir, nodes, secs);
            let _ = std::fs::remove_dir_all(&dir);
            println!("{}", serde_json::to_string(&report?)?);
            Ok(())
        }
        Command::Revoke { config, node } => {
            let cfg = CollectorConfig::load(&config)?;
            let store = open_store(&cfg)?;
            store.writer()?.revoke_node(&node)?;
            println!("node {node} revoked");
            Ok(())
        }
    }
}
