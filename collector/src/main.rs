//! `simpul-collector`: the command line (serve, enrollment tokens, node
//! revocation, inventory checks, benchmarks). The work is in the library.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use simpul_collector::auth::cli;
use simpul_collector::config::CollectorConfig;
use simpul_collector::inventory::Inventories;
use simpul_collector::server::Collector;
use simpul_collector::store::{AccessStore, ControlStore, Store};

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
    /// Run the collector until SIGINT or SIGTERM (both stop it cleanly).
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Issue a one-time enrollment token for a node of the inventory.
    Token {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        node: String,
        /// The node's agency; must match the inventory when given.
        #[arg(long)]
        agency: Option<String>,
        /// Hours until the token expires.
        #[arg(long, default_value_t = 72)]
        valid_hours: u64,
    },
    /// Revoke a node's credential: its connections are refused from now on.
    Revoke {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        node: String,
    },
    /// Let a node's agent resume after a sequence gap this collector cannot
    /// explain — its database restored from a backup taken before the gap.
    /// The batches in the gap are lost (they were stored only in the
    /// database that was replaced).
    AcceptGap {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        node: String,
    },
    /// Check collector.toml, the inventory and the policy directory; every
    /// problem with its place.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Operator accounts (the password is read as one line from stdin).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// API tokens for automation, Grafana and the wall's kiosk.
    ApiToken {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Ingest the same batches into SQLite and ClickHouse (records/s, bytes
    /// per flow, query latency); without --url, a private clickhouse-server.
    BenchClickhouse {
        #[arg(long, default_value_t = 1_000_000)]
        records: usize,
        #[arg(long)]
        url: Option<String>,
        #[arg(long, default_value = "simpul_bench")]
        database: String,
        /// Instead: generate this many flows inside ClickHouse and time the
        /// reader on them (the 100 M figure); no SQLite side.
        #[arg(long)]
        generate: Option<u64>,
        /// With --generate: agents (one agency each) and hours of traffic.
        #[arg(long, default_value_t = 500)]
        nodes: u32,
        #[arg(long, default_value_t = 48)]
        hours: u32,
        /// With --generate: keep the database afterwards.
        #[arg(long)]
        keep: bool,
        /// With --generate: time a kept database made with the same
        /// arguments again instead of generating it anew.
        #[arg(long)]
        reuse: bool,
    },
    /// Measure ingest of agent batches into SQLite (records per second, one core).
    BenchIngest {
        #[arg(long, default_value_t = 1_000_000)]
        records: usize,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Measure the investigation reads (flow pages, search summaries,
    /// drill-down) over `records` stored synthetic flows.
    BenchSearch {
        #[arg(long, default_value_t = 1_000_000)]
        records: usize,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Benchmark: heartbeats through decode, node registry and the outage
    /// monitor, as fast as they go (pin to one core to measure one core).
    BenchHeartbeats {
        #[arg(long, default_value_t = 50_000)]
        nodes: usize,
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add an account: admin, operator, agency (with --agency) or viewer.
    Add {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        agency: Option<String>,
        /// Shown in the dashboard and on acknowledgements (default: the name).
        #[arg(long)]
        display_name: Option<String>,
    },
    /// Set a new password (its sessions end).
    Passwd {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        name: String,
    },
    /// Disable an account (its sessions end).
    Disable {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        name: String,
    },
    /// Enable a disabled account again.
    Enable {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        name: String,
    },
    List {
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a new token (shown once) for `Authorization: Bearer`.
    Create {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        agency: Option<String>,
        /// Days until it expires (default: never).
        #[arg(long)]
        expires: Option<u64>,
        /// A wall token: opens a read-only session at `/?kiosk=TOKEN` (role viewer).
        #[arg(long)]
        kiosk: bool,
    },
    List {
        #[arg(long)]
        config: PathBuf,
    },
    Revoke {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        id: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain: exit 0 when intact, else name the first broken row.
    Verify {
        #[arg(long)]
        config: PathBuf,
    },
}

fn main() {
    simpul_collector::logging::init();
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn open_store(cfg: &CollectorConfig) -> Result<Store> {
    Ok(Store::open(
        &cfg.storage.data_dir,
        simpul_collector::server::store_config(cfg),
    )?)
}

/// The registry and operators where the server keeps them (`[storage.control]`),
/// so operator commands act on what the running collectors read.
struct Control {
    control: std::sync::Arc<dyn ControlStore>,
    access: std::sync::Arc<dyn AccessStore>,
}

fn open_control(cfg: &CollectorConfig) -> Result<Control> {
    use simpul_collector::store::postgres::{ControlBackend, PgStore};
    Ok(match cfg.storage.control.backend {
        ControlBackend::Sqlite => {
            let s = std::sync::Arc::new(open_store(cfg)?);
            Control {
                control: s.clone(),
                access: s,
            }
        }
        ControlBackend::Postgres => {
            let pg = std::sync::Arc::new(
                PgStore::open(&cfg.storage.control)
                    .context("cannot open the PostgreSQL control store ([storage.control])")?,
            );
            Control {
                control: pg.clone(),
                access: pg,
            }
        }
    })
}

/// Resolves on SIGINT or SIGTERM (systemd and container runtimes stop
/// services with SIGTERM).
async fn stop_signal() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
    }
    Ok(())
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
                stop_signal().await?;
                c.stop().await;
                Ok(())
            })
        }
        Command::Token {
            config,
            node,
            agency,
            valid_hours,
        } => {
            let cfg = CollectorConfig::load(&config)?;
            let store = open_control(&cfg)?;
            let inv = simpul_collector::inventory::Inventories::load(
                store.control.clone(),
                cfg.inventory.file.clone(),
            )?;
            let entry = inv.node(&node).with_context(|| {
                format!(
                    "node {node:?} is not in the inventory{}: add it to `nodes` there first",
                    cfg.inventory
                        .file
                        .as_ref()
                        .map(|f| format!(" ({})", f.display()))
                        .unwrap_or_default()
                )
            })?;
            if let Some(a) = agency {
                anyhow::ensure!(
                    a == entry.agency,
                    "the inventory puts node {node:?} in agency {:?}, not {a:?}",
                    entry.agency
                );
            }
            let token = store.control.create_enrollment_token(
                &entry.agency,
                &node,
                std::time::Duration::from_secs(valid_hours * 3600),
            )?;
            cli::audit_cli(
                store.access.as_ref(),
                "node.enrollment_token",
                &node,
                serde_json::json!({"agency": entry.agency, "valid_hours": valid_hours}),
            );
            println!("{token}");
            Ok(())
        }
        Command::Revoke { config, node } => {
            let cfg = CollectorConfig::load(&config)?;
            let store = open_control(&cfg)?;
            store.control.revoke_node(&node)?;
            cli::audit_cli(
                store.access.as_ref(),
                "node.revoke",
                &node,
                serde_json::json!({}),
            );
            println!("node {node} revoked (a running collector ends its session within seconds)");
            Ok(())
        }
        Command::AcceptGap { config, node } => {
            let cfg = CollectorConfig::load(&config)?;
            let store = open_store(&cfg)?;
            let boots = store.accept_sequence_gap(&node)?;
            cli::audit_cli(
                &store,
                "node.accept_gap",
                &node,
                serde_json::json!({ "boots": boots }),
            );
            println!("node {node}: the next sequence gap of its {boots} boot(s) is accepted once");
            Ok(())
        }
        Command::User { command } => user(command),
        Command::ApiToken { command } => api_token(command),
        Command::Audit {
            command: AuditCommand::Verify { config },
        } => {
            let cfg = CollectorConfig::load(&config)?;
            cli::audit_verify(open_control(&cfg)?.access.as_ref())
        }
        Command::Check { config } => {
            let cfg = CollectorConfig::load(&config)?;
            // A scratch store: nothing of the real data directory is touched.
            let dir = std::env::temp_dir().join(format!("simpul-check-{}", std::process::id()));
            let store = Store::open(&dir, Default::default())?;
            let inv = simpul_collector::inventory::Inventories::load(
                std::sync::Arc::new(store),
                cfg.inventory.file.clone(),
            );
            let _ = std::fs::remove_dir_all(&dir);
            let inv = inv?;
            let errors = cfg
                .policy
                .dir
                .as_deref()
                .map(|d| simpul_collector::policies::Policies::check_dir(d, &inv))
                .unwrap_or_default();
            for e in &errors {
                eprintln!("{e}");
            }
            anyhow::ensure!(errors.is_empty(), "{} policy file(s) refused", errors.len());
            let current = inv.current();
            println!(
                "{}: valid ({} agencies, {} nodes in the inventory)",
                config.display(),
                current.agencies.len(),
                current.nodes.len()
            );
            Ok(())
        }
        Command::BenchClickhouse {
            records,
            url,
            database,
            generate,
            nodes,
            hours,
            keep,
            reuse,
        } => {
            use simpul_collector::store::clickhouse::{bench::bench_clickhouse, server};
            let private = match url {
                Some(_) => None,
                None => Some(server::TempClickHouse::start().map_err(anyhow::Error::msg)?),
            };
            let url =
                url.unwrap_or_else(|| private.as_ref().map_or(String::new(), |p| p.url.clone()));
            if let Some(flows) = generate {
                use simpul_collector::store::clickhouse::generate::bench_generated;
                let report = bench_generated(&url, &database, flows, nodes, hours, keep, reuse)?;
                println!("{}", serde_json::to_string(&report)?);
                return Ok(());
            }
            let dir = std::env::temp_dir().join(format!("simpul-bench-ch-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let report = bench_clickhouse(&url, &database, &dir, records);
            let _ = std::fs::remove_dir_all(&dir);
            println!("{}", serde_json::to_string(&report?)?);
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
        Command::BenchSearch { records, runs } => {
            let dir =
                std::env::temp_dir().join(format!("simpul-bench-search-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let timed = simpul_collector::store::bench_search(&dir, records, runs);
            let _ = std::fs::remove_dir_all(&dir);
            println!("{}", serde_json::to_string(&timed?)?);
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
    }
}

/// The operators' store and the inventory of a config (operator commands).
fn open_with_inventory(
    config: &std::path::Path,
) -> Result<(std::sync::Arc<dyn AccessStore>, Inventories)> {
    let cfg = CollectorConfig::load(config)?;
    let store = open_control(&cfg)?;
    let inv = Inventories::load(store.control.clone(), cfg.inventory.file.clone())?;
    Ok((store.access, inv))
}

/// The operators' store of a config.
fn access_of(config: &std::path::Path) -> Result<std::sync::Arc<dyn AccessStore>> {
    Ok(open_control(&CollectorConfig::load(config)?)?.access)
}

fn user(command: UserCommand) -> Result<()> {
    match command {
        UserCommand::Add {
            config,
            name,
            role,
            agency,
            display_name,
        } => {
            let (store, inv) = open_with_inventory(&config)?;
            let pw = cli::read_password(std::io::stdin().lock())?;
            cli::user_add(
                store.as_ref(),
                &inv,
                &name,
                display_name.as_deref(),
                &role,
                agency.as_deref(),
                &pw,
            )
        }
        UserCommand::Passwd { config, name } => {
            let store = access_of(&config)?;
            let pw = cli::read_password(std::io::stdin().lock())?;
            cli::user_passwd(store.as_ref(), &name, &pw)
        }
        UserCommand::Disable { config, name } => {
            cli::user_disable(access_of(&config)?.as_ref(), &name, true)
        }
        UserCommand::Enable { config, name } => {
            cli::user_disable(access_of(&config)?.as_ref(), &name, false)
        }
        UserCommand::List { config } => cli::user_list(access_of(&config)?.as_ref()),
    }
}

fn api_token(command: TokenCommand) -> Result<()> {
    match command {
        TokenCommand::Create {
            config,
            name,
            role,
            agency,
            expires,
            kiosk,
        } => {
            let (store, inv) = open_with_inventory(&config)?;
            let token = cli::token_create(
                store.as_ref(),
                &inv,
                &name,
                &role,
                agency.as_deref(),
                expires,
                kiosk,
            )?;
            println!("{token}");
            Ok(())
        }
        TokenCommand::List { config } => cli::token_list(access_of(&config)?.as_ref()),
        TokenCommand::Revoke { config, id } => cli::token_revoke(access_of(&config)?.as_ref(), &id),
    }
}
