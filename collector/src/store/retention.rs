//! Deleting expired rows, a bounded number per transaction.

use std::time::SystemTime;

use rusqlite::{params, TransactionBehavior};
use serde::Serialize;

use super::codec::{nanos, secs, time};
use super::ingest::CHUNK_BITS;
use super::query::AGENCIES_IN_USAGE;
use super::{
    StoreError, Writer, TOP_1M_RETENTION_SECS, USAGE_1H_RETENTION_SECS, USAGE_1M_RETENTION_SECS,
    USAGE_1S_RETENTION_SECS,
};

/// Rows deleted per transaction: small enough that a commit stays quick and
/// the WAL small, large enough that per-statement overhead does not matter.
const BATCH_ROWS: i64 = 10_000;

/// Used tokens, and unused ones past expiry, are kept this long for audit.
const TOKEN_RETENTION_NS: i64 = 30 * 86_400 * 1_000_000_000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetentionStats {
    pub flows: u64,
    pub blocked_attempts: u64,
    pub usage_1s: u64,
    pub usage_1m: u64,
    pub usage_1h: u64,
    pub usage_peak_1m: u64,
    pub usage_peak_1h: u64,
    pub top_hosts_1m: u64,
    pub top_sites_1m: u64,
    pub enrollment_tokens: u64,
}

impl Writer {
    /// Delete what is past its retention at `now`. Runs in many short
    /// transactions; call it every minute or so from the writer thread (after
    /// the first run only a minute's worth expires each time).
    pub fn apply_retention(&mut self, now: SystemTime) -> Result<RetentionStats, StoreError> {
        // Rows about to go must have reached the top-N tables first.
        self.fold_aggregates()?;
        let now_s = time(secs(now));
        let before = |keep: u64| now_s.saturating_sub(time(keep));
        let flow_keep_ns =
            i64::from(self.cfg.flow_retention_days).saturating_mul(86_400 * 1_000_000_000);
        let mut stats = RetentionStats {
            flows: self.delete_flows(nanos(now).saturating_sub(flow_keep_ns))?,
            blocked_attempts: self.delete_batched(
                "DELETE FROM blocked_attempts WHERE id IN
                     (SELECT id FROM blocked_attempts WHERE last_seen < ?1 LIMIT ?2)",
                nanos(now).saturating_sub(
                    i64::from(self.cfg.blocked_retention_days)
                        .saturating_mul(86_400 * 1_000_000_000),
                ),
            )?,
            top_hosts_1m: self.delete_batched(
                "DELETE FROM top_hosts_1m WHERE (minute, agency, unit, host) IN
                     (SELECT minute, agency, unit, host FROM top_hosts_1m
                      WHERE minute < ?1 LIMIT ?2)",
                before(TOP_1M_RETENTION_SECS),
            )?,
            top_sites_1m: self.delete_batched(
                "DELETE FROM top_sites_1m WHERE (minute, agency, site) IN
                     (SELECT minute, agency, site FROM top_sites_1m
                      WHERE minute < ?1 LIMIT ?2)",
                before(TOP_1M_RETENTION_SECS),
            )?,
            enrollment_tokens: self.delete_batched(
                "DELETE FROM enrollment_tokens WHERE token_sha256 IN
                     (SELECT token_sha256 FROM enrollment_tokens
                      WHERE coalesce(used_at, expires_at) < ?1 LIMIT ?2)",
                nanos(now).saturating_sub(TOKEN_RETENTION_NS),
            )?,
            ..RetentionStats::default()
        };
        // The peaks go with the byte rollups of the same step.
        for (table, keep, n) in [
            ("usage_1s", USAGE_1S_RETENTION_SECS, &mut stats.usage_1s),
            ("usage_1m", USAGE_1M_RETENTION_SECS, &mut stats.usage_1m),
            ("usage_1h", USAGE_1H_RETENTION_SECS, &mut stats.usage_1h),
            (
                "usage_peak_1m",
                USAGE_1M_RETENTION_SECS,
                &mut stats.usage_peak_1m,
            ),
            (
                "usage_peak_1h",
                USAGE_1H_RETENTION_SECS,
                &mut stats.usage_peak_1h,
            ),
        ] {
            *n = self.delete_usage(table, before(keep))?;
        }
        // Cheap when nothing changed; keeps the planner's statistics current
        // as tables grow (SQLite's recommendation for long-lived connections).
        self.conn.execute_batch("PRAGMA optimize")?;
        Ok(stats)
    }

    /// Flows go by whole chunks once the newest row of the chunk is past the
    /// cutoff: a chunk is a contiguous id range, so this is a sequential
    /// delete. Rows can thus outlive the cutoff by as long as their chunk's
    /// newer rows do (a chunk is 16384 flows of one agency).
    fn delete_flows(&mut self, cutoff_ns: i64) -> Result<u64, StoreError> {
        let chunks: Vec<i64> = {
            let mut st = self.conn.prepare_cached(
                "SELECT chunk FROM flow_chunks WHERE max_last_seen < ?1 ORDER BY chunk",
            )?;
            let rows = st.query_map([cutoff_ns], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut total = 0u64;
        for chunk in chunks {
            let first = chunk << CHUNK_BITS;
            let end = (chunk + 1) << CHUNK_BITS;
            let mut lo = first;
            while lo < end {
                let hi = (lo + BATCH_ROWS).min(end);
                let tx = self
                    .conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)?;
                let n = tx
                    .prepare_cached("DELETE FROM flows WHERE id >= ?1 AND id < ?2")?
                    .execute(params![lo, hi])?;
                if hi == end {
                    self.terms.forget(chunk);
                    tx.prepare_cached("DELETE FROM flow_terms WHERE chunk = ?1")?
                        .execute([chunk])?;
                    tx.prepare_cached("DELETE FROM flow_chunks WHERE chunk = ?1")?
                        .execute([chunk])?;
                }
                tx.commit()?;
                total += n as u64;
                lo = hi;
            }
        }
        Ok(total)
    }

    /// Run `sql` (parameters: cutoff, row limit) until it deletes nothing.
    fn delete_batched(&mut self, sql: &str, cutoff: i64) -> Result<u64, StoreError> {
        let mut total = 0u64;
        loop {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx
                .prepare_cached(sql)?
                .execute(params![cutoff, BATCH_ROWS])?;
            tx.commit()?;
            total += n as u64;
            if (n as i64) < BATCH_ROWS {
                return Ok(total);
            }
        }
    }

    /// Usage tables lead with agency, so "ts < cutoff" is one range per
    /// agency; a full-table scan per minute would cost far more.
    fn delete_usage(&mut self, table: &str, cutoff: i64) -> Result<u64, StoreError> {
        let agencies: Vec<String> = {
            let mut st = self
                .conn
                .prepare_cached(&AGENCIES_IN_USAGE.replace("{table}", table))?;
            let rows = st.query_map([], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let key = if table.starts_with("usage_peak") {
            "agency, ts"
        } else {
            "agency, ts, unit, scope"
        };
        let sql = format!(
            "DELETE FROM {table} WHERE ({key}) IN
                 (SELECT {key} FROM {table}
                  WHERE agency = ?3 AND ts < ?1 LIMIT ?2)"
        );
        let mut total = 0u64;
        for agency in agencies {
            loop {
                let tx = self
                    .conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)?;
                let n = tx
                    .prepare_cached(&sql)?
                    .execute(params![cutoff, BATCH_ROWS, agency])?;
                tx.commit()?;
                total += n as u64;
                if (n as i64) < BATCH_ROWS {
                    break;
                }
            }
        }
        Ok(total)
    }
}
