//! The fuzz targets' code on stable, in every test run: real fixture frames,
//! their mutations and truncations must never panic.

// A test: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use simpul_agent::fuzzing::capture_file;
use simpul_core::fuzzing::decode_and_name;

fn fixtures() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            let p = e.path();
            if matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("pcap" | "pcapng")
            ) {
                if let Ok(d) = std::fs::read(&p) {
                    out.push(d);
                }
            }
        }
    }
    for f in [
        "client_hello_portal.bin",
        "aioquic_v1.bin",
        "aioquic_v1_big.bin",
    ] {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../core/src/dpi/testdata")
            .join(f);
        out.push(std::fs::read(p).expect("dpi testdata"));
    }
    out
}

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn whole_captures_and_their_mutations_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for data in fixtures() {
        capture_file(&data);
        // Cut at many points, and flip bytes.
        for _ in 0..40 {
            let cut = (rng.next() as usize) % data.len().max(1);
            capture_file(&data[..cut]);
            let mut m = data.clone();
            for _ in 0..8 {
                let i = (rng.next() as usize) % m.len().max(1);
                if let Some(b) = m.get_mut(i) {
                    *b ^= rng.next() as u8;
                }
            }
            capture_file(&m);
        }
    }
}

#[test]
fn frame_sequences_never_panic() {
    let mut rng = XorShift(42);
    for data in fixtures() {
        for _ in 0..200 {
            let start = (rng.next() as usize) % data.len().max(1);
            let len = (rng.next() as usize) % 3000;
            let end = (start + len).min(data.len());
            decode_and_name(&data[start..end]);
        }
    }
}
