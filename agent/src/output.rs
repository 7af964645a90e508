//! JSON-lines output of flow records, counters and blocked attempts.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use simpul_proto::{BlockedAttempt, CounterSample, FlowRecord, RecordKind};

use simpul_core::processor::RecordSink;

/// Writes records as one JSON object per line. Write errors are counted and
/// logged once, never fatal to capture.
pub struct JsonlSink {
    flows: Option<BufWriter<File>>,
    counters: Option<BufWriter<File>>,
    blocked: Option<BufWriter<File>>,
    include_interim: bool,
    pub flows_written: u64,
    pub counters_written: u64,
    pub blocked_written: u64,
    pub write_errors: u64,
}

impl JsonlSink {
    pub fn create(
        flows: Option<&Path>,
        counters: Option<&Path>,
        include_interim: bool,
    ) -> std::io::Result<Self> {
        Self::create_all(flows, counters, None, include_interim)
    }

    /// Like [`JsonlSink::create`], with a file for blocked attempts (appended
    /// to: enforcement events are an audit trail across restarts).
    pub fn create_all(
        flows: Option<&Path>,
        counters: Option<&Path>,
        blocked: Option<&Path>,
        include_interim: bool,
    ) -> std::io::Result<Self> {
        let open = |p: &Path| File::create(p).map(|f| BufWriter::with_capacity(1 << 20, f));
        Ok(Self {
            flows: flows.map(open).transpose()?,
            counters: counters.map(open).transpose()?,
            blocked: blocked
                .map(|p| {
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(p)
                        .map(|f| BufWriter::with_capacity(64 << 10, f))
                })
                .transpose()?,
            include_interim,
            flows_written: 0,
            counters_written: 0,
            blocked_written: 0,
            write_errors: 0,
        })
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        if let Some(w) = self.flows.as_mut() {
            w.flush()?;
        }
        if let Some(w) = self.counters.as_mut() {
            w.flush()?;
        }
        if let Some(w) = self.blocked.as_mut() {
            w.flush()?;
        }
        Ok(())
    }

    fn write_line<T: serde::Serialize>(w: &mut BufWriter<File>, v: &T) -> std::io::Result<()> {
        serde_json::to_writer(&mut *w, v)?;
        w.write_all(b"\n")
    }

    fn error(&mut self, e: std::io::Error) {
        if self.write_errors == 0 {
            tracing::error!(error = %e, "cannot write JSONL output");
        }
        self.write_errors += 1;
    }
}

impl RecordSink for JsonlSink {
    fn flow(&mut self, record: FlowRecord) {
        if record.kind == RecordKind::Interim && !self.include_interim {
            return;
        }
        if let Some(w) = self.flows.as_mut() {
            match Self::write_line(w, &record) {
                Ok(()) => self.flows_written += 1,
                Err(e) => self.error(e),
            }
        }
    }

    fn counters(&mut self, sample: CounterSample) {
        if let Some(w) = self.counters.as_mut() {
            match Self::write_line(w, &sample) {
                Ok(()) => self.counters_written += 1,
                Err(e) => self.error(e),
            }
        }
    }

    fn blocked(&mut self, attempt: BlockedAttempt) {
        if let Some(w) = self.blocked.as_mut() {
            match Self::write_line(w, &attempt) {
                Ok(()) => self.blocked_written += 1,
                Err(e) => self.error(e),
            }
        }
    }
}
