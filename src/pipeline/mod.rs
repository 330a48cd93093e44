//! # Job runner
//!
//! In: a directory, the job's settings, a [`Catalog`], a [`VectorIndex`] and an
//! [`Embedder`]. Out: the collection brought in line with the directory, the catalog rows
//! that say so, a parquet copy of every new embedding, and a [`JobReport`].
//!
//! Stages run concurrently, joined by bounded channels so memory stays flat and a slow
//! store pushes back on the model:
//!
//! ```text
//! walk thread ──▶ prepare thread ──(bounded)──▶ extract threads ──(bounded)──▶ embed thread ──(bounded)──▶ commit task (tokio)
//! scan (stat)     change detection,              extract (all but text          batches chunks across       catalog `processing` → parquet part
//!                 hash                           and Markdown in workers),      files, runs the model       → upsert (wait) → drop stale tail
//!                                                chunk                                                      → catalog `completed`
//! ```
//!
//! The queue into the embed thread is bounded by the chunks it holds (`PREPARED_CHUNKS`),
//! not only by its files, so a few huge text files cannot queue gigabytes of text.
//!
//! There are `--extract-workers` extract threads, so that many files are extracted at once;
//! what needs no extraction (unchanged, failed or vanished files) goes from the prepare
//! thread straight to the embed thread. The commit stage does not depend on their order.
//!
//! The walk starts before the catalog's file rows have loaded and runs up to
//! `WALK_AHEAD` entries ahead, so on a re-run the two overlap.
//!
//! A file is `completed` only after the store has acknowledged all its points, and point
//! ids are deterministic, so a crash anywhere leaves state the next run completes by
//! overwriting, never duplicating.
//!
//! One file per stage: `prepare` (change detection, hashing, extraction, chunking),
//! `embed` (the model), `commit` (the write protocol), [`plan`] (a dry run, or a job
//! queued for workers) and [`worker`] (`ingest worker`: the same stages, fed by claims from
//! PostgreSQL's queue instead of a walk). This file holds the job's settings, the messages
//! between the stages, its report, and [`run_job`], which joins them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::cache::EmbeddingCache;
use crate::catalog::{
    Catalog, CollectionLock, FileFacts, JobStatus, KnownFile, NewJob, ParkedItem, QueueDepth, WorkerRow,
};
use crate::chunk::{Chunk, Chunker};
use crate::consistency::{check_touched, Touched, Verification};
use crate::embed::{Batching, Embedder};
use crate::extract::{ExtractorPool, ExtractorSettings, Format};
use crate::output::Exit;
use crate::parquet_copy::ParquetCopy;
use crate::progress::{Counters, Progress, Stage, StageSeconds};
use crate::scan::{self, ScanItem, ScanOptions};
use crate::store::VectorIndex;

mod commit;
mod embed;
pub mod plan;
mod prepare;
pub mod worker;

use commit::{Committer, Tally};
use embed::embed_stage;
use prepare::{
    facts_of, ChunkBudget, ChunkReceiver, ChunkSender, ExtractStage, LazyChunker, Preparer, ToExtract, PREPARED_CHUNKS,
};

/// How a job runs.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// The directory to index (absolute).
    pub root: PathBuf,
    pub collection: String,
    pub scan: ScanOptions,
    pub chunk_size: usize,
    pub chunk_overlap: usize,
    /// How chunks are cut into model calls: by padded tokens, and at most so many texts.
    pub embed_batching: Batching,
    /// Points per upsert request.
    pub upload_batch_size: usize,
    /// Upsert requests in flight at once.
    pub upload_parallelism: usize,
    /// Files larger than this fail with a clear reason instead of being read.
    pub max_file_bytes: u64,
    /// Files with more chunks than this fail, before any of them is embedded.
    pub max_file_chunks: usize,
    /// A commit group is written once it holds `upload_batch_size` points or is this old,
    /// which bounds the embedding work a crash can lose.
    pub commit_interval: Duration,
    /// Re-embed every file, changed or not.
    pub full: bool,
    /// Report what a run would do, and change nothing.
    pub dry_run: bool,
    /// A file that failed this many runs in a row is not retried until it changes.
    pub max_retries: i64,
    /// Delete the points of vanished files even when they are more than half of the root's
    /// indexed files (see [`MASS_DELETE_HANDFUL`]).
    pub allow_mass_delete: bool,
    /// The extractor processes: their program, time and memory limits, and how many.
    pub extraction: ExtractorSettings,
    /// Plan only: record the work in PostgreSQL's queue for `ingest worker` processes,
    /// instead of doing it in this process.
    pub queued: bool,
}

/// A run may delete up to this many vanished files whatever share of the root they are; above
/// it, deleting more than half of the root's indexed files needs `allow_mass_delete`.
pub const MASS_DELETE_HANDFUL: usize = 10;

/// One failed file in the report.
#[derive(Debug, Clone, Serialize)]
pub struct FailedFile {
    pub path: String,
    pub reason: String,
}

/// How a run ended, as its report says: its job's status, or what else the run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// The job's status when the run ended; for a worker's run, `Failed` when it stopped
    /// on an error.
    Job(JobStatus),
    /// Planned into the queue, for workers to do.
    Queued,
    /// Planned only (`--dry-run`): nothing written.
    DryRun,
    /// A worker's part of a job, done.
    Worked,
}

impl RunStatus {
    /// The status as the report shows it: a job's as recorded, `queued`, `dry-run` or `worked`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Job(status) => status.as_str(),
            Self::Queued => "queued",
            Self::DryRun => "dry-run",
            Self::Worked => "worked",
        }
    }
}

impl From<JobStatus> for RunStatus {
    fn from(status: JobStatus) -> Self {
        Self::Job(status)
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl Serialize for RunStatus {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// What a job did.
#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    pub job_id: String,
    pub collection: String,
    pub status: RunStatus,
    pub files_seen: u64,
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub deleted: u64,
    pub failed: Vec<FailedFile>,
    /// Files that failed `max_retries` runs in a row and have not changed since: not retried.
    pub not_retried: Vec<FailedFile>,
    /// Files with no text to index (not failures).
    pub no_text: Vec<FailedFile>,
    /// Files taken for their contents (no extension, or an unknown one) that are not text:
    /// skipped, not failures.
    pub not_text: Vec<FailedFile>,
    /// Files the extension filter passed over.
    pub filtered_out: u64,
    /// Entries the walk could not read (an unreadable directory, a symlink loop).
    pub scan_problems: Vec<FailedFile>,
    /// Entries the walk passed over on purpose (a symlink leading outside the root): notes,
    /// not failures.
    pub scan_notes: Vec<FailedFile>,
    /// Indexed files this run could not look at (under an unreadable directory, or unreadable
    /// themselves): kept as they were, points and all.
    pub not_checked: Vec<FailedFile>,
    /// Set when the vanished files were too many to delete without `--allow-mass-delete`:
    /// nothing was deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused_deletes: Option<RefusedDeletes>,
    /// Files a worker did not finish because its lease on them ran out and another worker
    /// took them over: left to that one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lost_leases: Vec<String>,
    /// Work items this run queued for workers (with `--workers`).
    pub queued: u64,
    /// The files queued to embed, new and indexed before: `added` and `updated` as planned,
    /// until the workers' outcome corrects them.
    #[serde(skip)]
    pub planned_new: Vec<String>,
    #[serde(skip)]
    pub planned_updates: Vec<String>,
    /// For a job planned into the queue: its work items and what became of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueOutcome>,
    /// The job's check, at its end, of the files it touched (absent when it changed nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<Verification>,
    /// With `--dry-run`: the files the run would embed, and those whose points it would delete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// Files whose contents this run read, and how many bytes: 0 when nothing changed.
    pub files_read: u64,
    pub bytes_read: u64,
    pub chunks: u64,
    /// Chunks whose vectors came from the embedding cache instead of the model.
    pub cache_hits: u64,
    pub points: u64,
    pub elapsed_seconds: f64,
    pub chunks_per_second: f64,
    /// The process's peak resident memory so far, in MiB (Linux).
    pub peak_memory_mib: Option<f64>,
    /// Time each stage spent working (summed over its threads).
    pub stage_seconds: StageSeconds,
    pub error: Option<String>,
}

impl JobReport {
    /// [`Exit::Ok`] when every file succeeded (or for a dry run); [`Exit::FilesNeedAttention`]
    /// when the job finished but some files failed, some could not be looked at, its end
    /// check found a disagreement or (queued for workers) some items were parked;
    /// [`Exit::Failed`] when the job itself did not finish, or refused to delete too many
    /// vanished files; [`Exit::Cancelled`] when it was cancelled.
    pub fn exit(&self) -> Exit {
        let needs_attention = !self.failed.is_empty()
            || !self.scan_problems.is_empty()
            || !self.not_checked.is_empty()
            || self.verified.as_ref().is_some_and(|v| !v.agree);
        let parked = self.queue.as_ref().is_some_and(|q| !q.parked.is_empty());
        match self.status {
            RunStatus::Job(JobStatus::Completed) | RunStatus::Queued if self.refused_deletes.is_some() => Exit::Failed,
            RunStatus::DryRun => Exit::Ok,
            RunStatus::Job(JobStatus::Completed) | RunStatus::Queued if needs_attention || parked => {
                Exit::FilesNeedAttention
            }
            RunStatus::Job(JobStatus::Completed) | RunStatus::Queued => Exit::Ok,
            RunStatus::Job(JobStatus::Cancelled) => Exit::Cancelled,
            _ => Exit::Failed,
        }
    }
}

/// What became of a queued job's work items, as its planner saw last.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueOutcome {
    pub depth: QueueDepth,
    /// Items parked after their lease ran out too often, with why.
    pub parked: Vec<ParkedItem>,
    /// Live workers of the collection when the planner last looked.
    pub workers: Vec<WorkerRow>,
}

/// Vanished files a run refused to delete, being too many.
#[derive(Debug, Clone, Serialize)]
pub struct RefusedDeletes {
    /// Files the walk no longer found.
    pub vanished: u64,
    /// The root's indexed files before the run.
    pub indexed: u64,
}

impl RefusedDeletes {
    /// Whether deleting `vanished` of `indexed` files needs `--allow-mass-delete`.
    fn needed(vanished: usize, indexed: usize) -> bool {
        vanished > MASS_DELETE_HANDFUL && vanished * 2 > indexed
    }

    pub fn message(&self) -> String {
        format!(
            "{} of the {} indexed files under the root were not found, so nothing was deleted: a share that large \
             is more often an unmounted or emptied directory than real deletions. If the files really are gone, \
             run again with --allow-mass-delete",
            self.vanished, self.indexed
        )
    }
}

/// What a dry run found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub add: Vec<String>,
    pub update: Vec<String>,
    pub delete: Vec<String>,
}

/// A file's chunks, ready for the model.
struct PreparedFile {
    facts: FileFacts,
    previous: Option<KnownFile>,
    chunks: Vec<Chunk>,
}

/// A file's chunks with their vectors.
struct EmbeddedFile {
    prepared: PreparedFile,
    vectors: Vec<Vec<f32>>,
}

/// What the first two stages hand on.
enum Outcome {
    Embedded(EmbeddedFile),
    /// Content and logic unchanged, but size or mtime moved: the catalog learns the new ones.
    /// (Files whose stat did not move are only counted, in [`Counters::unchanged`].)
    Restat {
        path: String,
        size: i64,
        modified_ns: i64,
    },
    Failed {
        facts: FileFacts,
        previous: Option<KnownFile>,
        reason: String,
    },
    /// Read and understood, but holding no text to index (an empty file, a scan without a
    /// text layer): recorded as such, not as a failure.
    NoText {
        facts: FileFacts,
        previous: Option<KnownFile>,
        reason: String,
    },
    /// A file taken for its contents (no extension, or an unknown one) that is not text:
    /// skipped, and recorded like a file without text so that re-runs pass it by.
    NotText {
        facts: FileFacts,
        previous: Option<KnownFile>,
        reason: String,
    },
    ScanProblem(FailedFile),
    /// An entry the walk passed over on purpose.
    ScanNote(FailedFile),
    /// Failed too often and unchanged since: left alone.
    NotRetried(FailedFile),
    /// Planning (a dry run, or a job queued for workers): the file is to be embedded.
    WouldEmbed {
        path: String,
        extension: String,
        is_new: bool,
    },
    /// Known files no longer on disk.
    Vanished(Vec<KnownFile>),
    /// Known files the walk could not look at: kept as they are.
    NotChecked(FailedFile),
    /// Known files no longer on disk, too many to delete without `allow_mass_delete`.
    TooManyVanished {
        refused: RefusedDeletes,
        paths: Vec<String>,
    },
}

/// The logic fingerprint: what, besides a file's bytes, decides its points: the model, the
/// chunking, and the version of the extractor of the file's format.
#[derive(Debug, Clone)]
pub struct LogicFingerprint {
    model_and_chunking: String,
}

impl LogicFingerprint {
    pub fn new(model_id: &str, chunk_size: usize, chunk_overlap: usize) -> Self {
        Self { model_and_chunking: format!("{model_id}|chunk:{chunk_size}/{chunk_overlap}") }
    }

    /// The fingerprint of a file with this (lower-case) extension.
    pub fn of(&self, extension: &str) -> String {
        format!("{}|{}", self.model_and_chunking, Format::from_extension(extension).extractor_version())
    }
}

/// Runs one job to its end. Errors are returned only when the job could not start; a job
/// that fails midway is recorded as failed and reported. With `lock`, the job stops, failed
/// and resumable, as soon as PostgreSQL's collection lock turns out lost. With
/// `settings.queued`, this process only plans: the work goes to the catalog's queue, for
/// `ingest worker` processes (see `plan::enqueue_job`).
#[allow(clippy::too_many_arguments)] // each is a distinct collaborator; a bundle would only rename them
pub async fn run_job(
    settings: &JobSettings,
    catalog: &Catalog,
    lock: Option<&CollectionLock>,
    index: Arc<dyn VectorIndex>,
    parquet: &ParquetCopy,
    embedder: Embedder,
    cancel: Arc<AtomicBool>,
    quiet: bool,
) -> Result<JobReport> {
    let started = Instant::now();
    let model = embedder.info.clone();
    Chunker::check(settings.chunk_size, settings.chunk_overlap, model.max_sequence)?;
    let fingerprint = LogicFingerprint::new(&model.id, settings.chunk_size, settings.chunk_overlap);
    if settings.dry_run {
        return plan::plan_job(settings, catalog, &fingerprint, &cancel, started).await;
    }
    let (open, _) = catalog.open_work(&settings.collection).await?;
    if open > 0 {
        anyhow::bail!(
            "collection {:?} has a queued job with {open} work items still open; start `ingest worker` to finish it \
             (see `ingest status`), then run again",
            settings.collection
        );
    }
    index.ensure_collection(model.dim).await?;
    let job_id = catalog
        .create_job(&NewJob {
            name: format!("ingest {}", settings.root.display()),
            directory_path: settings.root.display().to_string(),
            collection: settings.collection.clone(),
            model_name: model.id.clone(),
            vector_dim: model.dim as i64,
            chunk_size: settings.chunk_size as i64,
            chunk_overlap: settings.chunk_overlap as i64,
            batch_size: settings.upload_batch_size as i64,
        })
        .await?;
    catalog.set_job_status(&job_id, JobStatus::Scanning, None).await?;
    // The walk starts while the catalog's rows load, so the two overlap.
    let (walked_tx, walked_rx) = crossbeam_channel::bounded::<ScanItem>(WALK_AHEAD);
    let counters = Arc::new(Counters::default());
    let walker = {
        let (root, options, counters) = (settings.root.clone(), settings.scan.clone(), counters.clone());
        std::thread::Builder::new().name("walk".into()).spawn(move || {
            let mut walk = scan::scan(&root, &options);
            // A send fails only when the prepare stage stopped early; the walk stops with it.
            while let Some(item) = counters.stages.time(Stage::Walk, || walk.next()) {
                if walked_tx.send(item).is_err() {
                    break;
                }
            }
        })?
    };
    let known = known_files(catalog, &settings.collection).await?;
    catalog.set_job_status(&job_id, JobStatus::Processing, None).await?;
    if settings.queued {
        let index = index.as_ref();
        let planned =
            plan::enqueue_job(settings, catalog, index, &fingerprint, &job_id, walked_rx, known, &counters, &cancel);
        let planned = planned.await;
        walker.join().map_err(|_| anyhow::anyhow!("the walk panicked"))?;
        let tally = planned?;
        catalog.save_progress(&job_id, &tally.counters(&counters), None).await?;
        // Too many vanished files: the deletions were not queued, and the run says why.
        let refused = tally.refused_deletes.as_ref().map(RefusedDeletes::message);
        // Nothing for workers to do: the planner ends the job itself.
        let ended = tally.queued == 0 && worker::end_queued_job(catalog, index, parquet, &job_id).await?;
        let status = if ended { RunStatus::Job(JobStatus::Completed) } else { RunStatus::Queued };
        let mut report = tally.into_report(job_id.clone(), settings, status, &counters, started, refused);
        if ended {
            let job = catalog.job(&job_id).await?;
            report.verified = job.and_then(|j| j.verification).map(serde_json::from_value).transpose()?;
        }
        return Ok(report);
    }

    let source: Source = {
        let (settings, counters, cancel, fingerprint) =
            (settings.clone(), counters.clone(), cancel.clone(), fingerprint.clone());
        Box::new(move |to_extract, out| {
            let stage = Preparer {
                settings: &settings,
                fingerprint: &fingerprint,
                counters: &counters,
                cancel: &cancel,
                to_extract: Some(to_extract),
            };
            stage.run(walked_rx, known, out)
        })
    };
    let stages = Stages {
        settings,
        catalog,
        lock,
        index: index.as_ref(),
        parquet,
        job_id: &job_id,
        counters: &counters,
        keeps_job_counters: true,
    };
    let (mut tally, outcome) = stages.run(embedder, source, &cancel, quiet).await?;
    walker.join().map_err(|_| anyhow::anyhow!("the walk panicked"))?;

    let cancelled = cancel.load(Ordering::SeqCst);
    let refused = tally.refused_deletes.as_ref().map(RefusedDeletes::message);
    let (status, error) = match &outcome {
        Ok(()) if cancelled => (JobStatus::Cancelled, Some("cancelled by signal".to_string())),
        Ok(()) if refused.is_some() => (JobStatus::Failed, refused),
        Ok(()) => (JobStatus::Completed, None),
        Err(e) => (JobStatus::Failed, Some(format!("{e:#}"))),
    };
    let mut verified = None;
    let finishing = Instant::now();
    if outcome.is_ok() && !cancelled {
        verified = seal_job(catalog, index.as_ref(), parquet, &job_id, &std::mem::take(&mut tally.touched)).await?;
    }
    counters.stages.add(Stage::Finish, finishing.elapsed());
    catalog.save_progress(&job_id, &tally.counters(&counters), None).await?;
    catalog.set_job_status(&job_id, status, error.as_deref()).await?;
    let mut report = tally.into_report(job_id, settings, status.into(), &counters, started, error);
    report.verified = verified;
    Ok(report)
}

/// The end-of-job steps of a job whose work is all done: its parquet parts compacted, the
/// store finished, and its check of the files it touched recorded on its row (none when it
/// touched nothing).
async fn seal_job(
    catalog: &Catalog,
    index: &dyn VectorIndex,
    parquet: &ParquetCopy,
    job_id: &str,
    touched: &[Touched],
) -> Result<Option<Verification>> {
    parquet.compact_job(job_id).context("compacting the job's parquet parts")?;
    index.finish().await?;
    if touched.is_empty() {
        return Ok(None);
    }
    let verification = check_touched(catalog, index, touched).await?;
    catalog.record_verification(job_id, &serde_json::to_value(&verification)?).await?;
    Ok(Some(verification))
}

/// Where the files a job's stages work on come from: run in the prepare thread, it sends
/// changed files to be extracted, and every other outcome straight on.
type Source =
    Box<dyn FnOnce(&crossbeam_channel::Sender<ToExtract>, &crossbeam_channel::Sender<Outcome>) -> Result<()> + Send>;

/// What the stages from extraction to commit share, for one job in one process.
struct Stages<'a> {
    settings: &'a JobSettings,
    catalog: &'a Catalog,
    lock: Option<&'a CollectionLock>,
    index: &'a dyn VectorIndex,
    parquet: &'a ParquetCopy,
    job_id: &'a str,
    counters: &'a Arc<Counters>,
    /// Whether the job row's counters are this process's to keep (not a worker's).
    keeps_job_counters: bool,
}

impl Stages<'_> {
    /// Runs `source` → extract → embed → commit until the source runs dry and every stage
    /// has drained. Returns what the commit stage tallied and how the stages ended.
    async fn run(
        &self,
        embedder: Embedder,
        source: Source,
        cancel: &Arc<AtomicBool>,
        quiet: bool,
    ) -> Result<(Tally, Result<()>)> {
        let Self { settings, catalog, counters, .. } = *self;
        let model = embedder.info.clone();
        let chunker = LazyChunker {
            model: model.clone(),
            chunk_size: settings.chunk_size,
            chunk_overlap: settings.chunk_overlap,
            built: OnceLock::new(),
        };
        let fingerprint = LogicFingerprint::new(&model.id, settings.chunk_size, settings.chunk_overlap);
        let outage_clocks = std::iter::once(catalog.outage_clock().clone()).chain(self.index.outage_clock()).collect();
        let progress = Progress::new(counters.clone(), outage_clocks, quiet);

        let (prepared_tx, prepared_rx) = crossbeam_channel::bounded::<Outcome>(64);
        let chunk_budget = Arc::new(ChunkBudget::new(PREPARED_CHUNKS));
        let (embedded_tx, mut embedded_rx) = mpsc::channel::<Outcome>(8);
        let preparer = {
            let (settings, counters, cancel) = (settings.clone(), counters.clone(), cancel.clone());
            let chunk_budget = chunk_budget.clone();
            std::thread::Builder::new().name("prepare".into()).spawn(move || {
                // Changed files go to `workers` extract threads, each driving one extractor process
                // at a time; the pool, and with it every process, ends with this thread.
                let workers = settings.extraction.workers;
                let extractors = ExtractorPool::new(settings.extraction.clone())?;
                std::thread::scope(|scope| {
                    let (to_extract, queue) = crossbeam_channel::bounded::<ToExtract>(workers);
                    let mut extract_threads = Vec::with_capacity(workers);
                    for n in 0..workers {
                        let (queue, out) =
                            (queue.clone(), ChunkSender { sender: prepared_tx.clone(), budget: &chunk_budget });
                        let stage = ExtractStage {
                            settings: &settings,
                            extractors: &extractors,
                            fingerprint: &fingerprint,
                            chunker: &chunker,
                            clock: &counters.stages,
                            cancel: &cancel,
                        };
                        extract_threads.push(
                            std::thread::Builder::new()
                                .name(format!("extract-{n}"))
                                .spawn_scoped(scope, move || stage.run(&queue, &out))?,
                        );
                    }
                    drop(queue);
                    let prepared = source(&to_extract, &prepared_tx);
                    drop(to_extract);
                    extract_threads.into_iter().fold(prepared, |result, thread| {
                        let extracted = thread.join().map_err(|_| anyhow::anyhow!("an extract thread panicked"))?;
                        result.and(extracted)
                    })
                })
            })?
        };
        let batching = settings.embed_batching;
        // `--full` re-embeds for real; every other run reuses vectors the model already made.
        let cache = (!settings.full)
            .then(|| EmbeddingCache::new(catalog.clone(), &model.id, tokio::runtime::Handle::current()));
        let embedder_thread = {
            let (counters, cancel, catalog) = (counters.clone(), cancel.clone(), catalog.clone());
            std::thread::Builder::new().name("embed".into()).spawn(move || {
                let input = ChunkReceiver { receiver: prepared_rx, budget: &chunk_budget };
                let embedded =
                    embed_stage(embedder, batching, &input, &embedded_tx, &counters, &cancel, cache.as_ref(), &catalog);
                // Nothing is taken off the queue any more: senders waiting for room must not wait.
                chunk_budget.close();
                embedded
            })?
        };

        let mut committer = Committer {
            settings,
            catalog,
            lock: self.lock,
            index: self.index,
            parquet: self.parquet,
            job_id: self.job_id,
            model_id: &model.id,
            counters,
            progress: &progress,
            group: Vec::new(),
            group_points: 0,
            group_started: Instant::now(),
            keeps_job_counters: self.keeps_job_counters,
            part_token: uuid::Uuid::new_v4().simple().to_string()[..8].to_string(),
            parts_written: 0,
            report: Tally::default(),
        };
        let commit_result = committer.run(&mut embedded_rx).await;
        drop(embedded_rx);
        let embed_result = embedder_thread.join().map_err(|_| anyhow::anyhow!("the embed stage panicked"))?;
        let prepare_result = preparer.join().map_err(|_| anyhow::anyhow!("the prepare stage panicked"))?;
        progress.finish();
        Ok((committer.report, commit_result.and(embed_result).and(prepare_result)))
    }
}

async fn known_files(catalog: &Catalog, collection: &str) -> Result<HashMap<String, KnownFile>> {
    Ok(catalog.known_files(collection).await?.into_iter().map(|f| (f.path.clone(), f)).collect())
}

/// How many walked entries the walk may run ahead of the prepare stage.
const WALK_AHEAD: usize = 1 << 17;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_changes_with_model_chunking_and_the_format_extractor() {
        let base = LogicFingerprint::new("m@1", 200, 20).of("txt");
        assert_ne!(base, LogicFingerprint::new("m@2", 200, 20).of("txt"));
        assert_ne!(base, LogicFingerprint::new("m@1", 100, 20).of("txt"));
        assert_ne!(base, LogicFingerprint::new("m@1", 200, 10).of("txt"));
        assert_eq!(base, "m@1|chunk:200/20|extract-1", "files indexed before formats had versions keep theirs");
        assert_eq!(
            base,
            LogicFingerprint::new("m@1", 200, 20).of("rst"),
            "plain-text formats share the text extractor"
        );
        assert_ne!(base, LogicFingerprint::new("m@1", 200, 20).of(""), "sniffed files have their own");
        let of = |extension| LogicFingerprint::new("m@1", 200, 20).of(extension);
        assert_eq!(of("docx"), "m@1|chunk:200/20|extract-2", "DOCX gained notes, margins and places");
        assert_eq!(of("xlsx"), of("ods"), "one spreadsheet extractor");
        let formats = ["txt", "md", "pdf", "docx", "html", "xlsx", "pptx", "odt", "epub", ""];
        let distinct: std::collections::BTreeSet<String> = formats.iter().map(|e| of(e)).collect();
        assert_eq!(distinct.len(), formats.len() - 1, "md and docx share a version string; the rest differ");
    }

    #[test]
    fn run_statuses_serialize_and_display_as_their_text() {
        let statuses = [
            (RunStatus::Job(JobStatus::Completed), "completed"),
            (RunStatus::Job(JobStatus::Failed), "failed"),
            (RunStatus::Job(JobStatus::Cancelled), "cancelled"),
            (RunStatus::Queued, "queued"),
            (RunStatus::DryRun, "dry-run"),
            (RunStatus::Worked, "worked"),
        ];
        for (status, text) in statuses {
            assert_eq!(serde_json::to_value(status).unwrap(), text);
            assert_eq!(status.to_string(), text);
        }
        assert_eq!(format!("[{:<10}]", RunStatus::Queued), "[queued    ]", "a width pads it");
        assert_eq!(format!("[{:<10}]", JobStatus::Completed), "[completed ]", "a width pads it");
    }
}
