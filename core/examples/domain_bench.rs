//! Blocklist benchmark helper for `bench/domains.sh`.
//!
//! ```sh
//! cargo run --release --example domain_bench -- generate OUT_FILE [COUNT]
//! cargo run --release --example domain_bench -- measure LIST_FILE
//! ```
//!
//! `generate` writes COUNT (default 3 000 000) distinct, deterministic
//! domains shaped like a national blocklist (1–4 labels under com/net/id/
//! go.id/co.id/xyz/…), about 90 % plain lines, 5 % hosts lines and 5 %
//! adblock rules, with a few comments. `measure` loads the file in a fresh
//! process and prints one JSON object: load time, VmRSS delta, VmHWM, rule
//! count and lookup nanoseconds for hits, misses and deep subdomains.
//! `DOMAIN_BENCH_ROUNDS=N` (default 3) repeats the lookups, e.g. under `perf record`.

// A benchmark or tool on synthetic, known-good input: a failed unwrap is a
// broken benchmark, reported by the panic.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use simpul_core::policy::domains::{DomainSetBuilder, ListFormat};

const SYLLABLES: &[&str] = &[
    "ka", "ri", "su", "ma", "ja", "di", "go", "bet", "slot", "judi", "toto", "win", "play", "game",
    "bola", "gacor", "maxwin", "poker", "qq", "hoki", "sakti", "jp", "online", "news", "berita",
    "info", "live", "stream", "xx", "vid", "hot", "asia", "indo", "nusa", "raja", "dewa", "naga",
    "emas", "mega", "prima", "zeus", "olymp", "star", "lucky", "club", "pro", "top", "vip",
];
const TLDS: &[(&str, u32)] = &[
    ("com", 40),
    ("net", 8),
    ("org", 3),
    ("id", 5),
    ("co.id", 4),
    ("go.id", 1),
    ("web.id", 2),
    ("my.id", 2),
    ("xyz", 8),
    ("info", 3),
    ("top", 4),
    ("online", 4),
    ("site", 3),
    ("vip", 3),
    ("live", 2),
    ("me", 2),
    ("io", 1),
    ("biz", 2),
    ("club", 1),
    ("asia", 1),
    ("bet", 1),
];
const PREFIXES: &[&str] = &[
    "www", "m", "cdn", "api", "img", "link", "login", "id", "daftar",
];

/// splitmix64: deterministic and fast.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn domain(rng: &mut Rng) -> String {
    let mut s = String::with_capacity(32);
    // 0–2 leading labels (so 1–4 labels before a one-label TLD).
    let extra = match rng.below(10) {
        0..=5 => 0,
        6..=8 => 1,
        _ => 2,
    };
    for _ in 0..extra {
        if rng.below(2) == 0 {
            s.push_str(PREFIXES[rng.below(PREFIXES.len() as u64) as usize]);
        } else {
            for _ in 0..1 + rng.below(2) {
                s.push_str(SYLLABLES[rng.below(SYLLABLES.len() as u64) as usize]);
            }
        }
        s.push('.');
    }
    let parts = 2 + rng.below(3);
    for i in 0..parts {
        if i > 0 && rng.below(6) == 0 {
            s.push('-');
        }
        s.push_str(SYLLABLES[rng.below(SYLLABLES.len() as u64) as usize]);
    }
    if rng.below(2) == 0 {
        s.push_str(&rng.below(1000).to_string());
    }
    s.push('.');
    let total: u32 = TLDS.iter().map(|t| t.1).sum();
    let mut pick = rng.below(u64::from(total)) as u32;
    for (tld, w) in TLDS {
        if pick < *w {
            s.push_str(tld);
            break;
        }
        pick -= w;
    }
    s
}

fn generate(out: &Path, count: usize) -> std::io::Result<()> {
    let mut rng = Rng(0x5349_4D50_554C);
    let mut seen: HashSet<String> = HashSet::with_capacity(count);
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
    writeln!(
        w,
        "# generated blocklist: {count} domains (bench/domains.sh)"
    )?;
    while seen.len() < count {
        let d = domain(&mut rng);
        if !seen.insert(d.clone()) {
            continue;
        }
        match rng.below(20) {
            0 => writeln!(w, "0.0.0.0 {d}")?,
            1 => writeln!(w, "||{d}^")?,
            _ => writeln!(w, "{d}")?,
        }
        if seen.len().is_multiple_of(100_000) {
            writeln!(w, "# section {}", seen.len() / 100_000)?;
        }
    }
    w.flush()
}

fn status_kb(field: &str) -> u64 {
    status_kb_file("/proc/self/status", field)
}

fn status_kb_file(file: &str, field: &str) -> u64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn strip(line: &str) -> Option<&str> {
    let l = line.trim();
    if l.is_empty() || l.starts_with('#') {
        return None;
    }
    if let Some(r) = l.strip_prefix("0.0.0.0 ") {
        return Some(r);
    }
    if let Some(r) = l.strip_prefix("||") {
        return r.strip_suffix('^');
    }
    Some(l)
}

/// This thread's CPU time in ns: unlike wall time it does not count the
/// time other processes hold the core (the bench machine is shared).
fn thread_cpu_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

/// (wall ns per lookup, CPU ns per lookup, matches per round). The queries
/// are packed into one buffer in order, as a DNS server sees a name it has
/// just received (in cache); the set's memory is what is measured.
fn time_lookups<F: Fn(&str) -> bool>(queries: &[String], rounds: usize, f: F) -> (f64, f64, usize) {
    let packed: String = queries.concat();
    let mut spans = Vec::with_capacity(queries.len());
    let mut at = 0;
    for q in queries {
        spans.push((at, at + q.len()));
        at += q.len();
    }
    let mut found = 0;
    let start = Instant::now();
    let cpu0 = thread_cpu_ns();
    for _ in 0..rounds {
        for &(a, b) in &spans {
            if f(std::hint::black_box(&packed[a..b])) {
                found += 1;
            }
        }
    }
    let n = (queries.len() * rounds) as f64;
    let cpu = (thread_cpu_ns() - cpu0) as f64 / n;
    let ns = start.elapsed().as_nanos() as f64 / n;
    (ns, cpu, found / rounds)
}

/// The machine's random-access latency: a dependent chase through a 32 MiB
/// cycle, in CPU ns per load. A lookup costs about one of these (the
/// probes of a name's cold suffixes overlap), plus hashing and scanning.
fn memory_latency_ns() -> f64 {
    let n = 1usize << 22;
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = Rng(7);
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    let mut next = vec![0usize; n];
    for w in 0..n {
        next[order[w]] = order[(w + 1) % n];
    }
    let steps = 2_000_000;
    let mut at = order[0];
    let cpu0 = thread_cpu_ns();
    for _ in 0..steps {
        at = next[at];
    }
    std::hint::black_box(at);
    (thread_cpu_ns() - cpu0) as f64 / steps as f64
}

fn measure(path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let rss0 = status_kb("VmRSS:");
    let t0 = Instant::now();
    let cpu_start = thread_cpu_ns();
    let mut b = DomainSetBuilder::new();
    let report = b.add_path(path, ListFormat::Auto, 0)?;
    let set = b.build();
    let load_s = t0.elapsed().as_secs_f64();
    let load_cpu = thread_cpu_ns() - cpu_start;
    let rss1 = status_kb("VmRSS:");
    let hwm = status_kb("VmHWM:");

    // Query sets: every 15th rule (hits), same-shaped names from another
    // seed that are not in the set (misses), and both under 4 extra labels.
    let f = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut hits = Vec::new();
    for (i, line) in f.lines().enumerate() {
        let line = line?;
        if i.is_multiple_of(15) {
            if let Some(d) = strip(&line) {
                hits.push(d.to_string());
            }
        }
    }
    let mut rng = Rng(42);
    let mut misses = Vec::new();
    while misses.len() < hits.len() {
        let d = format!("{}{}", rng.below(10_000_000), domain(&mut rng));
        if !set.contains(&d) {
            misses.push(d);
        }
    }
    // Shuffle so consecutive queries touch unrelated memory.
    for v in [&mut hits, &mut misses] {
        for i in (1..v.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
    let deep_hits: Vec<String> = hits.iter().map(|d| format!("a1.b2.c3.www.{d}")).collect();
    let deep_misses: Vec<String> = misses.iter().map(|d| format!("a1.b2.c3.www.{d}")).collect();
    // More passes for profiling (`DOMAIN_BENCH_ROUNDS=200 perf record …`).
    let rounds = std::env::var("DOMAIN_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let (hit_ns, hit_cpu, hit_found) = time_lookups(&hits, rounds, |q| set.lookup(q).is_some());
    let (miss_ns, miss_cpu, miss_found) =
        time_lookups(&misses, rounds, |q| set.lookup(q).is_some());
    let (dhit_ns, dhit_cpu, dhit_found) =
        time_lookups(&deep_hits, rounds, |q| set.lookup(q).is_some());
    let (dmiss_ns, dmiss_cpu, dmiss_found) =
        time_lookups(&deep_misses, rounds, |q| set.lookup(q).is_some());
    assert_eq!(hit_found, hits.len(), "every sampled rule must hit");
    assert_eq!(dhit_found, hits.len(), "every subdomain of a rule must hit");
    assert_eq!(miss_found, 0);
    assert_eq!(dmiss_found, 0);
    let file_bytes = std::fs::metadata(path)?.len();
    println!(
        "{}",
        serde_json::json!({
            "file_bytes": file_bytes,
            "lines": report.lines,
            "rules": set.len(),
            "invalid": report.invalid,
            "duplicates": report.duplicates,
            "load_s": load_s,
            "rss_delta_mb": (rss1.saturating_sub(rss0)) as f64 / 1024.0,
            "vmhwm_mb": hwm as f64 / 1024.0,
            "heap_mb": set.memory_bytes() as f64 / (1024.0 * 1024.0),
            "queries_per_class": hits.len(),
            "hit_ns": hit_ns,
            "miss_ns": miss_ns,
            "deep_hit_ns": dhit_ns,
            "deep_miss_ns": dmiss_ns,
            "hit_cpu_ns": hit_cpu,
            "miss_cpu_ns": miss_cpu,
            "deep_hit_cpu_ns": dhit_cpu,
            "deep_miss_cpu_ns": dmiss_cpu,
            "load_cpu_s": load_cpu as f64 / 1e9,
            "memory_latency_cpu_ns": memory_latency_ns(),
            "anon_huge_mb": status_kb_file("/proc/self/smaps_rollup", "AnonHugePages:") as f64 / 1024.0,
            "loadavg": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().next().unwrap_or("").to_string(),
        })
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("generate") => {
            let out = args.get(2).ok_or("generate OUT_FILE [COUNT]")?;
            let count = match args.get(3) {
                Some(c) => c.parse()?,
                None => 3_000_000,
            };
            generate(Path::new(out), count)?;
        }
        Some("measure") => {
            let path = args.get(2).ok_or("measure LIST_FILE")?;
            measure(Path::new(path))?;
        }
        _ => return Err("usage: domain_bench generate OUT [COUNT] | measure FILE".into()),
    }
    Ok(())
}
