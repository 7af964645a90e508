//! Domain blocklist lookups: a set that fits in cache (20 k rules) and the
//! 3 M-rule target size, for hits, misses and deep subdomains (suffix walk),
//! plus loading. Run with `cargo bench -p simpul-core --bench domains`;
//! `bench/domains.sh` measures memory and load time in a fresh process.

// A benchmark or tool on synthetic, known-good input: a failed unwrap is a
// broken benchmark, reported by the panic.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use simpul_core::policy::domains::{DomainSet, DomainSetBuilder, ListFormat};

const TLDS: &[&str] = &[
    "com", "net", "id", "go.id", "co.id", "xyz", "org", "top", "online",
];
const WORDS: &[&str] = &[
    "judi", "slot", "bola", "gacor", "toto", "berita", "info", "raja", "naga", "win", "play",
    "stream", "asia", "indo", "mega", "lucky",
];

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

fn name(rng: &mut Rng, i: usize) -> String {
    let sub = match rng.below(4) {
        0 => "www.",
        1 => "m.",
        _ => "",
    };
    format!(
        "{sub}{}{}{i}.{}",
        WORDS[rng.below(WORDS.len())],
        WORDS[rng.below(WORDS.len())],
        TLDS[rng.below(TLDS.len())]
    )
}

fn build(n: usize) -> (DomainSet, Vec<String>, Vec<String>) {
    let mut rng = Rng(1);
    let mut text = String::with_capacity(n * 24);
    let mut hits = Vec::new();
    for i in 0..n {
        let d = name(&mut rng, i);
        if i.is_multiple_of((n / 10_000).max(1)) {
            hits.push(d.clone());
        }
        text.push_str(&d);
        text.push('\n');
    }
    let set = DomainSet::from_lines(text.as_bytes(), ListFormat::Plain).expect("in-memory list");
    let misses = (0..hits.len()).map(|i| name(&mut rng, n + 1 + i)).collect();
    (set, hits, misses)
}

fn lookups(c: &mut Criterion) {
    for n in [20_000usize, 3_000_000] {
        let (set, hits, misses) = build(n);
        let deep: Vec<String> = hits.iter().map(|h| format!("a1.b2.c3.www.{h}")).collect();
        let deep_miss: Vec<String> = misses.iter().map(|h| format!("a1.b2.c3.www.{h}")).collect();
        let mut g = c.benchmark_group(format!("domains_{n}"));
        g.throughput(Throughput::Elements(hits.len() as u64));
        for (label, qs) in [
            ("hit", &hits),
            ("miss", &misses),
            ("deep_hit", &deep),
            ("deep_miss", &deep_miss),
        ] {
            g.bench_function(label, |b| {
                b.iter(|| {
                    let mut found = 0usize;
                    for q in qs.iter() {
                        found += usize::from(set.lookup(black_box(q)).is_some());
                    }
                    found
                })
            });
        }
        g.finish();
    }
}

fn loading(c: &mut Criterion) {
    let mut rng = Rng(2);
    let text: String = (0..100_000).map(|i| name(&mut rng, i) + "\n").collect();
    let mut g = c.benchmark_group("domains_load");
    g.throughput(Throughput::Elements(100_000));
    g.sample_size(20);
    g.bench_function("plain_100k", |b| {
        b.iter_batched(
            DomainSetBuilder::new,
            |mut builder| {
                builder
                    .add_lines(text.as_bytes(), ListFormat::Plain, 0)
                    .expect("in-memory list");
                builder.build()
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, lookups, loading);
criterion_main!(benches);
