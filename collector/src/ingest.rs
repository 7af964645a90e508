//! The single storage writer: agent batches from every connection are grouped
//! into short windows and committed together; each batch is acknowledged only
//! after its transaction is durable.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use simpul_proto::wire::Batch;
use tokio::sync::oneshot;

use crate::store::{BatchOutcome, FlowStore, FlowWriter, NodeBatches};

/// Work for the writer thread.
pub enum WriteJob {
    Batch {
        node_id: String,
        agency: String,
        /// Sequence gaps are checked against the drops the agent reports
        /// (protocol 3; a protocol-2 agent reports none).
        strict_seq: bool,
        batch: Box<Batch>,
        done: oneshot::Sender<Result<BatchOutcome, String>>,
    },
    /// The node's new boot said Hello: close what its older boots left
    /// running (the agent was killed before it could).
    CloseInterim {
        node_id: String,
        boot_epoch: u64,
    },
    Retention {
        now_secs: u64,
    },
    /// Finish what is queued before this, then end the writer thread
    /// (connection tasks still hold senders, so a closed channel never comes).
    Shutdown,
}

fn at(secs: u64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + Duration::from_secs(secs)
}

/// Batches arriving within this window share one transaction.
const GROUP_WINDOW: Duration = Duration::from_millis(20);
const GROUP_MAX: usize = 256;

pub struct Writer {
    tx: SyncSender<WriteJob>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub fn start(store: &dyn FlowStore) -> anyhow::Result<Writer> {
        let mut writer = store.writer()?;
        let (tx, rx) = mpsc::sync_channel::<WriteJob>(4096);
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(writer.as_mut(), rx))?;
        Ok(Writer {
            tx,
            thread: Some(thread),
        })
    }

    /// A cloneable handle for connection tasks.
    pub fn sender(&self) -> SyncSender<WriteJob> {
        self.tx.clone()
    }

    /// Stop after the queued jobs are written.
    pub fn stop(mut self) {
        let _ = self.tx.send(WriteJob::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// With no batch for this long, pending top-N credits are folded so the top
/// lists include the last batches.
const IDLE_FOLD: Duration = Duration::from_secs(1);

fn run(writer: &mut dyn FlowWriter, rx: Receiver<WriteJob>) {
    let mut dirty = false;
    loop {
        let first = match rx.recv_timeout(IDLE_FOLD) {
            Ok(j) => j,
            Err(RecvTimeoutError::Timeout) => {
                if dirty {
                    dirty = false;
                    if let Err(e) = writer.fold_aggregates() {
                        tracing::warn!(error = %e, "cannot fold top hosts/sites");
                    }
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let started = Instant::now();
        let mut jobs = vec![first];
        while jobs.len() < GROUP_MAX {
            let left = GROUP_WINDOW.saturating_sub(started.elapsed());
            match rx.recv_timeout(left) {
                Ok(j) => jobs.push(j),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let shutdown = jobs.iter().any(|j| matches!(j, WriteJob::Shutdown));
        dirty |= jobs.iter().any(|j| matches!(j, WriteJob::Batch { .. }));
        write_group(writer, jobs);
        if shutdown {
            let _ = writer.fold_aggregates();
            return;
        }
    }
}

type AckSender = oneshot::Sender<Result<BatchOutcome, String>>;
/// One node's batches of a window: node, agency, strict sequence, batches,
/// who waits for each outcome.
type NodeGroup = (String, String, bool, Vec<Batch>, Vec<AckSender>);

fn write_group(writer: &mut dyn FlowWriter, jobs: Vec<WriteJob>) {
    // Group batches per node (one ingest transaction per node and window).
    let mut per_node: Vec<NodeGroup> = Vec::new();
    for job in jobs {
        match job {
            WriteJob::Batch {
                node_id,
                agency,
                strict_seq,
                batch,
                done,
            } => {
                match per_node
                    .iter_mut()
                    .find(|(n, a, st, _, _)| *n == node_id && *a == agency && *st == strict_seq)
                {
                    Some(g) => {
                        g.3.push(*batch);
                        g.4.push(done);
                    }
                    None => per_node.push((node_id, agency, strict_seq, vec![*batch], vec![done])),
                }
            }
            WriteJob::CloseInterim {
                node_id,
                boot_epoch,
            } => match writer.close_interim(&node_id, boot_epoch) {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(node = %node_id, flows = n, "flows left running by the node's previous boot closed (agent restart)")
                }
                Err(e) => {
                    tracing::warn!(node = %node_id, error = %e, "cannot close the previous boot's flows")
                }
            },
            WriteJob::Retention { now_secs } => {
                if let Err(e) = writer.apply_retention(at(now_secs)) {
                    tracing::warn!(error = %e, "retention failed");
                }
            }
            WriteJob::Shutdown => {}
        }
    }
    if per_node.is_empty() {
        return;
    }
    // Every node's batches of this window in one transaction: one fsync.
    let started = Instant::now();
    let groups: Vec<NodeBatches<'_>> = per_node
        .iter()
        .map(|(node_id, agency, strict_seq, batches, _)| NodeBatches {
            node_id,
            agency,
            strict_seq: *strict_seq,
            batches,
        })
        .collect();
    let batches: usize = per_node.iter().map(|g| g.3.len()).sum();
    let records: usize = per_node
        .iter()
        .flat_map(|g| g.3.iter())
        .map(|b| b.flows.len() + b.counters.len() + b.blocked.len())
        .sum();
    let blocked: usize = per_node
        .iter()
        .flat_map(|g| g.3.iter())
        .map(|b| b.blocked.len())
        .sum();
    match writer.ingest_many(&groups) {
        Ok(outcomes) => {
            metrics::counter!("simpul_ingest_batches_total").increment(batches as u64);
            metrics::counter!("simpul_ingest_records_total").increment(records as u64);
            metrics::counter!("simpul_ingest_blocked_records_total").increment(blocked as u64);
            metrics::histogram!("simpul_ingest_commit_seconds")
                .record(started.elapsed().as_secs_f64());
            let now = crate::state::now_secs();
            for ((node, agency, _, batches, dones), outs) in per_node.into_iter().zip(outcomes) {
                for ((done, outcome), batch) in dones.into_iter().zip(outs).zip(&batches) {
                    if matches!(outcome, BatchOutcome::Stored) {
                        crate::prom::figures::figures().stored(&agency, batch, now);
                    }
                    match outcome {
                        BatchOutcome::Duplicate => {
                            metrics::counter!("simpul_ingest_duplicate_batches_total").increment(1)
                        }
                        // What the agent could not keep (spool quota): seen
                        // per node, beside the incident its health raises.
                        BatchOutcome::Stored if batch.dropped_records > 0 => {
                            metrics::counter!("simpul_agent_dropped_records_total", "node" => node.clone())
                                .increment(batch.dropped_records);
                        }
                        _ => {}
                    }
                    let _ = done.send(Ok(outcome));
                }
            }
        }
        Err(e) => {
            metrics::counter!("simpul_ingest_errors_total").increment(1);
            tracing::error!(error = %e, "ingest transaction failed; batches not acknowledged");
            for (_, _, _, _, dones) in per_node {
                for done in dones {
                    let _ = done.send(Err(e.to_string()));
                }
            }
        }
    }
}
