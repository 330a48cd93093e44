//! # Work queue
//!
//! In: a queued job's work from its planner (files to embed, files to delete); claims,
//! heartbeats and fenced writes from `ingest worker` processes. Out: `work_items` rows, each
//! leased to one worker at a time, and the `workers` registry that `ingest status` shows.
//!
//! PostgreSQL is the queue (the pattern of pgmq and apalis): a claim takes a few items with
//! `FOR UPDATE SKIP LOCKED` in one short statement and leases them (`owner`, `lease_until`,
//! `attempts + 1`); heartbeats extend the leases of live workers; an item whose lease ran out
//! is claimed again by whoever asks next. A worker's catalog writes go through its
//! collection's catalog [fenced](CollectionCatalog::fenced) by its [`Fence`]: each write of a
//! file's row happens only in a transaction that finds the item still leased to this worker
//! at this attempt (and locks it), so a worker that stalled past its lease cannot overwrite
//! the work of the one that took over. That worker learns what it lost at its next heartbeat
//! (or write), and its fence lets go of it. Times are the database's own clock, in
//! milliseconds since the epoch.
//!
//! A queue is a collection's: planners queue, and workers look for work and register, through
//! the [`CollectionCatalog`]; claims, heartbeats and a job's queue depth go by job and worker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use sqlx::Row;

use super::{Catalog, CollectionCatalog, JobStatus, KnownFile};

/// The database's clock in milliseconds since the epoch, in SQL.
const NOW_MS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

/// The channel `NOTIFY` wakes idle workers on; the payload is the collection.
pub const WORK_CHANNEL: &str = "ingest_work";

/// Items a planner inserts per statement.
const ITEMS_PER_INSERT: usize = 500;

/// Workers heard from within this long count as live, in `ingest status` and in a waiting
/// planner's reports. A worker heartbeats every third of its lease: every 20 s at the
/// default lease, so a live worker is heard from many times within it.
const LIVE_WORKER_WINDOW: Duration = Duration::from_secs(180);

/// What a work item asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkKind {
    /// Read, extract, chunk, embed and write the file's points.
    Embed,
    /// Delete the points of a file that is gone.
    Delete,
}

/// Where a work item stands: `pending → leased → done`, or `parked` after its lease ran out
/// `max_retries` times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemState {
    Pending,
    Leased,
    Done,
    Parked,
}

text_enum!(WorkKind { Embed => "embed", Delete => "delete" });
text_enum!(ItemState { Pending => "pending", Leased => "leased", Done => "done", Parked => "parked" });

/// One item a worker holds: which, at which attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub job_id: String,
    pub seq: i64,
    pub path: String,
    /// The extension the planner's walk judged the file by.
    pub extension: String,
    pub kind: WorkKind,
    pub attempt: i64,
}

/// One piece of a queued job's work, as its planner records it.
#[derive(Debug, Clone)]
pub struct WorkItem {
    pub path: String,
    pub extension: String,
    pub kind: WorkKind,
}

/// A worker's identity and the items it holds, by path. A catalog fenced by it writes only
/// the rows of files whose item the worker still holds. A claim leaves the fence when its
/// item is finished, or as soon as the worker learns the item is no longer its own (at a
/// fenced write, or at a [heartbeat](Catalog::heartbeat)); lost claims are kept for the
/// worker's report.
#[derive(Debug)]
pub struct Fence {
    pub owner: String,
    holdings: Mutex<Holdings>,
    /// Claims lost since the fence was made, reported or not.
    lost_so_far: std::sync::atomic::AtomicU64,
}

/// What a [`Fence`] knows of its worker's claims.
#[derive(Debug, Default)]
struct Holdings {
    /// Claims held, by path.
    held: HashMap<String, Claim>,
    /// Claims lost to another worker (or parked) before they were finished, not yet reported.
    lost: Vec<Claim>,
}

impl Fence {
    pub fn new(owner: String) -> Self {
        Self { owner, holdings: Mutex::new(Holdings::default()), lost_so_far: Default::default() }
    }

    fn holdings(&self) -> std::sync::MutexGuard<'_, Holdings> {
        self.holdings.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes these claims into the fence.
    pub fn hold(&self, claims: &[Claim]) {
        self.holdings().held.extend(claims.iter().map(|c| (c.path.clone(), c.clone())));
    }

    fn claim_of(&self, path: &str) -> Option<Claim> {
        self.holdings().held.get(path).cloned()
    }

    /// The claims held now.
    fn held_claims(&self) -> Vec<Claim> {
        self.holdings().held.values().cloned().collect()
    }

    /// Whether the worker still holds `path`'s item, as far as it knows.
    pub fn holds(&self, path: &str) -> bool {
        self.holdings().held.contains_key(path)
    }

    /// Forgets the claims of these paths: their items are done.
    pub fn forget(&self, paths: &[String]) {
        let mut holdings = self.holdings();
        for path in paths {
            holdings.held.remove(path);
        }
    }

    /// Lets go of these claims, found to be no longer the worker's, and keeps them for its
    /// report. A claim the fence no longer holds (finished, or already lost) is passed over.
    fn lose(&self, claims: &[Claim]) {
        let mut holdings = self.holdings();
        for claim in claims {
            if holdings.held.get(&claim.path) == Some(claim) {
                holdings.held.remove(&claim.path);
                holdings.lost.push(claim.clone());
                self.lost_so_far.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// The paths of `job_id`'s items the worker lost since it was last asked, in queue order.
    pub fn take_lost(&self, job_id: &str) -> Vec<String> {
        let mut holdings = self.holdings();
        let (mut of_job, others): (Vec<Claim>, Vec<Claim>) =
            std::mem::take(&mut holdings.lost).into_iter().partition(|c| c.job_id == job_id);
        holdings.lost = others;
        of_job.sort_by_key(|c| c.seq);
        of_job.into_iter().map(|c| c.path).collect()
    }

    /// How many claims the worker has lost since the fence was made.
    pub fn lost_so_far(&self) -> u64 {
        self.lost_so_far.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many items the worker holds.
    pub fn held(&self) -> usize {
        self.holdings().held.len()
    }
}

/// A queued job's items by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueDepth {
    pub pending: i64,
    pub leased: i64,
    pub done: i64,
    pub parked: i64,
}

impl QueueDepth {
    /// Items not yet done or parked.
    pub fn open(&self) -> i64 {
        self.pending + self.leased
    }
}

/// A worker as the registry knows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkerRow {
    pub id: String,
    pub host: String,
    pub pid: i64,
    pub started_at: String,
    pub items_done: i64,
    /// Seconds since its last heartbeat, by the database's clock.
    pub silent_seconds: f64,
}

/// An item parked because its lease ran out too often.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ParkedItem {
    pub path: String,
    pub reason: String,
}

impl CollectionCatalog {
    /// The same catalog, writing file rows only where `fence`'s worker still holds their
    /// items (see the module doc).
    pub fn fenced(&self, fence: Arc<Fence>) -> Self {
        let catalog = Catalog { fence: Some(fence), ..self.catalog.clone() };
        Self { catalog, name: self.name.clone() }
    }

    /// Records a queued job's work, then wakes idle workers.
    pub async fn enqueue(&self, job_id: &str, items: &[WorkItem]) -> Result<()> {
        self.require_postgres()?;
        self.retrying(|| async {
            let mut tx = self.pool.begin().await.context("starting a catalog transaction")?;
            sqlx::query("UPDATE jobs SET queued = 1 WHERE id = $1")
                .bind(job_id)
                .execute(&mut *tx)
                .await
                .context("marking the job queued")?;
            for (batch_number, batch) in items.chunks(ITEMS_PER_INSERT).enumerate() {
                let rows: Vec<String> = (0..batch.len())
                    .map(|i| {
                        let n = 4 * i + 3;
                        format!("($1, ${n}, $2, ${}, ${}, ${}, 'pending')", n + 1, n + 2, n + 3)
                    })
                    .collect();
                let sql = format!(
                    "INSERT INTO work_items (job_id, seq, collection, path, extension, kind, state) VALUES {}",
                    rows.join(", ")
                );
                let mut query = sqlx::query(&sql).bind(job_id).bind(&self.name);
                for (i, item) in batch.iter().enumerate() {
                    query = query
                        .bind((batch_number * ITEMS_PER_INSERT + i) as i64)
                        .bind(&item.path)
                        .bind(&item.extension)
                        .bind(item.kind.as_str());
                }
                query.execute(&mut *tx).await.context("queueing work items")?;
            }
            notify_workers(&mut tx, &self.name).await?;
            tx.commit().await.context("committing the job's work items")?;
            Ok(())
        })
        .await
    }

    /// Wakes the collection's idle workers, to look again for work or for the queue's end.
    pub async fn wake_workers(&self) -> Result<()> {
        self.require_postgres()?;
        self.retrying(|| async {
            let mut connection = self.pool.acquire().await.context("connecting to wake the workers")?;
            notify_workers(&mut connection, &self.name).await
        })
        .await
    }

    /// The collection's oldest queued job that has work to claim now.
    pub async fn job_with_work(&self) -> Result<Option<String>> {
        self.require_postgres()?;
        self.retrying(|| async {
            sqlx::query_scalar(&format!(
                "SELECT j.id FROM jobs j WHERE j.collection = $1 AND j.queued = 1 AND j.status = $2
                    AND EXISTS (SELECT 1 FROM work_items w WHERE w.job_id = j.id
                        AND (w.state = 'pending' OR (w.state = 'leased' AND w.lease_until < {NOW_MS})))
                 ORDER BY j.created_at LIMIT 1"
            ))
            .bind(&self.name)
            .bind(JobStatus::Processing.as_str())
            .fetch_optional(&self.pool)
            .await
            .context("looking for queued work")
        })
        .await
    }

    /// The collection's queued jobs still `processing` whose every item is done or parked:
    /// their end-of-job steps are due.
    pub async fn queued_jobs_to_end(&self) -> Result<Vec<String>> {
        self.require_postgres()?;
        self.retrying(|| async {
            sqlx::query_scalar(
                "SELECT j.id FROM jobs j WHERE j.collection = $1 AND j.queued = 1 AND j.status = $2
                    AND NOT EXISTS (SELECT 1 FROM work_items w WHERE w.job_id = j.id AND w.state IN ('pending', 'leased'))
                 ORDER BY j.created_at",
            )
            .bind(&self.name)
            .bind(JobStatus::Processing.as_str())
            .fetch_all(&self.pool)
            .await
            .context("looking for queued jobs to end")
        })
        .await
    }

    /// Items of the collection's running queued jobs not yet done, and how long until the
    /// first lease held by a worker runs out (`None` when none is leased). None, on the
    /// embedded catalog.
    pub async fn open_work(&self) -> Result<(i64, Option<Duration>)> {
        if !self.is_postgres {
            return Ok((0, None));
        }
        self.retrying(|| async {
            let row = sqlx::query(&format!(
                "SELECT CAST(COUNT(*) AS BIGINT) AS open,
                    MIN(CASE WHEN w.state = 'leased' THEN w.lease_until - {NOW_MS} END) AS first_expiry
                 FROM work_items w JOIN jobs j ON j.id = w.job_id
                 WHERE w.collection = $1 AND j.status = $2 AND w.state IN ('pending', 'leased')"
            ))
            .bind(&self.name)
            .bind(JobStatus::Processing.as_str())
            .fetch_one(&self.pool)
            .await
            .context("counting open work")?;
            let expiry: Option<i64> = row.try_get("first_expiry")?;
            Ok((row.try_get("open")?, expiry.map(|ms| Duration::from_millis(ms.max(0) as u64))))
        })
        .await
    }

    /// Adds the fence's worker to the registry.
    pub async fn register_worker(&self, host: &str) -> Result<()> {
        self.require_postgres()?;
        let Some(fence) = &self.fence else { bail!("registering a worker needs a fenced catalog") };
        self.retrying(|| async {
            sqlx::query(&format!(
                "INSERT INTO workers (id, collection, host, pid, started_at, last_heartbeat)
                 VALUES ($1, $2, $3, $4, $5, {NOW_MS})"
            ))
            .bind(&fence.owner)
            .bind(&self.name)
            .bind(host)
            .bind(std::process::id() as i64)
            .bind(super::now())
            .execute(&self.pool)
            .await
            .context("registering the worker")?;
            Ok(())
        })
        .await
    }

    /// The collection's workers that have not stopped and were heard from within
    /// [`LIVE_WORKER_WINDOW`], latest first.
    pub async fn live_workers(&self) -> Result<Vec<WorkerRow>> {
        if !self.is_postgres {
            return Ok(Vec::new());
        }
        self.retrying(|| async {
            let rows = sqlx::query(&format!(
                "SELECT id, host, pid, started_at, items_done, ({NOW_MS} - last_heartbeat) AS silent_ms FROM workers
                 WHERE collection = $1 AND stopped = 0 AND last_heartbeat > {NOW_MS} - $2 ORDER BY started_at DESC"
            ))
            .bind(&self.name)
            .bind(LIVE_WORKER_WINDOW.as_millis() as i64)
            .fetch_all(&self.pool)
            .await
            .context("listing workers")?;
            rows.iter()
                .map(|row| {
                    Ok(WorkerRow {
                        id: row.try_get("id")?,
                        host: row.try_get("host")?,
                        pid: row.try_get("pid")?,
                        started_at: row.try_get("started_at")?,
                        items_done: row.try_get("items_done")?,
                        silent_seconds: row.try_get::<i64, _>("silent_ms")? as f64 / 1000.0,
                    })
                })
                .collect()
        })
        .await
    }

    /// What a worker needs of the rows of these paths (see [`KnownFile`]), where they exist.
    pub async fn known_files_at(&self, paths: &[String]) -> Result<HashMap<String, KnownFile>> {
        let rows = self.known_files_where("path", paths).await?;
        Ok(rows.into_iter().map(|f| (f.path.clone(), f)).collect())
    }
}

impl Catalog {
    pub(super) fn require_postgres(&self) -> Result<()> {
        if !self.is_postgres {
            bail!(
                "workers share a job through PostgreSQL; the embedded catalog runs every job in one process, so give --database-url"
            );
        }
        Ok(())
    }

    /// Whether this catalog may write `path`'s row, inside the write's transaction: always
    /// without a fence; with one, when its worker still holds the path's item at the same
    /// attempt (the row lock taken here keeps a reclaim out until the transaction ends).
    /// `finish` also marks the item done; a retried transaction whose first commit went
    /// through finds it done by this very claim, and still holds it. A claim found lost
    /// leaves the fence: a lease taken over never comes back to the same attempt.
    pub(super) async fn holds(&self, tx: &mut sqlx::AnyConnection, path: &str, finish: bool) -> Result<bool> {
        let Some(fence) = &self.fence else { return Ok(true) };
        let Some(claim) = fence.claim_of(path) else { return Ok(false) };
        let updated = sqlx::query(
            "UPDATE work_items SET state = CASE WHEN $1 = 1 THEN 'done' ELSE state END
             WHERE job_id = $2 AND seq = $3 AND owner = $4 AND attempts = $5
                AND (state = 'leased' OR (state = 'done' AND $1 = 1))",
        )
        .bind(finish as i64)
        .bind(&claim.job_id)
        .bind(claim.seq)
        .bind(&fence.owner)
        .bind(claim.attempt)
        .execute(&mut *tx)
        .await
        .with_context(|| format!("checking the lease on {path}"))?
        .rows_affected();
        if updated == 0 {
            fence.lose(&[claim]);
        }
        Ok(updated == 1)
    }

    /// Whether the fence's worker has learnt that `path`'s item is no longer its own (never,
    /// without a fence): its work on the file can be dropped.
    pub fn lease_known_lost(&self, path: &str) -> bool {
        self.fence.as_ref().is_some_and(|fence| !fence.holds(path))
    }

    /// Of `paths`, those whose items the fence's worker no longer holds (none without a
    /// fence): checked before a write to the store that another worker's could undo.
    pub async fn lost_leases(&self, paths: &[String]) -> Result<Vec<String>> {
        if self.fence.is_none() {
            return Ok(Vec::new());
        }
        self.retrying(|| async {
            let mut tx = self.pool.begin().await.context("starting a catalog transaction")?;
            let mut lost = Vec::new();
            for path in paths {
                if !self.holds(&mut tx, path, false).await? {
                    lost.push(path.clone());
                }
            }
            tx.commit().await.context("checking leases")?;
            Ok(lost)
        })
        .await
    }

    /// Forgets the fence's claims of these paths, once their items are finished or lost.
    pub(super) fn forget_claims(&self, paths: &[String]) {
        if let Some(fence) = &self.fence {
            fence.forget(paths);
        }
    }

    /// Leases up to `limit` of `job_id`'s items to the fence's worker for `lease`: pending
    /// ones, and those whose lease ran out. Items whose lease already ran out `max_attempts`
    /// times are parked instead, with the reason. The claims are held by the fence.
    pub async fn claim(&self, job_id: &str, limit: usize, lease: Duration, max_attempts: i64) -> Result<Vec<Claim>> {
        self.require_postgres()?;
        let Some(fence) = &self.fence else { bail!("claiming work needs a fenced catalog") };
        let lease_ms = lease.as_millis() as i64;
        let mut claims = self
            .retrying(|| async {
                let mut tx = self.pool.begin().await.context("starting a catalog transaction")?;
                sqlx::query(&format!(
                    "UPDATE work_items SET state = 'parked', owner = NULL,
                        error = 'claimed ' || CASE WHEN attempts = 1 THEN 'once' ELSE attempts || ' times' END
                            || ', and the lease ran out each time: the workers that took it stopped or stalled'
                     WHERE job_id = $1 AND state = 'leased' AND lease_until < {NOW_MS} AND attempts >= $2"
                ))
                .bind(job_id)
                .bind(max_attempts)
                .execute(&mut *tx)
                .await
                .context("parking abandoned work items")?;
                let rows = sqlx::query(&format!(
                    "WITH c AS (
                        SELECT job_id, seq FROM work_items
                        WHERE job_id = $1 AND (state = 'pending' OR (state = 'leased' AND lease_until < {NOW_MS}))
                        ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED)
                     UPDATE work_items w SET state = 'leased', owner = $3, lease_until = {NOW_MS} + $4,
                        attempts = w.attempts + 1
                     FROM c WHERE w.job_id = c.job_id AND w.seq = c.seq
                     RETURNING w.seq, w.path, w.extension, w.kind, w.attempts"
                ))
                .bind(job_id)
                .bind(limit as i64)
                .bind(&fence.owner)
                .bind(lease_ms)
                .fetch_all(&mut *tx)
                .await
                .context("claiming work items")?;
                tx.commit().await.context("committing the claim")?;
                rows.iter()
                    .map(|row| {
                        Ok(Claim {
                            job_id: job_id.to_string(),
                            seq: row.try_get("seq")?,
                            path: row.try_get("path")?,
                            extension: row.try_get("extension")?,
                            kind: row.try_get::<String, _>("kind")?.parse()?,
                            attempt: row.try_get("attempts")?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .await?;
        claims.sort_by_key(|c| c.seq);
        fence.hold(&claims);
        Ok(claims)
    }

    /// Extends the leases the fence's worker holds by `lease`, and its registry heartbeat;
    /// then lets go of the claims whose items are no longer its own (their lease ran out and
    /// another worker took them, or they were parked), so that the worker drops their work
    /// and claims more. Returns the paths of the claims it let go of.
    pub async fn heartbeat(&self, lease: Duration, items_done: i64) -> Result<Vec<String>> {
        let Some(fence) = &self.fence else { bail!("a heartbeat needs a fenced catalog") };
        let lease_ms = lease.as_millis() as i64;
        // Taken before the check: a claim made meanwhile is not judged by a check that
        // could not see it.
        let held = fence.held_claims();
        let lost = self
            .retrying(|| async {
                sqlx::query(&format!(
                    "UPDATE work_items SET lease_until = {NOW_MS} + $1 WHERE owner = $2 AND state = 'leased'"
                ))
                .bind(lease_ms)
                .bind(&fence.owner)
                .execute(&self.pool)
                .await
                .context("extending leases")?;
                sqlx::query(&format!("UPDATE workers SET last_heartbeat = {NOW_MS}, items_done = $1 WHERE id = $2"))
                    .bind(items_done)
                    .bind(&fence.owner)
                    .execute(&self.pool)
                    .await
                    .context("recording the worker's heartbeat")?;
                self.claims_lost(&fence.owner, &held).await
            })
            .await?;
        fence.lose(&lost);
        Ok(lost.into_iter().map(|c| c.path).collect())
    }

    /// Of `claims` (a worker's few), those whose items are no longer leased to `owner` at
    /// their attempt, nor done by it.
    async fn claims_lost(&self, owner: &str, claims: &[Claim]) -> Result<Vec<Claim>> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<String> = (0..claims.len())
            .map(|i| {
                let n = 3 * i + 2;
                format!("(CAST(${n} AS TEXT), CAST(${} AS BIGINT), CAST(${} AS BIGINT))", n + 1, n + 2)
            })
            .collect();
        let sql = format!(
            "SELECT c.job_id, c.seq FROM (VALUES {}) AS c (job_id, seq, attempts)
             WHERE NOT EXISTS (SELECT 1 FROM work_items w WHERE w.job_id = c.job_id AND w.seq = c.seq
                AND w.owner = $1 AND w.attempts = c.attempts AND w.state IN ('leased', 'done'))",
            rows.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(owner);
        for claim in claims {
            query = query.bind(&claim.job_id).bind(claim.seq).bind(claim.attempt);
        }
        let found = query.fetch_all(&self.pool).await.context("checking the worker's leases")?;
        let mut lost = Vec::with_capacity(found.len());
        for row in found {
            let (job_id, seq): (String, i64) = (row.try_get("job_id")?, row.try_get("seq")?);
            lost.extend(claims.iter().filter(|c| c.job_id == job_id && c.seq == seq).cloned());
        }
        Ok(lost)
    }

    /// Hands back the fence's unfinished items, for others to claim at once, keeping their
    /// attempt counts.
    pub async fn release_claims(&self) -> Result<()> {
        let Some(fence) = &self.fence else { return Ok(()) };
        self.retrying(|| async {
            sqlx::query("UPDATE work_items SET state = 'pending', owner = NULL WHERE owner = $1 AND state = 'leased'")
                .bind(&fence.owner)
                .execute(&self.pool)
                .await
                .context("handing back work items")?;
            Ok(())
        })
        .await?;
        fence.holdings().held.clear();
        Ok(())
    }

    /// Marks the fence's worker stopped in the registry.
    pub async fn unregister_worker(&self, items_done: i64) -> Result<()> {
        let Some(fence) = &self.fence else { return Ok(()) };
        self.retrying(|| async {
            sqlx::query("UPDATE workers SET stopped = 1, items_done = $1 WHERE id = $2")
                .bind(items_done)
                .bind(&fence.owner)
                .execute(&self.pool)
                .await
                .context("recording the worker's stop")?;
            Ok(())
        })
        .await
    }

    /// A job's items by state (all zero for a job that was not queued).
    pub async fn queue_depth(&self, job_id: &str) -> Result<QueueDepth> {
        self.retrying(|| async {
            let rows = sqlx::query(
                "SELECT state, CAST(COUNT(*) AS BIGINT) AS n FROM work_items WHERE job_id = $1 GROUP BY state",
            )
            .bind(job_id)
            .fetch_all(&self.pool)
            .await
            .context("counting work items")?;
            let mut depth = QueueDepth::default();
            for row in rows {
                let n: i64 = row.try_get("n")?;
                match row.try_get::<String, _>("state")?.parse()? {
                    ItemState::Pending => depth.pending = n,
                    ItemState::Leased => depth.leased = n,
                    ItemState::Done => depth.done = n,
                    ItemState::Parked => depth.parked = n,
                }
            }
            Ok(depth)
        })
        .await
    }

    /// A job's parked items, with their reasons.
    pub async fn parked_items(&self, job_id: &str) -> Result<Vec<ParkedItem>> {
        self.retrying(|| async {
            let rows =
                sqlx::query("SELECT path, error FROM work_items WHERE job_id = $1 AND state = 'parked' ORDER BY seq")
                    .bind(job_id)
                    .fetch_all(&self.pool)
                    .await
                    .context("listing parked work items")?;
            rows.iter()
                .map(|row| {
                    Ok(ParkedItem {
                        path: row.try_get("path")?,
                        reason: row.try_get::<Option<String>, _>("error")?.unwrap_or_default(),
                    })
                })
                .collect()
        })
        .await
    }
}

/// `NOTIFY`, delivered when the enclosing transaction (if any) commits.
async fn notify_workers(connection: &mut sqlx::AnyConnection, collection: &str) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(WORK_CHANNEL)
        .bind(collection)
        .execute(&mut *connection)
        .await
        .context("waking the workers")?;
    Ok(())
}
