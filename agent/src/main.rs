//! `simpul-agent`: the command line. The work is in the library
//! ([`simpul_agent::agent::Agent`] and friends); see `--help`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use simpul_agent::agent::{Agent, AgentOptions, Capture, Outputs, Report};
use simpul_agent::config::AgentConfig;
use simpul_agent::enforce::{Enforcer, Outcome};
use simpul_core::decode::DecodeError;
use simpul_core::policy::{parse_policy, PolicyScope};
use simpul_proto::policy::Policy;

#[derive(Parser)]
#[command(
    name = "simpul-agent",
    version,
    about = "Simpul edge agent: flows, site names and agency usage from packets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read pcap/pcapng files (as fast as possible, or at recorded speed
    /// with --realtime) and write their flows to files and/or the collector.
    Replay {
        /// pcap or pcapng file (repeat for several, read in order).
        #[arg(long, required = true)]
        pcap: Vec<PathBuf>,
        /// agent.toml ([standalone] inventory, timeouts, [collector]);
        /// defaults apply without it. With [collector], records stream to
        /// the collector and attribution follows its inventory.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Final flow records, one JSON object per line (optional when the
        /// config has a [collector] section).
        #[arg(long)]
        flows_out: Option<PathBuf>,
        /// Also write interim (active-timeout) records to --flows-out.
        #[arg(long)]
        interim: bool,
        /// Per-second counters per agency/unit, one JSON object per line.
        #[arg(long)]
        counters_out: Option<PathBuf>,
        /// Print the summary as JSON instead of text.
        #[arg(long)]
        json_summary: bool,
        /// Pace packets at their recorded speed with timestamps shifted to
        /// now, so the replay looks like live capture.
        #[arg(long)]
        realtime: bool,
        /// With --realtime: start over at the end, until interrupted.
        #[arg(long = "loop", requires = "realtime")]
        looping: bool,
        /// Check the traffic against this policy's blocking rules (nothing is
        /// enforced in a replay): blocked attempts go to --blocked-out and
        /// to the collector.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Blocked attempts, one JSON object per line (appended).
        #[arg(long, requires = "policy")]
        blocked_out: Option<PathBuf>,
        /// Export the flows as IPFIX to this HOST:PORT (as [export.ipfix]
        /// collector, the section's other settings kept or defaulted).
        #[arg(long, value_name = "HOST:PORT")]
        ipfix: Option<String>,
    },
    /// Capture live on the configured interfaces, enforce with [enforce].
    /// Stops cleanly on SIGINT and SIGTERM.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Bandwidth/access policy: check, show the kernel plan, apply once.
    Policy {
        #[command(subcommand)]
        action: PolicyAction,
    },
    /// Debugging tool: run only the DNS responder — blocked names get
    /// NXDOMAIN (or the block-page address), the rest go to --upstream.
    #[command(hide = true)]
    DnsProxy(simpul_agent::dnsproxy::DnsProxyArgs),
}

#[derive(Subcommand)]
enum PolicyAction {
    /// Validate a policy file (TOML or JSON); every problem with its place.
    Check {
        file: PathBuf,
        /// agent.toml: its inventory gives the units and this node's uplink.
        /// Without it (or --inventory) only the policy's own structure is
        /// checked.
        #[arg(long)]
        config: Option<PathBuf>,
        /// An inventory file to check against (this node: agent.id).
        #[arg(long)]
        inventory: Option<PathBuf>,
    },
    /// Print the nft and tc batches the policy becomes on this node.
    Plan {
        file: PathBuf,
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        inventory: Option<PathBuf>,
        /// Plan for this time (RFC 3339) instead of now (schedules).
        #[arg(long)]
        at: Option<String>,
    },
    /// Validate and apply a policy now, then exit (the kernel keeps it).
    Apply {
        file: PathBuf,
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        inventory: Option<PathBuf>,
        /// Apply the rates of this time (RFC 3339) instead of now: previews
        /// and tests of schedule windows.
        #[arg(long)]
        at: Option<String>,
        /// Rebuild the HTB trees whole even when only rates changed (which
        /// otherwise changes the classes in place, keeping their counters).
        #[arg(long)]
        rebuild: bool,
    },
}

fn main() {
    simpul_agent::logging::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay {
            pcap,
            config,
            flows_out,
            interim,
            counters_out,
            json_summary,
            realtime,
            looping,
            policy,
            blocked_out,
            ipfix,
        } => replay(ReplayArgs {
            pcaps: pcap,
            config,
            outputs: Outputs {
                flows: flows_out,
                counters: counters_out,
                blocked: blocked_out,
                interim,
            },
            json_summary,
            realtime,
            looping,
            policy,
            ipfix,
        }),
        Command::Run { config } => run(&config),
        Command::Policy { action } => policy_command(action),
        Command::DnsProxy(args) => simpul_agent::dnsproxy::run_cli(&args).map_err(Into::into),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn load(config: Option<&Path>) -> Result<AgentConfig> {
    Ok(match config {
        Some(p) => AgentConfig::load(p)?,
        None => AgentConfig::default(),
    })
}

/// A flag set by SIGINT and SIGTERM: both stop the agent cleanly.
fn stop_on_signals(flag: &Arc<AtomicBool>) -> Result<()> {
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, flag.clone()).context("cannot install signal handler")?;
    }
    Ok(())
}

struct ReplayArgs {
    pcaps: Vec<PathBuf>,
    config: Option<PathBuf>,
    outputs: Outputs,
    json_summary: bool,
    realtime: bool,
    looping: bool,
    policy: Option<PathBuf>,
    ipfix: Option<String>,
}

fn replay(a: ReplayArgs) -> Result<()> {
    let mut cfg = load(a.config.as_deref())?;
    if let Some(to) = &a.ipfix {
        let section = match cfg.export.ipfix.take() {
            Some(mut s) => {
                s.collector.clone_from(to);
                s
            }
            None => simpul_agent::export::IpfixConfig::to(to.clone()),
        };
        let mut problems = Vec::new();
        section.check("--ipfix", &mut problems);
        if !problems.is_empty() {
            bail!("{}", simpul_proto::problem::describe(&problems));
        }
        cfg.export.ipfix = Some(section);
    }
    if a.outputs.flows.is_none() && cfg.collector.is_none() && cfg.export.ipfix.is_none() {
        bail!(
            "--flows-out is required unless the config has a [collector] section or IPFIX export"
        );
    }
    // Only a replay that delivers to a collector has state to keep (its
    // credential and spool). Any other replay uses a scratch directory: it
    // must neither need the router's state directory nor overwrite the
    // inventory and policy the running agent keeps there.
    let scratch = cfg.collector.is_none();
    if scratch {
        cfg.agent.state_dir =
            std::env::temp_dir().join(format!("simpul-replay-{}", std::process::id()));
    }
    let fixed = match &a.policy {
        Some(path) => {
            let current = simpul_agent::current_inventory(&cfg, None)?;
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let scope = PolicyScope {
                agency: current.as_ref().map(|(_, v)| &v.agency),
                uplink: current.as_ref().and_then(|(_, v)| v.uplink),
            };
            let policy = parse_policy(&text, &scope)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Some((current.map(|(i, _)| i), Some(policy)))
        }
        None => None,
    };
    let to_collector = cfg.collector.is_some();
    let agent = Agent::start(
        cfg.clone(),
        AgentOptions {
            capture: Capture::Replay {
                pcaps: a.pcaps.clone(),
                realtime: a.realtime,
                looping: a.looping,
            },
            outputs: a.outputs.clone(),
            fixed,
            wait_for_inventory: to_collector.then_some(Duration::from_secs(30)),
            enforce: false,
        },
    )?;
    if a.realtime {
        stop_on_signals(&agent.stop_flag())?;
    }
    let report = agent.wait()?;
    if scratch {
        let _ = std::fs::remove_dir_all(&cfg.agent.state_dir);
    }
    let mut truncated = Vec::new();
    for outcome in &report.files {
        if let Some(off) = outcome.truncated_at {
            tracing::warn!(file = %outcome.path.display(), offset = off, "file ends inside a record (capture cut short); read up to there");
            truncated.push(outcome.path.display().to_string());
        }
    }
    let flows = if a.outputs.flows.is_some() {
        report.flows_written
    } else {
        let s = &report.stats;
        s.records_final
            + if a.outputs.interim {
                s.records_interim
            } else {
                0
            }
    };
    print_summary(&report, flows, a.json_summary, &truncated);
    if let Some(r) = &report.link {
        if r.spooled_batches > 0 {
            eprintln!(
                "collector: {} batches sealed, {} not yet acknowledged (spooled for the next run)",
                report.sealed_batches, r.spooled_batches
            );
        } else if !a.json_summary {
            println!("collector   {} batches delivered", report.sealed_batches);
        }
    }
    Ok(())
}

fn print_summary(r: &Report, flows: u64, json: bool, truncated: &[String]) {
    let s = &r.stats;
    let secs = r.seconds;
    let pps = if secs > 0.0 {
        s.frames as f64 / secs
    } else {
        0.0
    };
    let errors: serde_json::Map<String, serde_json::Value> = DecodeError::ALL
        .iter()
        .filter(|e| s.decode_errors[e.index()] > 0)
        .map(|e| (e.name().to_string(), s.decode_errors[e.index()].into()))
        .collect();
    if json {
        let v = serde_json::json!({
            "frames": s.frames, "packets": s.packets, "bytes": s.bytes, "flows": flows,
            "errors": errors, "fragments": s.fragments, "orphan_fragments": s.orphan_fragments,
            "dns_messages": s.dns_messages, "dns_skipped": s.dns_skipped, "seconds": secs, "packets_per_second": pps,
            "truncated_files": truncated, "ipfix": r.ipfix,
        });
        println!("{v}");
        return;
    }
    println!("frames      {}", s.frames);
    println!("packets     {} (IP)", s.packets);
    println!("bytes       {} (IP layer)", s.bytes);
    println!("flows       {flows}");
    if errors.is_empty() {
        println!("errors      none");
    } else {
        for (k, v) in &errors {
            println!("errors      {k}: {v}");
        }
    }
    println!(
        "named       sni {} quic {} http {} dns {}",
        s.named_sni, s.named_quic, s.named_http, s.named_dns
    );
    if let Some(x) = &r.ipfix {
        println!(
            "ipfix       {} records in {} messages, {} send errors",
            x.records, x.messages, x.send_errors
        );
    }
    println!("seconds     {secs:.3}");
    println!("packets/s   {pps:.0}");
}

fn run(config: &Path) -> Result<()> {
    let cfg = AgentConfig::load(config)?;
    let agent = Agent::start(
        cfg,
        AgentOptions {
            capture: Capture::Live,
            outputs: Outputs::default(),
            fixed: None,
            wait_for_inventory: None,
            enforce: true,
        },
    )?;
    let stop = agent.stop_flag();
    stop_on_signals(&stop)?;
    while !stop.load(Ordering::Relaxed) && !agent.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
    }
    agent.stop()?;
    Ok(())
}

fn policy_command(action: PolicyAction) -> Result<()> {
    match action {
        PolicyAction::Check {
            file,
            config,
            inventory,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            // Checked for its agency (as the collector checks it), whatever
            // node the config is for.
            let inv = match (&config, &inventory) {
                (None, None) => None,
                _ => {
                    let cfg = load(config.as_deref())?;
                    simpul_agent::read_inventory(&cfg, inventory.as_deref())?
                }
            };
            let agency_of = Policy::parse(&text)
                .map(|p| p.agency)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let view = inv.as_ref().and_then(|i| {
                i.agency(&agency_of)
                    .map(simpul_core::inventory::AgencyView::from_agency)
            });
            if inv.is_some() && view.is_none() {
                bail!(
                    "{}: agency {agency_of:?} is not in the inventory",
                    file.display()
                );
            }
            let scope = PolicyScope {
                agency: view.as_ref(),
                uplink: inv
                    .as_ref()
                    .and_then(|i| simpul_core::inventory::agency_uplink(i, &agency_of)),
            };
            // A file for the collector's policy directory has no version
            // (the collector assigns it).
            let mut policy =
                Policy::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let unversioned = policy.version == 0;
            policy.version = policy.version.max(1);
            simpul_core::policy::validate(&policy, &scope).map_err(|p| {
                anyhow::anyhow!(
                    "{}: policy refused: {}",
                    file.display(),
                    simpul_proto::problem::describe(&p)
                )
            })?;
            println!(
                "{}: policy {} for agency {} is valid ({} units, {} schedules{}{})",
                file.display(),
                if unversioned {
                    "(version set by the collector)".to_string()
                } else {
                    policy.version.to_string()
                },
                policy.agency,
                policy.allocation.units.len(),
                policy.schedules.len(),
                if inv.is_none() {
                    "; unit codes and uplink not checked without an inventory"
                } else {
                    ""
                },
                if unversioned {
                    "; a standalone router needs `version`"
                } else {
                    ""
                }
            );
            Ok(())
        }
        PolicyAction::Plan {
            file,
            config,
            inventory,
            at,
        } => {
            let (cfg, policy, view) = policy_inputs(&file, &config, inventory.as_deref())?;
            let now = parse_at(at.as_deref())?;
            let target = cfg
                .enforce_target()
                .context("[enforce] lan_interface and wan_interface must be set to plan")?;
            let enforcer = Enforcer::new(target);
            let plan = enforcer.plan(&policy, &view, now)?;
            println!(
                "# policy {} schedule {} leaf {}",
                plan.policy_version,
                plan.schedule.as_deref().unwrap_or("(base rates)"),
                enforcer.leaf().kind()
            );
            for c in &plan.classes {
                println!(
                    "# class {:<6} {:<28} down {}/{} up {}/{} bps (rate/ceil)",
                    c.classid,
                    c.name,
                    c.download.rate_bps,
                    c.download.ceil_bps,
                    c.upload.rate_bps,
                    c.upload.ceil_bps
                );
            }
            println!("# ---- nft -f - ----\n{}", plan.nft);
            println!("# ---- tc -batch - ----\n{}", plan.tc);
            Ok(())
        }
        PolicyAction::Apply {
            file,
            config,
            inventory,
            at,
            rebuild,
        } => {
            let (cfg, policy, view) = policy_inputs(&file, &config, inventory.as_deref())?;
            let now = parse_at(at.as_deref())?;
            let target = cfg
                .enforce_target()
                .context("[enforce] lan_interface and wan_interface must be set to apply")?;
            let mut enforcer = Enforcer::new(target);
            enforcer.always_rebuild(rebuild);
            enforcer.offload_mode(cfg.enforce.offload_mode());
            enforcer.offload_state(
                &cfg.agent
                    .state_dir
                    .join(simpul_agent::enforce::offloads::STATE_FILE),
            );
            // What a previous run left in force is what a failure rolls back to.
            let last = cfg
                .agent
                .state_dir
                .join(simpul_agent::control::LAST_GOOD_FILE);
            if let Ok(p) = std::fs::read_to_string(&last)
                .map_err(anyhow::Error::from)
                .and_then(|t| Ok(Policy::parse(&t)?))
            {
                enforcer.assume(p, view.clone(), now);
            }
            match enforcer.enforce(policy.clone(), view, now)? {
                Outcome::Applied {
                    version,
                    schedule,
                    millis,
                    shaping,
                } => println!(
                    "policy {version} applied in {millis} ms (schedule {}; {shaping})",
                    schedule.as_deref().unwrap_or("none")
                ),
                Outcome::Unchanged => println!("policy unchanged"),
            }
            let toml = policy
                .to_toml()
                .context("cannot write the policy as TOML")?;
            simpul_agent::state_files::write_private(&last, toml.as_bytes())?;
            Ok(())
        }
    }
}

/// The config, the policy checked against this node's inventory, and the view.
fn policy_inputs(
    file: &Path,
    config: &Path,
    inventory: Option<&Path>,
) -> Result<(AgentConfig, Policy, simpul_core::inventory::NodeView)> {
    let cfg = AgentConfig::load(config)?;
    let (_, view) = simpul_agent::current_inventory(&cfg, inventory)?.with_context(|| {
        format!(
            "no inventory for node {}: give --inventory, or [standalone] inventory_file in {}",
            cfg.agent.id,
            config.display()
        )
    })?;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let scope = PolicyScope {
        agency: Some(&view.agency),
        uplink: view.uplink,
    };
    let policy =
        parse_policy(&text, &scope).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    Ok((cfg, policy, view))
}

/// `--at`: an RFC 3339 time, or now.
fn parse_at(at: Option<&str>) -> Result<time::OffsetDateTime> {
    match at {
        Some(t) => time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .with_context(|| format!("--at {t:?} is not an RFC 3339 time")),
        None => Ok(time::OffsetDateTime::now_utc()),
    }
}
