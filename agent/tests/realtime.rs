//! Real-time replay: recorded pacing, timestamps shifted to now, looping.

// A test: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use simpul_agent::config::AgentConfig;
use simpul_agent::link::TimedSink;
use simpul_agent::replay::{replay_files, replay_realtime};
use simpul_core::agency::AgencyMap;
use simpul_core::processor::{Processor, RecordSink};
use simpul_proto::{BlockedAttempt, CounterSample, FlowRecord};

#[derive(Default)]
struct Rec {
    flows: Vec<FlowRecord>,
    counters: Vec<CounterSample>,
    ticks: u64,
}

impl RecordSink for Rec {
    fn flow(&mut self, r: FlowRecord) {
        self.flows.push(r);
    }
    fn counters(&mut self, c: CounterSample) {
        self.counters.push(c);
    }
    fn blocked(&mut self, b: BlockedAttempt) {
        panic!("no policy in this test, yet blocked: {b:?}");
    }
}

impl TimedSink for Rec {
    fn on_tick(&mut self, _now: Instant) {
        self.ticks += 1;
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn processor() -> Processor<Rec> {
    let path = fixtures().join("agent.toml");
    let cfg = AgentConfig::load(&path).unwrap();
    let (_, view) = simpul_agent::current_inventory(&cfg, None)
        .unwrap()
        .unwrap();
    Processor::new(
        &cfg.processor_config(),
        AgencyMap::new(&view),
        Rec::default(),
    )
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// (src, dst, bytes up, bytes down) of final records, sorted.
fn shape(flows: &[FlowRecord]) -> Vec<(String, String, u64, u64)> {
    let mut v: Vec<_> = flows
        .iter()
        .map(|f| {
            (
                format!("{}:{:?}", f.src_ip, f.src_port),
                format!("{}:{:?}", f.dst_ip, f.dst_port),
                f.bytes_up,
                f.bytes_down,
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn paces_at_recorded_speed_with_timestamps_shifted_to_now() {
    // http.pcap: 66 packets over 0.216 s.
    let files = vec![fixtures().join("http.pcap")];
    let mut fast = processor();
    replay_files(&files, &mut fast).unwrap();
    fast.finish();

    let mut proc = processor();
    let start_ns = now_ns();
    let t0 = Instant::now();
    let s = replay_realtime(&files, &mut proc, false, &AtomicBool::new(false)).unwrap();
    let took = t0.elapsed();
    proc.finish();
    assert_eq!((s.passes, s.frames, s.stopped), (1, 66, false));
    assert!(took >= Duration::from_millis(210), "too fast: {took:?}");
    assert!(took < Duration::from_secs(3), "too slow: {took:?}");
    let flows = &proc.sink().flows;
    assert!(!flows.is_empty());
    for f in flows {
        assert!(f.first_seen >= start_ns, "{f:?}");
        assert!(f.last_seen <= start_ns + 500_000_000, "{f:?}");
    }
    // Same flows as the fast replay, only moved in time.
    assert_eq!(shape(flows), shape(&fast.sink().flows));
    let first = flows.iter().map(|f| f.first_seen).min().unwrap();
    let fast_first = fast
        .sink()
        .flows
        .iter()
        .map(|f| f.first_seen)
        .min()
        .unwrap();
    let last = flows.iter().map(|f| f.last_seen).max().unwrap();
    let fast_last = fast.sink().flows.iter().map(|f| f.last_seen).max().unwrap();
    // Spacing is kept (to the processing jitter of a busy test machine).
    let span = (last - first) as i64;
    let fast_span = (fast_last - fast_first) as i64;
    assert!(
        (span - fast_span).abs() < 50_000_000,
        "{span} vs {fast_span}"
    );
}

#[test]
fn loops_with_time_advancing_until_stopped() {
    let files = vec![fixtures().join("http.pcap")];
    let mut proc = processor();
    let stop = AtomicBool::new(false);
    let start_s = now_ns() / 1_000_000_000;
    let s = std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(2500));
            stop.store(true, Ordering::Relaxed);
        });
        replay_realtime(&files, &mut proc, true, &stop).unwrap()
    });
    proc.finish();
    assert!(s.stopped);
    // Passes start 1 s apart (the capture is shorter than the 1 s floor).
    assert!(s.passes >= 3, "{s:?}");
    assert!(s.frames >= 66 * 2, "{s:?}");
    assert!(
        proc.sink().ticks >= 10,
        "ticks while waiting: {}",
        proc.sink().ticks
    );
    let secs: std::collections::BTreeSet<u64> = proc.sink().counters.iter().map(|c| c.ts).collect();
    assert!(
        secs.iter().any(|&t| t > start_s),
        "later passes are later in time: {secs:?}"
    );
    let counted: u64 = proc
        .sink()
        .counters
        .iter()
        .map(|c| c.packets_in + c.packets_out)
        .sum();
    assert!(counted >= 66 * 2, "{counted}");
}
