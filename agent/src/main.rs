//! `simpul-agent`: replay pcaps or capture live; see `--help`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use simpul_agent::agency::AgencyMap;
use simpul_agent::capture::live::LiveCapture;
use simpul_agent::config::AgentConfig;
use simpul_agent::decode::{DecodeError, LinkType};
use simpul_agent::output::JsonlSink;
use simpul_agent::processor::{Processor, ProcessorStats};

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
    /// Read pcap/pcapng files as fast as possible and write their flows.
    Replay {
        /// pcap or pcapng file (repeat for several, read in order).
        #[arg(long, required = true)]
        pcap: Vec<PathBuf>,
        /// agent.toml (agencies, intranet, timeouts); defaults apply without it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Final flow records, one JSON object per line.
        #[arg(long)]
        flows_out: PathBuf,
        /// Also write interim (active-timeout) records to --flows-out.
        #[arg(long)]
        interim: bool,
        /// Per-second counters per agency/unit, one JSON object per line.
        #[arg(long)]
        counters_out: Option<PathBuf>,
        /// Print the summary as JSON instead of text.
        #[arg(long)]
        json_summary: bool,
    },
    /// Capture live on the configured interfaces.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SIMPUL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay {
            pcap,
            config,
            flows_out,
            interim,
            counters_out,
            json_summary,
        } => replay(
            &pcap,
            config.as_deref(),
            &flows_out,
            interim,
            counters_out.as_deref(),
            json_summary,
        ),
        Command::Run { config } => run(&config),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn load(config: Option<&Path>) -> Result<(AgentConfig, AgencyMap)> {
    let cfg = match config {
        Some(p) => AgentConfig::load(p)?,
        None => AgentConfig::default(),
    };
    let label = config.unwrap_or(Path::new("<defaults>"));
    let subnets = cfg.subnet_assignments(label)?;
    let intranet = cfg.intranet_networks(label)?;
    let map = AgencyMap::new(&cfg.agencies, &subnets, intranet);
    Ok((cfg, map))
}

fn replay(
    pcaps: &[PathBuf],
    config: Option<&Path>,
    flows_out: &Path,
    interim: bool,
    counters_out: Option<&Path>,
    json_summary: bool,
) -> Result<()> {
    let (cfg, map) = load(config)?;
    let sink = JsonlSink::create(Some(flows_out), counters_out, interim)
        .with_context(|| format!("cannot create {}", flows_out.display()))?;
    let mut proc = Processor::new(&cfg, map, sink);
    proc.set_interim_records(interim);
    let started = Instant::now();
    let mut truncated = Vec::new();
    for outcome in simpul_agent::replay::replay_files(pcaps, &mut proc)? {
        if let Some(off) = outcome.truncated_at {
            tracing::warn!(file = %outcome.path.display(), offset = off, "file ends inside a record (capture cut short); read up to there");
            truncated.push(outcome.path.display().to_string());
        }
    }
    proc.finish();
    proc.sink_mut()
        .flush()
        .with_context(|| format!("cannot write {}", flows_out.display()))?;
    let secs = started.elapsed().as_secs_f64();
    print_summary(
        proc.stats(),
        proc.sink().flows_written,
        secs,
        json_summary,
        &truncated,
    );
    Ok(())
}

fn print_summary(s: &ProcessorStats, flows: u64, secs: f64, json: bool, truncated: &[String]) {
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
            "dns_messages": s.dns_messages, "seconds": secs, "packets_per_second": pps,
            "truncated_files": truncated,
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
    println!("seconds     {secs:.3}");
    println!("packets/s   {pps:.0}");
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn run(config: &Path) -> Result<()> {
    let (cfg, map) = load(Some(config))?;
    let sink = JsonlSink::create(
        cfg.output.flows_jsonl.as_deref(),
        cfg.output.counters_jsonl.as_deref(),
        true,
    )
    .context("cannot open output files")?;
    let mut proc = Processor::new(&cfg, map, sink);
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("cannot install signal handler")?;
    }
    let (capture, batches) = LiveCapture::start(&cfg.capture)?;
    tracing::info!(agent = %cfg.agent.id, "agent running");
    let mut last_flush = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match batches.recv_timeout(Duration::from_millis(200)) {
            Ok(batch) => {
                for (ts, frame) in batch.iter() {
                    proc.handle_frame(LinkType::Ethernet, ts, frame);
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => proc.tick(now_ns()),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        if last_flush.elapsed() >= Duration::from_secs(1) {
            last_flush = Instant::now();
            proc.tick(now_ns());
            if let Err(e) = proc.sink_mut().flush() {
                tracing::warn!(error = %e, "cannot flush output");
            }
        }
    }
    tracing::info!("stopping: draining capture and ending flows");
    let stats: Vec<_> = capture.stats().to_vec();
    capture.stop();
    while let Ok(batch) = batches.try_recv() {
        for (ts, frame) in batch.iter() {
            proc.handle_frame(LinkType::Ethernet, ts, frame);
        }
    }
    proc.finish();
    proc.sink_mut().flush().context("cannot flush output")?;
    for s in &stats {
        use std::sync::atomic::Ordering::Relaxed;
        tracing::info!(
            interface = %s.name,
            frames = s.frames.load(Relaxed),
            kernel_packets = s.kernel_packets.load(Relaxed),
            kernel_drops = s.kernel_drops.load(Relaxed),
            queue_drops = s.queue_drops.load(Relaxed),
            "capture totals"
        );
    }
    let st = proc.stats();
    let errors: Vec<String> = DecodeError::ALL
        .iter()
        .filter(|e| st.decode_errors[e.index()] > 0)
        .map(|e| format!("{}={}", e.name(), st.decode_errors[e.index()]))
        .collect();
    tracing::info!(
        packets = st.packets,
        bytes = st.bytes,
        decode_errors = %errors.join(","),
        flows = proc.sink().flows_written,
        "agent stopped"
    );
    Ok(())
}
