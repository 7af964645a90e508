//! Bytes per flow record on the wire: reads flow records (JSON lines, as
//! `simpul-agent replay --flows-out` writes them) from stdin, packs them into
//! batches of 1000 as the agent does, and prints binary vs JSON sizes.

// A benchmark or tool on synthetic, known-good input: a failed unwrap is a
// broken benchmark, reported by the panic.
#![allow(clippy::unwrap_used)]

use std::io::BufRead;

use simpul_proto::wire::{self, AgentMessage, Batch};
use simpul_proto::FlowRecord;

fn main() {
    let mut records: Vec<FlowRecord> = Vec::new();
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        match serde_json::from_str(&line) {
            Ok(r) => records.push(r),
            Err(e) => eprintln!("skipping a line: {e}"),
        }
    }
    if records.is_empty() {
        eprintln!("no records on stdin");
        std::process::exit(1);
    }
    let (mut binary, mut json) = (0usize, 0usize);
    for (i, chunk) in records.chunks(1000).enumerate() {
        let msg = AgentMessage::Batch(Batch {
            boot_epoch: 1,
            seq: i as u64 + 1,
            sealed_ms: 0,
            flows: chunk.to_vec(),
            counters: vec![],
            blocked: vec![],
            dropped_records: 0,
            dropped_batches: 0,
        });
        binary += wire::encode(&msg).len();
        json += serde_json::to_string(&msg).map_or(0, |s| s.len());
    }
    let n = records.len() as f64;
    println!(
        "{{\"records\": {}, \"binary_bytes_per_record\": {:.1}, \"json_bytes_per_record\": {:.1}}}",
        records.len(),
        binary as f64 / n,
        json as f64 / n
    );
}
