//! Retention: what is old enough goes, in small batches, each its own short transaction on the
//! writer, so a sweep never holds the writer long enough to delay a provider's answer. Nothing
//! that is still pending is deleted: an event waiting for its plugin, the receipts and runs of
//! such an event, an unfinished job or its attempts. Each batch looks only at the oldest rows of
//! its table (rows are inserted in time order), so a sweep costs the same whatever the table's
//! size. Owns these statements; `Store::sweep` is the way in.

use std::time::Duration;

use sqlx::AssertSqlSafe;

use super::{Result, Store};

/// Rows deleted per statement, and oldest rows a statement looks at.
const BATCH: i64 = 500;
const WINDOW: i64 = 5_000;

/// How long things are kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Receipts, events, finished jobs, attempts, plugin runs.
    pub keep: Duration,
    /// Rejected receipts.
    pub keep_rejected: Duration,
}

/// What one sweep deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub receipts: u64,
    pub events: u64,
    pub jobs: u64,
    pub attempts: u64,
    pub plugin_runs: u64,
    pub bodies: u64,
}

impl Swept {
    pub fn total(&self) -> u64 {
        self.receipts + self.events + self.jobs + self.attempts + self.plugin_runs + self.bodies
    }
}

/// One delete: the table, its key, the columns its condition reads, and which of its oldest
/// rows may go (`$1` is the cutoff, `w` the row).
struct Rule<'a> {
    table: &'a str,
    key: &'a str,
    columns: &'a str,
    deletable: &'a str,
}

impl Store {
    /// Delete what `retention` no longer keeps, as of `now_ms` (passed in: tests move it).
    pub async fn sweep(&self, now_ms: i64, retention: Retention) -> Result<Swept> {
        let cutoff = now_ms - retention.keep.as_millis() as i64;
        let rejected_cutoff = now_ms - retention.keep_rejected.as_millis() as i64;
        let pending_event = "EXISTS (SELECT 1 FROM events e WHERE e.tenant_id = w.tenant_id AND e.id = w.event_id AND e.status = 'pending')";
        let runs = format!("w.ran_at < $1 AND NOT {pending_event}");
        let events = "w.created_at < $1 AND w.status != 'pending' AND NOT EXISTS (SELECT 1 FROM jobs j
             WHERE j.tenant_id = w.tenant_id AND j.event_id = w.id AND j.status IN ('pending', 'running'))";
        let receipts = format!("w.received_at < $1 AND (w.event_id IS NULL OR NOT {pending_event})");
        // In this order: what refers to an event goes before it; a shared body goes with its
        // event (whose jobs went first).
        let rules = [
            Rule {
                table: "delivery_attempts",
                key: "id",
                columns: "id, job_id, attempted_at",
                deletable: "w.attempted_at < $1
                    AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = w.job_id AND j.status IN ('pending', 'running'))",
            },
            Rule { table: "plugin_runs", key: "id", columns: "id, tenant_id, event_id, ran_at", deletable: &runs },
            Rule {
                table: "jobs",
                key: "id",
                columns: "id, status, updated_at",
                deletable: "w.status IN ('succeeded', 'failed', 'dead') AND w.updated_at < $1",
            },
            Rule { table: "events", key: "seq", columns: "seq, id, tenant_id, status, created_at", deletable: events },
            Rule {
                table: "receipts",
                key: "id",
                columns: "id, tenant_id, event_id, received_at",
                deletable: &receipts,
            },
            Rule {
                table: "bodies",
                key: "id",
                columns: "id, tenant_id, event_id",
                deletable: "$1 = $1
                    AND NOT EXISTS (SELECT 1 FROM events e WHERE e.tenant_id = w.tenant_id AND e.id = w.event_id)",
            },
        ];
        let mut n = [0u64; 6];
        for (i, rule) in rules.iter().enumerate() {
            n[i] = self.delete_old(rule, cutoff).await?;
        }
        let rejected = self.delete_rejected(rejected_cutoff).await?;
        Ok(Swept {
            attempts: n[0],
            plugin_runs: n[1],
            jobs: n[2],
            events: n[3],
            receipts: n[4] + rejected,
            bodies: n[5],
        })
    }

    /// Delete, batch by batch, the rows of `rule` among its table's oldest that may go.
    async fn delete_old(&self, rule: &Rule<'_>, cutoff: i64) -> Result<u64> {
        let sql = format!(
            "DELETE FROM {table} WHERE {key} IN (
                 SELECT w.{key} FROM (SELECT {columns} FROM {table} ORDER BY {key} LIMIT {WINDOW}) w
                 WHERE {deletable} LIMIT {BATCH})",
            table = rule.table,
            key = rule.key,
            columns = rule.columns,
            deletable = rule.deletable,
        );
        self.delete_batches(&sql, cutoff).await
    }

    /// Rejected receipts, by their own (shorter) retention: the oldest rejected first.
    async fn delete_rejected(&self, cutoff: i64) -> Result<u64> {
        let sql = format!(
            "DELETE FROM receipts WHERE id IN (
                 SELECT id FROM receipts WHERE verdict = 'rejected' AND received_at < $1 ORDER BY id LIMIT {BATCH})"
        );
        self.delete_batches(&sql, cutoff).await
    }

    async fn delete_batches(&self, sql: &str, cutoff: i64) -> Result<u64> {
        let mut total = 0;
        loop {
            let mut tx = self.begin(false).await?;
            let n = sqlx::query(AssertSqlSafe(sql.to_string())).bind(cutoff).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            total += n;
            if n < BATCH as u64 {
                return Ok(total);
            }
            // Let whatever waits for the writer go first.
            tokio::task::yield_now().await;
        }
    }
}
