//! # Worker
//!
//! In: a PostgreSQL catalog and a Qdrant server shared with other workers, the files at the
//! paths the planner walked (a shared filesystem), and this machine's model. Out: queued jobs'
//! work done, a few leased items at a time: each claimed file read, extracted, chunked,
//! embedded, written to a parquet part of this worker's own, upserted, and completed in the
//! catalog only while its lease holds (see [`crate::catalog::Fence`]); and each job's
//! end-of-job steps, run once by whichever process sees its last item done
//! ([`end_queued_job`]). The extract → embed → commit stages are the single-process run's;
//! only their source differs: claims instead of a walk.
//!
//! A worker follows the work, not the process: before each claim it reads the collection's
//! generations again ([`Generations`]) and takes the generation, and the model, of the job
//! it claims: the live one first, then those built beside it. A worker that runs for days
//! keeps working across switches, rollbacks and builds.
//!
//! A worker sleeps on `LISTEN` while there is nothing to claim, and heartbeats while it runs,
//! extending its leases. Killed, it loses at most the items it holds, which others claim once
//! their leases run out; an item whose lease ran out `max_attempts` times is parked. Stalled
//! past its lease and resumed, it learns at its next heartbeat (a third of a lease away)
//! which items others took: it drops their work, claims again, and reports them as lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use super::{facts_of, FailedFile, JobReport, JobSettings, LogicFingerprint, Outcome, RunStatus, Stages, ToExtract};
use crate::catalog::{
    CollectionCatalog, Fence, FileStatus, JobCounters, JobRow, JobStatus, PreviousRow, WorkKind, WORK_CHANNEL,
};
use crate::embed::Embedder;
use crate::hash;
use crate::metrics::{WatchedGeneration, WorkerMetrics};
use crate::model::ModelInfo;
use crate::parquet_copy::ParquetCopy;
use crate::progress::Counters;
use crate::scan::{self, FileEntry};
use crate::store::VectorIndex;

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// How long a claim is held without a heartbeat.
    pub lease: Duration,
    /// Exit once no queued job of the collection has open work, instead of waiting for more.
    pub once: bool,
    /// Claims of one item before it is parked: a lease that keeps running out means the
    /// item stops its workers.
    pub max_attempts: i64,
    /// Model threads.
    pub threads: usize,
}

/// What a worker did.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerReport {
    pub worker: String,
    pub host: String,
    /// What it did on each job it worked on.
    pub jobs: Vec<JobReport>,
    /// The jobs whose end-of-job steps it ran.
    pub ended_jobs: Vec<String>,
    pub elapsed_seconds: f64,
    pub error: Option<String>,
}

/// Items claimed per statement.
const CLAIM_BATCH: usize = 4;

/// The most items a worker holds at once: enough to keep its model fed, few enough that
/// the end of a job is shared out and a killed worker loses little.
const HELD_AT_MOST: usize = 16;

/// This machine's name, as the worker registry shows it.
pub fn host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length, and gethostname writes at most that.
    let status = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    if status == 0 && end > 0 {
        String::from_utf8_lossy(&buffer[..end]).into_owned()
    } else {
        "unknown-host".into()
    }
}

/// One generation of the collection, as a worker works on it: its catalog rows, its store
/// collection, its parquet copy, and its model, or why this machine cannot run it.
pub struct GenerationParts {
    pub number: i64,
    pub catalog: CollectionCatalog,
    pub index: Arc<dyn VectorIndex>,
    pub parquet: ParquetCopy,
    pub model: std::result::Result<ModelInfo, String>,
}

/// Where a worker finds its work: the collection's generations as they are now.
#[async_trait::async_trait]
pub trait Generations: Send + Sync {
    /// The collection's generations, in the order a worker looks in them for work: the live
    /// one first, then those built beside it, newest first.
    async fn current(&self) -> Result<Vec<Arc<GenerationParts>>>;
}

/// Everything a worker works with.
pub struct WorkerParts<'a> {
    /// The catalog bound to the collection's name, whose lock workers share against runs,
    /// and where workers register.
    pub named: &'a CollectionCatalog,
    /// The collection's generations, read again before each claim.
    pub generations: &'a dyn Generations,
    /// The database URL, for the `LISTEN` connection.
    pub database_url: &'a str,
    /// The settings of a job on this machine, from its row (its directory, chunking).
    pub job_settings: &'a dyn Fn(&JobRow) -> Result<JobSettings>,
    /// Where the worker's metrics are read from, when they are served.
    pub metrics: Option<Arc<WorkerMetrics>>,
}

/// Runs a worker until it is cancelled, or (with `once`) the collection's queue is empty.
pub async fn run_worker(
    parts: WorkerParts<'_>,
    settings: &WorkerSettings,
    cancel: Arc<AtomicBool>,
    quiet: bool,
) -> Result<WorkerReport> {
    let started = Instant::now();
    let host = host_name();
    let worker = format!("{host}-{}-{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let fence = Arc::new(Fence::new(worker.clone()));
    let fenced = parts.named.fenced(fence.clone());
    if let Some(metrics) = &parts.metrics {
        metrics.watch_fence(fence.clone());
    }
    let mut listener = sqlx::postgres::PgListener::connect(parts.database_url)
        .await
        .context("connecting to PostgreSQL to listen for work")?;
    listener.listen(WORK_CHANNEL).await.context("listening for work")?;
    fenced.register_worker(&host).await?;
    let items_done = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let heartbeat = {
        let (fenced, lease, items_done) = (fenced.clone(), settings.lease, items_done.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                match fenced.heartbeat(lease, items_done.load(Ordering::Relaxed)).await {
                    Ok(lost) if !lost.is_empty() && !quiet => eprintln!(
                        "ingest worker: {} items were taken over by other workers after this worker's lease on them \
                         ran out; dropping its work on them",
                        lost.len()
                    ),
                    Ok(_) => {}
                    Err(error) => eprintln!("ingest worker: heartbeat failed ({error:#}); retrying"),
                }
            }
        })
    };
    let mut report = WorkerReport {
        worker: worker.clone(),
        host,
        jobs: Vec::new(),
        ended_jobs: Vec::new(),
        elapsed_seconds: 0.0,
        error: None,
    };
    let outcome = async {
        while !cancel.load(Ordering::SeqCst) {
            let generations = parts.generations.current().await?;
            if let Some(metrics) = &parts.metrics {
                let watched = generations
                    .iter()
                    .map(|g| WatchedGeneration { number: g.number, catalog: g.catalog.clone() })
                    .collect();
                let clocks = std::iter::once(parts.named.outage_clock().clone())
                    .chain(generations.iter().filter_map(|g| g.index.outage_clock()))
                    .collect();
                metrics.watch_generations(watched, clocks);
            }
            for generation in &generations {
                for job_id in generation.catalog.queued_jobs_to_end().await? {
                    let (catalog, index, parquet) =
                        (&generation.catalog, generation.index.as_ref(), &generation.parquet);
                    if end_queued_job(catalog, index, parquet, &job_id).await? {
                        report.ended_jobs.push(job_id);
                    }
                }
            }
            let Some((generation, job_id)) = job_with_work(&generations, &fence).await? else {
                let (mut open, mut first_expiry) = (0, None::<Duration>);
                for generation in &generations {
                    let (items, expiry) = generation.catalog.open_work().await?;
                    open += items;
                    first_expiry = match (first_expiry, expiry) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                if open == 0 && settings.once {
                    break;
                }
                // Woken by a planner's NOTIFY, or when the first lease held elsewhere may have run out.
                let wait = first_expiry.map_or(settings.lease, |expiry| expiry + Duration::from_millis(100));
                tokio::select! {
                    _ = listener.recv() => {}
                    _ = tokio::time::sleep(wait.min(settings.lease)) => {}
                    _ = cancelled(&cancel) => {}
                }
                continue;
            };
            // Shared with other workers; a run that takes the collection whole keeps workers out.
            let Some(lock) = parts.named.lock_collection_shared().await? else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            let catalog = &generation.catalog;
            let job = catalog.job(&job_id).await?.with_context(|| format!("job {job_id} vanished"))?;
            let model = generation.model.as_ref().map_err(|why| anyhow::anyhow!("job {job_id}: {why}"))?;
            if job.model_name != model.id {
                anyhow::bail!(
                    "job {job_id} was planned with model {} but generation {} is built by {}",
                    job.model_name,
                    generation.number,
                    model.id
                );
            }
            let job_settings =
                (parts.job_settings)(&job).with_context(|| format!("job {job_id} cannot run on this machine"))?;
            let embedder = Embedder::new(model.clone(), settings.threads)?;
            let fenced = catalog.fenced(fence.clone());
            let job_report = work_job(
                &job_settings,
                &fenced,
                &fence,
                &lock,
                &generation,
                embedder,
                &job_id,
                settings,
                &cancel,
                quiet,
                parts.metrics.as_deref(),
            )
            .await?;
            drop(lock);
            let recorded =
                [&job_report.failed, &job_report.no_text, &job_report.not_text].map(|files| files.len() as u64);
            let done = job_report.added + job_report.updated + job_report.deleted + recorded.iter().sum::<u64>();
            items_done.fetch_add(done as i64, Ordering::Relaxed);
            let error = job_report.error.clone();
            report.jobs.push(job_report);
            if let Some(error) = error {
                anyhow::bail!("{error}");
            }
            if end_queued_job(catalog, generation.index.as_ref(), &generation.parquet, &job_id).await? {
                report.ended_jobs.push(job_id);
            }
        }
        anyhow::Ok(())
    }
    .await;
    heartbeat.abort();
    // What this worker still holds goes back to the queue at once, rather than when its lease runs out.
    let handed_back = fenced.release_claims().await;
    let unregistered = fenced.unregister_worker(items_done.load(Ordering::Relaxed)).await;
    report.error = outcome.and(handed_back).and(unregistered).err().map(|e| format!("{e:#}"));
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The first job with work to claim, in the order of `generations`, with its generation. A
/// job of a generation whose model this machine cannot run is an error that says why, as
/// the worker could never finish it.
async fn job_with_work(
    generations: &[Arc<GenerationParts>],
    fence: &Arc<Fence>,
) -> Result<Option<(Arc<GenerationParts>, String)>> {
    for generation in generations {
        if let Some(job_id) = generation.catalog.fenced(fence.clone()).job_with_work().await? {
            if let Err(why) = &generation.model {
                anyhow::bail!("job {job_id} of generation {} has work this worker cannot do: {why}", generation.number);
            }
            return Ok(Some((generation.clone(), job_id)));
        }
    }
    Ok(None)
}

/// Returns once `cancel` is set: an idle worker stops at a signal, not a lease later.
async fn cancelled(cancel: &AtomicBool) {
    while !cancel.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Works on one job until nothing in its queue is left to claim.
#[allow(clippy::too_many_arguments)] // the job, the worker's leases, its parts and its metrics
async fn work_job(
    settings: &JobSettings,
    fenced: &CollectionCatalog,
    fence: &Arc<Fence>,
    lock: &crate::catalog::CollectionLock,
    generation: &GenerationParts,
    embedder: Embedder,
    job_id: &str,
    worker: &WorkerSettings,
    cancel: &Arc<AtomicBool>,
    quiet: bool,
    metrics: Option<&WorkerMetrics>,
) -> Result<JobReport> {
    let started = Instant::now();
    let counters = Arc::new(Counters::default());
    if let Some(metrics) = metrics {
        metrics.watch_job(counters.clone());
    }
    let fingerprint = LogicFingerprint::new(&embedder.info.id, settings.chunk_size, settings.chunk_overlap)
        .reading_scans(&settings.ocr);
    let source = ClaimSource {
        runtime: tokio::runtime::Handle::current(),
        catalog: fenced.clone(),
        fence: fence.clone(),
        job_id: job_id.to_string(),
        settings: settings.clone(),
        fingerprint,
        counters: counters.clone(),
        cancel: cancel.clone(),
        lease: worker.lease,
        max_attempts: worker.max_attempts,
    };
    let stages = Stages {
        settings,
        catalog: fenced,
        lock: Some(lock),
        index: generation.index.as_ref(),
        parquet: &generation.parquet,
        job_id,
        counters: &counters,
        keeps_job_counters: false,
    };
    let (mut tally, outcome) =
        stages.run(embedder, Box::new(move |to_extract, out| source.run(to_extract, out)), cancel, quiet).await?;
    tally.lost = fence.take_lost(job_id);
    let error = outcome.err().map(|e| format!("{e:#}"));
    let status = if error.is_some() { RunStatus::Job(JobStatus::Failed) } else { RunStatus::Worked };
    Ok(tally.into_report(job_id.to_string(), settings, status, &counters, started, error))
}

/// The worker's `Source`: claims items of one job and hands their files on.
struct ClaimSource {
    runtime: tokio::runtime::Handle,
    catalog: CollectionCatalog,
    fence: Arc<Fence>,
    job_id: String,
    settings: JobSettings,
    fingerprint: LogicFingerprint,
    counters: Arc<Counters>,
    cancel: Arc<AtomicBool>,
    lease: Duration,
    max_attempts: i64,
}

impl ClaimSource {
    /// Claims until the job has nothing left to claim, or the worker is cancelled.
    fn run(
        self,
        to_extract: &crossbeam_channel::Sender<ToExtract>,
        out: &crossbeam_channel::Sender<Outcome>,
    ) -> Result<()> {
        let send = |outcome| out.send(outcome).map_err(|_| anyhow::anyhow!("the embed stage stopped"));
        while !self.cancel.load(Ordering::SeqCst) {
            // Held items leave the fence once finished, or once found lost (at a fenced write,
            // or at the heartbeat, a third of a lease away).
            if self.fence.held() >= HELD_AT_MOST {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            let claimed = self.catalog.claim(&self.job_id, CLAIM_BATCH, self.lease, self.max_attempts);
            let claims = self.runtime.block_on(claimed)?;
            if claims.is_empty() {
                return Ok(());
            }
            let paths: Vec<String> = claims.iter().map(|c| c.path.clone()).collect();
            let mut rows = self.runtime.block_on(self.catalog.known_files_at(&paths))?;
            for claim in claims {
                Counters::add(&self.counters.files_seen, 1);
                let previous = rows.remove(&claim.path);
                if claim.kind == WorkKind::Delete {
                    match previous {
                        Some(row) => send(Outcome::Vanished(vec![row]))?,
                        // Never indexed: nothing to delete but the item.
                        None => {
                            let path = [claim.path];
                            self.runtime.block_on(self.catalog.mark_deleted(&self.job_id, &path))?;
                        }
                    }
                    continue;
                }
                let fingerprint = self.fingerprint.of(&claim.extension);
                let mut entry =
                    FileEntry { path_text: claim.path.clone(), size: 0, modified_ns: 0, extension: claim.extension };
                let hashed = std::fs::metadata(entry.path()).map_err(hash::ReadError::Io).and_then(|meta| {
                    entry.size = meta.len();
                    entry.modified_ns = scan::modified_ns(&meta);
                    hash::hash_file(entry.clone(), self.settings.max_file_bytes)
                });
                match hashed {
                    Ok(hashed) => {
                        Counters::add(&self.counters.files_read, 1);
                        Counters::add(&self.counters.bytes_read, hashed.bytes.len() as u64);
                        let previous = previous.as_ref().map(PreviousRow::from);
                        to_extract
                            .send(ToExtract { hashed, previous })
                            .map_err(|_| anyhow::anyhow!("the extract stage stopped"))?;
                    }
                    // A worker that cannot read the file fails it, with where it looked.
                    Err(error) => send(Outcome::Failed {
                        facts: facts_of(&entry, None, &fingerprint),
                        previous: previous.as_ref().map(PreviousRow::from),
                        reason: format!("{error} (on worker host {})", host_name()),
                    })?,
                }
            }
        }
        Ok(())
    }
}

/// Runs a queued job's end-of-job steps if its work is all done and nobody ran them yet:
/// compaction of the parquet parts, the job's check of every file it touched, its counters
/// and its final status. Guarded by an advisory lock, so two processes never run them
/// together; every step is safe to repeat after a crash. Returns whether it ran them.
pub async fn end_queued_job(
    catalog: &CollectionCatalog,
    index: &dyn VectorIndex,
    parquet: &ParquetCopy,
    job_id: &str,
) -> Result<bool> {
    let Some(_end) = catalog.lock_job_end(job_id).await? else { return Ok(false) };
    let Some(job) = catalog.job(job_id).await? else { return Ok(false) };
    let depth = catalog.queue_depth(job_id).await?;
    if job.status != JobStatus::Processing || depth.open() > 0 {
        return Ok(false);
    }
    super::seal::seal_job(catalog, index, parquet, job_id).await?;
    let files = catalog.job_file_counts(job_id).await?;
    let counters = JobCounters {
        total_files: job.counters.total_files,
        skipped_files: job.counters.skipped_files,
        processed_files: files.embedded,
        failed_files: files.failed + depth.parked,
        deleted_files: files.deleted,
    };
    catalog.save_progress(job_id, &counters, None).await?;
    let error = (depth.parked > 0).then(|| {
        format!(
            "{} work items were parked after their leases ran out too often; `ingest status` lists them",
            depth.parked
        )
    });
    catalog.set_job_status(job_id, JobStatus::Completed, error.as_deref()).await?;
    // Workers waiting for other workers' items to finish learn that they have.
    catalog.wake_workers().await?;
    Ok(true)
}

/// Waits for the workers to finish a job this process queued (ending it itself if they
/// finished its work but not the job), then completes `report` with what they did: the
/// job's final status and check, the files that failed or held no text, and its points.
/// `named`, the catalog bound to the collection's name, lists the live workers.
pub async fn wait_for_queued_job(
    named: &CollectionCatalog,
    catalog: &CollectionCatalog,
    index: &dyn VectorIndex,
    parquet: &ParquetCopy,
    mut report: JobReport,
    cancel: &AtomicBool,
    quiet: bool,
) -> Result<JobReport> {
    let started = Instant::now();
    let job_id = report.job_id.clone();
    let mut last_said = Instant::now();
    let job = loop {
        let depth = catalog.queue_depth(&job_id).await?;
        if depth.open() == 0 {
            end_queued_job(catalog, index, parquet, &job_id).await?;
        }
        let job = catalog.job(&job_id).await?.with_context(|| format!("job {job_id} vanished"))?;
        if job.status != JobStatus::Processing || cancel.load(Ordering::SeqCst) {
            break job;
        }
        if !quiet && last_said.elapsed() >= Duration::from_secs(5) {
            let workers = named.live_workers().await?.len();
            eprintln!(
                "ingest: job {job_id}: {} pending, {} leased, {} done, {} parked; {workers} live workers",
                depth.pending, depth.leased, depth.done, depth.parked
            );
            last_said = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let (mut failed, mut no_text, mut points) = (Vec::new(), Vec::new(), 0);
    catalog
        .for_each_page_of_job(&job_id, async |files| {
            for file in files {
                match file.status() {
                    FileStatus::Completed => points += file.vectors_created as u64,
                    FileStatus::Failed => {
                        failed.push(FailedFile { path: file.path, reason: file.error.unwrap_or_default() })
                    }
                    FileStatus::NoText => {
                        no_text.push(FailedFile { path: file.path, reason: file.error.unwrap_or_default() })
                    }
                    _ => {}
                }
            }
            Ok(())
        })
        .await?;
    (report.failed, report.no_text, report.points) = (failed, no_text, points);
    // Files planned for embedding that failed or held no text were neither added nor updated.
    let unembedded: std::collections::HashSet<&str> =
        report.failed.iter().chain(&report.no_text).map(|f| f.path.as_str()).collect();
    let embedded = |planned: &[String]| planned.iter().filter(|p| !unembedded.contains(p.as_str())).count() as u64;
    (report.added, report.updated) = (embedded(&report.planned_new), embedded(&report.planned_updates));
    report.status = job.status.into();
    report.error = job.error.clone().or(report.error.take());
    report.verified = job.verification.map(serde_json::from_value).transpose().context("reading the job's check")?;
    report.queue = Some(super::QueueOutcome {
        depth: catalog.queue_depth(&job_id).await?,
        parked: catalog.parked_items(&job_id).await?,
        workers: named.live_workers().await?,
    });
    report.elapsed_seconds += started.elapsed().as_secs_f64();
    Ok(report)
}
