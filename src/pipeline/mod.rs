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

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::cache::EmbeddingCache;
use crate::catalog::{
    Catalog, CollectionLock, Completion, FileFacts, FileRow, FileStatus, JobCounters, JobStatus, NewJob, ParkedItem,
    QueueDepth, WorkerRow,
};

pub mod plan;
pub mod worker;
use crate::chunk::{Chunk, Chunker};
use crate::consistency::{check_touched, Touched, Verification};
use crate::embed::{Batching, Embedder, ModelInfo};
use crate::extract::{self, ExtractorPool, ExtractorSettings, Format};
use crate::hash::{self, HashedFile};
use crate::parquet_copy::ParquetCopy;
use crate::progress::{Counters, Progress, Stage, StageClock, StageSeconds};
use crate::scan::{self, FileEntry, ScanItem, ScanOptions};
use crate::store::{upsert_in_batches, Point, PointPayload, VectorIndex, DOCUMENTS_PER_DELETE};

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

/// What a job did.
#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    pub job_id: String,
    pub collection: String,
    pub status: String,
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
    /// 0 when every file succeeded (or for a dry run); 2 when the job finished but some
    /// files failed, some could not be looked at, or its end check found a disagreement; 1
    /// when the job itself did not finish; 130 when it was cancelled.
    pub fn exit_code(&self) -> i32 {
        let needs_attention = !self.failed.is_empty()
            || !self.scan_problems.is_empty()
            || !self.not_checked.is_empty()
            || self.verified.as_ref().is_some_and(|v| !v.agree);
        let parked = self.queue.as_ref().is_some_and(|q| !q.parked.is_empty());
        match self.status.as_str() {
            "dry-run" => 0,
            "completed" | "queued" if needs_attention || parked => 2,
            "completed" | "queued" => 0,
            "cancelled" => 130,
            _ => 1,
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
    previous: Option<FileRow>,
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
        previous: Option<FileRow>,
        reason: String,
    },
    /// Read and understood, but holding no text to index (an empty file, a scan without a
    /// text layer): recorded as such, not as a failure.
    NoText {
        facts: FileFacts,
        previous: Option<FileRow>,
        reason: String,
    },
    /// A file taken for its contents (no extension, or an unknown one) that is not text:
    /// skipped, and recorded like a file without text so that re-runs pass it by.
    NotText {
        facts: FileFacts,
        previous: Option<FileRow>,
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
    Vanished(Vec<FileRow>),
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
/// `ingest worker` processes (see [`plan::enqueue_job`]).
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
        return Ok(tally.into_report(job_id, settings, "queued", &counters, started, None));
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
    let stages =
        Stages { settings, catalog, lock, index: index.as_ref(), parquet, job_id: &job_id, counters: &counters };
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
        parquet.compact_job(&job_id).context("compacting this job's parquet parts")?;
        index.finish().await?;
        if !tally.touched.is_empty() {
            let verification = check_touched(catalog, index.as_ref(), &std::mem::take(&mut tally.touched)).await?;
            catalog.record_verification(&job_id, &serde_json::to_value(&verification)?).await?;
            verified = Some(verification);
        }
    }
    counters.stages.add(Stage::Finish, finishing.elapsed());
    catalog.save_progress(&job_id, &tally.counters(&counters), None).await?;
    catalog.set_job_status(&job_id, status, error.as_deref()).await?;
    let mut report = tally.into_report(job_id, settings, &status.to_string(), &counters, started, error);
    report.verified = verified;
    Ok(report)
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
        let progress = Progress::new(counters.clone(), quiet);

        let (prepared_tx, prepared_rx) = crossbeam_channel::bounded::<Outcome>(64);
        let chunk_budget = Arc::new(ChunkBudget::new(PREPARED_CHUNKS));
        let (embedded_tx, mut embedded_rx) = mpsc::channel::<Outcome>(8);
        let preparer = {
            let (extraction, counters, cancel) = (settings.extraction.clone(), counters.clone(), cancel.clone());
            let chunk_budget = chunk_budget.clone();
            std::thread::Builder::new().name("prepare".into()).spawn(move || {
                // Changed files go to `workers` extract threads, each driving one extractor process
                // at a time; the pool, and with it every process, ends with this thread.
                let workers = extraction.workers;
                let extractors = ExtractorPool::new(extraction)?;
                std::thread::scope(|scope| {
                    let (to_extract, queue) = crossbeam_channel::bounded::<ToExtract>(workers);
                    let mut extract_threads = Vec::with_capacity(workers);
                    for n in 0..workers {
                        let (queue, out) =
                            (queue.clone(), ChunkSender { sender: prepared_tx.clone(), budget: &chunk_budget });
                        let (extractors, fingerprint, chunker, cancel) = (&extractors, &fingerprint, &chunker, &cancel);
                        let clock = &counters.stages;
                        extract_threads.push(
                            std::thread::Builder::new()
                                .name(format!("extract-{n}"))
                                .spawn_scoped(scope, move || {
                                    extract_stage(&queue, &out, extractors, fingerprint, chunker, clock, cancel)
                                })?,
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
            let (counters, cancel) = (counters.clone(), cancel.clone());
            std::thread::Builder::new().name("embed".into()).spawn(move || {
                let input = ChunkReceiver { receiver: prepared_rx, budget: &chunk_budget };
                let embedded =
                    embed_stage(embedder, batching, &input, &embedded_tx, &counters, &cancel, cache.as_ref());
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

async fn known_files(catalog: &Catalog, collection: &str) -> Result<HashMap<String, FileRow>> {
    Ok(catalog.files_in_any_order(collection).await?.into_iter().map(|f| (f.path.clone(), f)).collect())
}

fn facts_of(entry: &FileEntry, content_hash: Option<String>, fingerprint: &str) -> FileFacts {
    FileFacts {
        path: entry.path_text.clone(),
        doc_id: hash::doc_id(&entry.path_text),
        size: entry.size as i64,
        modified_ns: entry.modified_ns,
        extension: entry.extension.clone(),
        content_hash,
        logic_fingerprint: fingerprint.to_string(),
    }
}

/// The prepare stage: change detection, hashing, extraction and chunking of walked files.
struct Preparer<'a> {
    settings: &'a JobSettings,
    fingerprint: &'a LogicFingerprint,
    counters: &'a Counters,
    cancel: &'a AtomicBool,
    /// Where changed files go to be extracted and chunked; `None` when planning (a dry run,
    /// or a job queued for workers), which extracts nothing.
    to_extract: Option<&'a crossbeam_channel::Sender<ToExtract>>,
}

/// A changed file on its way to the extract threads.
struct ToExtract {
    hashed: HashedFile,
    previous: Option<FileRow>,
}

impl Preparer<'_> {
    /// Judges each walked item against `known`, the catalog's view of the collection. Each
    /// file found on disk is taken out of `known`, so what remains at the end has vanished.
    fn run(
        &self,
        walked: impl IntoIterator<Item = ScanItem>,
        mut known: HashMap<String, FileRow>,
        out: &crossbeam_channel::Sender<Outcome>,
    ) -> Result<()> {
        let Self { settings, fingerprint, counters, cancel, to_extract } = *self;
        let send = |outcome| out.send(outcome).map_err(|_| anyhow::anyhow!("the embed stage stopped"));
        let in_scope = |file: &FileRow| {
            file.status() != FileStatus::Deleted && settings.scan.in_scope(&settings.root, Path::new(&file.path))
        };
        let indexed_in_scope = known.values().filter(|f| in_scope(f)).count();
        // Entries the walk could not read, with why: nothing beneath them was looked at.
        let mut unwalked: Vec<(String, String)> = Vec::new();
        // Links the walk did not follow: what lies beneath them is out of scope.
        let mut unfollowed: Vec<String> = Vec::new();
        for item in walked {
            if cancel.load(Ordering::SeqCst) {
                return Ok(());
            }
            let entry = match item {
                ScanItem::Problem { path_text, reason } => {
                    unwalked.push((path_text.clone(), reason.clone()));
                    send(Outcome::ScanProblem(FailedFile { path: path_text, reason }))?;
                    continue;
                }
                ScanItem::Skipped { path_text, reason } => {
                    unfollowed.push(path_text.clone());
                    send(Outcome::ScanNote(FailedFile { path: path_text, reason }))?;
                    continue;
                }
                ScanItem::Rejected { path_text, extension, reason } => {
                    Counters::add(&counters.files_seen, 1);
                    let previous = known.remove(&path_text);
                    if previous.as_ref().is_some_and(|p| p.status() == FileStatus::Completed) {
                        send(Outcome::NotChecked(FailedFile { path: path_text, reason }))?;
                        continue;
                    }
                    let fingerprint = fingerprint.of(&extension);
                    let entry =
                        FileEntry { path: PathBuf::from(&path_text), path_text, size: 0, modified_ns: 0, extension };
                    send(Outcome::Failed { facts: facts_of(&entry, None, &fingerprint), previous, reason })?;
                    continue;
                }
                ScanItem::Filtered => {
                    Counters::add(&counters.filtered_out, 1);
                    continue;
                }
                ScanItem::File(entry) => entry,
            };
            Counters::add(&counters.files_seen, 1);
            let previous = known.remove(&entry.path_text);
            let fingerprint = fingerprint.of(&entry.extension);
            let fingerprint = fingerprint.as_str();
            let settled = previous.as_ref().filter(|p| {
                !settings.full
                    && matches!(p.status(), FileStatus::Completed | FileStatus::NoText)
                    && p.logic_fingerprint.as_deref() == Some(fingerprint)
            });
            let same_stat = |p: &FileRow| p.size == entry.size as i64 && p.modified_ns == entry.modified_ns;
            if settled.is_some_and(same_stat) {
                Counters::add(&counters.unchanged, 1);
                Counters::add(&counters.files_done, 1);
                continue;
            }
            let given_up = previous.as_ref().filter(|p| {
                !settings.full
                    && p.status() == FileStatus::Failed
                    && p.retry_count >= settings.max_retries
                    && same_stat(p)
                    && p.logic_fingerprint.as_deref() == Some(fingerprint)
            });
            if let Some(p) = given_up {
                let reason = format!(
                    "failed {} runs in a row, not retried until it changes (or with --full): {}",
                    p.retry_count,
                    p.error.as_deref().unwrap_or("unknown error")
                );
                send(Outcome::NotRetried(FailedFile { path: entry.path_text, reason }))?;
                continue;
            }
            let hashed =
                match counters.stages.time(Stage::Hash, || hash::hash_file(entry.clone(), settings.max_file_bytes)) {
                    Ok(hashed) => {
                        Counters::add(&counters.files_read, 1);
                        Counters::add(&counters.bytes_read, hashed.bytes.len() as u64);
                        hashed
                    }
                    // A completed file that cannot be read now is not proven changed: keep it.
                    Err(error @ hash::ReadError::Io(_))
                        if previous.as_ref().is_some_and(|p| p.status() == FileStatus::Completed) =>
                    {
                        send(Outcome::NotChecked(FailedFile { path: entry.path_text, reason: error.to_string() }))?;
                        continue;
                    }
                    Err(error) => {
                        let facts = facts_of(&entry, None, fingerprint);
                        send(Outcome::Failed { facts, previous, reason: error.to_string() })?;
                        continue;
                    }
                };
            if settled.is_some_and(|p| p.content_hash.as_deref() == Some(hashed.content_hash.as_str())) {
                send(Outcome::Restat {
                    path: entry.path_text,
                    size: entry.size as i64,
                    modified_ns: entry.modified_ns,
                })?;
                continue;
            }
            let Some(to_extract) = to_extract else {
                let is_new = previous.is_none_or(|p| p.status() == FileStatus::Deleted);
                send(Outcome::WouldEmbed { path: entry.path_text, extension: entry.extension, is_new })?;
                continue;
            };
            to_extract
                .send(ToExtract { hashed, previous })
                .map_err(|_| anyhow::anyhow!("the extract stage stopped"))?;
        }
        counters.scan_finished.store(true, Ordering::SeqCst);
        // What remains of `known` was not found. Only files this walk looked for, and could
        // have seen, are proven gone.
        let beneath = |file: &FileRow, entry: &str| file.path == entry || is_under(&file.path, entry);
        let mut unseen: Vec<FileRow> =
            known.into_values().filter(|f| in_scope(f) && !unfollowed.iter().any(|link| beneath(f, link))).collect();
        unseen.sort_by(|a, b| a.path.cmp(&b.path));
        let mut vanished = Vec::new();
        for file in unseen {
            match unwalked.iter().find(|(dir, _)| beneath(&file, dir)) {
                Some((dir, reason)) => send(Outcome::NotChecked(FailedFile {
                    reason: format!("not checked, {dir} could not be walked: {reason}"),
                    path: file.path,
                }))?,
                None => vanished.push(file),
            }
        }
        if RefusedDeletes::needed(vanished.len(), indexed_in_scope) && !settings.allow_mass_delete {
            let refused = RefusedDeletes { vanished: vanished.len() as u64, indexed: indexed_in_scope as u64 };
            send(Outcome::TooManyVanished { refused, paths: vanished.into_iter().map(|f| f.path).collect() })?;
        } else if !vanished.is_empty() {
            send(Outcome::Vanished(vanished))?;
        }
        Ok(())
    }
}

/// Whether `path` lies inside the directory `root`.
fn is_under(path: &str, root: &str) -> bool {
    let root = root.trim_end_matches('/');
    path.strip_prefix(root).is_some_and(|rest| rest.starts_with('/'))
}

/// One extract thread: extracts and chunks the files in `queue` until it closes, behind the
/// model in the scheduler's eyes. Once the job is cancelled it sends nothing more, so a file
/// whose extraction was cut short is not failed.
fn extract_stage(
    queue: &crossbeam_channel::Receiver<ToExtract>,
    out: &ChunkSender,
    extractors: &ExtractorPool,
    fingerprint: &LogicFingerprint,
    chunker: &LazyChunker,
    clock: &StageClock,
    cancel: &AtomicBool,
) -> Result<()> {
    extract::run_behind_the_model();
    for ToExtract { hashed, previous } in queue {
        let outcome = prepare_file(hashed, previous, fingerprint, chunker, extractors, clock, cancel)?;
        if cancel.load(Ordering::SeqCst) {
            return Ok(());
        }
        out.send(outcome)?;
    }
    Ok(())
}

/// How many chunks may wait between the prepare and embed stages, besides the embed stage's
/// own window: the queue is bounded by what its files hold, not by their count, so a few
/// huge text files cannot queue gigabytes.
const PREPARED_CHUNKS: usize = 2048;

/// The chunks waiting between the prepare and embed stages. A file larger than the whole
/// budget is let through alone.
struct ChunkBudget {
    limit: usize,
    /// Chunks sent and not yet taken, and whether the taker has stopped.
    state: std::sync::Mutex<(usize, bool)>,
    taken: std::sync::Condvar,
}

impl ChunkBudget {
    fn new(limit: usize) -> Self {
        Self { limit, state: std::sync::Mutex::new((0, false)), taken: std::sync::Condvar::new() }
    }

    /// Waits until `chunks` more fit, or the taker has stopped.
    fn reserve(&self, chunks: usize) {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while state.0 > 0 && state.0 + chunks > self.limit && !state.1 {
            state = self.taken.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        state.0 += chunks;
    }

    fn release(&self, chunks: usize) {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.0 = state.0.saturating_sub(chunks);
        self.taken.notify_all();
    }

    fn close(&self) {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).1 = true;
        self.taken.notify_all();
    }
}

/// The chunks an outcome carries towards the model.
fn chunks_in(outcome: &Outcome) -> usize {
    match outcome {
        Outcome::Embedded(file) => file.prepared.chunks.len(),
        _ => 0,
    }
}

/// The prepare side of the queue to the embed stage, within its [`ChunkBudget`].
struct ChunkSender<'a> {
    sender: crossbeam_channel::Sender<Outcome>,
    budget: &'a ChunkBudget,
}

impl ChunkSender<'_> {
    fn send(&self, outcome: Outcome) -> Result<()> {
        self.budget.reserve(chunks_in(&outcome));
        self.sender.send(outcome).map_err(|_| anyhow::anyhow!("the embed stage stopped"))
    }
}

/// The embed side of the queue: taking an outcome frees its chunks' room.
struct ChunkReceiver<'a> {
    receiver: crossbeam_channel::Receiver<Outcome>,
    budget: &'a ChunkBudget,
}

impl ChunkReceiver<'_> {
    /// The next outcome, waiting for one; `None` once every sender is gone.
    fn recv(&self) -> Option<Outcome> {
        self.receiver.recv().ok().inspect(|outcome| self.budget.release(chunks_in(outcome)))
    }

    /// The next outcome if one is ready.
    fn try_recv(&self) -> Option<Outcome> {
        self.receiver.try_recv().ok().inspect(|outcome| self.budget.release(chunks_in(outcome)))
    }
}

fn prepare_file(
    hashed: HashedFile,
    previous: Option<FileRow>,
    fingerprint: &LogicFingerprint,
    chunker: &LazyChunker,
    extractors: &ExtractorPool,
    clock: &StageClock,
    cancel: &AtomicBool,
) -> Result<Outcome> {
    let fingerprint = fingerprint.of(&hashed.entry.extension);
    let facts = facts_of(&hashed.entry, Some(hashed.content_hash.clone()), &fingerprint);
    let extracted =
        clock.time(Stage::Extract, || extract::extract(&hashed.entry.extension, &hashed.bytes, extractors, cancel));
    Ok(match extracted {
        Ok(document) => {
            let chunker = chunker.get()?;
            let chunks = clock.time(Stage::Chunk, || chunker.chunk(&document));
            if chunks.is_empty() {
                return Ok(Outcome::NoText { facts, previous, reason: extract::ExtractError::NoText.to_string() });
            }
            Outcome::Embedded(EmbeddedFile { prepared: PreparedFile { facts, previous, chunks }, vectors: Vec::new() })
        }
        Err(error @ (extract::ExtractError::NoText | extract::ExtractError::Empty)) => {
            Outcome::NoText { facts, previous, reason: error.to_string() }
        }
        Err(error @ extract::ExtractError::NotText(_)) => {
            Outcome::NotText { facts, previous, reason: error.to_string() }
        }
        Err(extract::ExtractError::NoExtractor(reason)) => anyhow::bail!("{reason}"),
        Err(error) => Outcome::Failed { facts, previous, reason: error.to_string() },
    })
}

/// The chunker, built by the first file that needs it: building it parses the model's
/// tokenizer, which a re-run with nothing to embed never needs.
struct LazyChunker {
    model: ModelInfo,
    chunk_size: usize,
    chunk_overlap: usize,
    built: OnceLock<Result<Chunker, String>>,
}

impl LazyChunker {
    fn get(&self) -> Result<&Chunker> {
        let built = self.built.get_or_init(|| {
            let tokenizer = self.model.tokenizer().map_err(|e| format!("{e:#}"))?;
            Chunker::new(&tokenizer, self.chunk_size, self.chunk_overlap, self.model.max_sequence)
                .map_err(|e| format!("{e:#}"))
        });
        built.as_ref().map_err(|e| anyhow::anyhow!("{e}"))
    }
}

/// How many walked entries the walk may run ahead of the prepare stage.
const WALK_AHEAD: usize = 65_536;

/// How many model calls' worth of chunks (by tokens, and by texts) the embed stage gathers,
/// when the prepare stage has them ready, before it sorts them by tokens and runs the model:
/// a wider window puts chunks of like length together, so calls carry less padding.
const SORT_WINDOW_BATCHES: usize = 4;

/// Whether chunks of `tokens` tokens in all, `texts` of them, fill a sort window.
fn fills_window(batching: Batching, tokens: usize, texts: usize) -> bool {
    tokens >= batching.max_tokens * SORT_WINDOW_BATCHES || texts >= batching.max_texts * SORT_WINDOW_BATCHES
}

/// How many of `chunks` make the next window: up to the first that fills it, all if none
/// does (at least one, given any).
fn window_len(batching: Batching, chunks: &[&Chunk]) -> usize {
    let mut tokens = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        tokens += chunk.tokens;
        if fills_window(batching, tokens, i + 1) {
            return i + 1;
        }
    }
    chunks.len()
}

/// Runs the model over prepared files, batching chunks across small files; chunks the
/// embedding cache knows are not embedded again. It takes what the prepare stage has ready,
/// up to a window of [`SORT_WINDOW_BATCHES`] model calls, so the model never waits for a full
/// window; a file bigger than a window is embedded a window at a time.
fn embed_stage(
    mut embedder: Embedder,
    batching: Batching,
    input: &ChunkReceiver,
    output: &mpsc::Sender<Outcome>,
    counters: &Counters,
    cancel: &AtomicBool,
    cache: Option<&EmbeddingCache>,
) -> Result<()> {
    let send = |outcome| output.blocking_send(outcome).map_err(|_| anyhow::anyhow!("the commit stage stopped"));
    let mut pending: Vec<EmbeddedFile> = Vec::new();
    let (mut pending_tokens, mut pending_chunks) = (0, 0);
    loop {
        let next = if pending.is_empty() { input.recv() } else { input.try_recv() };
        match next {
            Some(Outcome::Embedded(file)) => {
                pending_tokens += file.prepared.chunks.iter().map(|c| c.tokens).sum::<usize>();
                pending_chunks += file.prepared.chunks.len();
                pending.push(file);
                if !fills_window(batching, pending_tokens, pending_chunks) {
                    continue;
                }
            }
            Some(other) => {
                send(other)?;
                continue;
            }
            None if pending.is_empty() => return Ok(()),
            None => {}
        }
        if cancel.load(Ordering::SeqCst) {
            return Ok(());
        }
        let chunks: Vec<&Chunk> = pending.iter().flat_map(|f| f.prepared.chunks.iter()).collect();
        let mut known = match cache {
            Some(cache) => {
                let hashes: HashSet<&str> = chunks.iter().map(|c| c.content_hash.as_str()).collect();
                counters.stages.time(Stage::Cache, || cache.lookup(&hashes.into_iter().collect::<Vec<_>>()))?
            }
            None => HashMap::new(),
        };
        // With the cache, each distinct text it does not know is embedded once; without it
        // (`--full`), every chunk goes to the model.
        let mut seen = HashSet::new();
        let misses: Vec<&Chunk> = chunks
            .iter()
            .filter(|c| {
                cache.is_none() || (!known.contains_key(&c.content_hash) && seen.insert(c.content_hash.as_str()))
            })
            .copied()
            .collect();
        let mut fresh = Vec::with_capacity(misses.len());
        let mut rest = misses.as_slice();
        while !rest.is_empty() {
            if cancel.load(Ordering::SeqCst) {
                return Ok(());
            }
            let (window, after) = rest.split_at(window_len(batching, rest));
            let texts: Vec<(&str, usize)> = window.iter().map(|c| (c.content.as_str(), c.tokens)).collect();
            let vectors = counters.stages.time(Stage::Embed, || embedder.embed(&texts, batching));
            fresh.extend(vectors.context("embedding chunks")?);
            Counters::add(&counters.chunks_embedded, window.len() as u64);
            rest = after;
        }
        if let Some(cache) = cache {
            let entries: Vec<(&str, &[f32])> =
                misses.iter().zip(&fresh).map(|(c, v)| (c.content_hash.as_str(), v.as_slice())).collect();
            counters.stages.time(Stage::Cache, || cache.store(&entries))?;
        }
        Counters::add(&counters.cache_hits, (chunks.len() - misses.len()) as u64);
        known.extend(misses.iter().map(|c| c.content_hash.clone()).zip(fresh));
        for mut file in pending.drain(..) {
            file.vectors = file.prepared.chunks.iter().map(|c| known[&c.content_hash].clone()).collect();
            send(Outcome::Embedded(file))?;
        }
        (pending_tokens, pending_chunks) = (0, 0);
    }
}

#[derive(Default)]
struct Tally {
    added: u64,
    updated: u64,
    deleted: u64,
    failed: Vec<FailedFile>,
    not_retried: Vec<FailedFile>,
    scan_problems: Vec<FailedFile>,
    scan_notes: Vec<FailedFile>,
    no_text: Vec<FailedFile>,
    not_text: Vec<FailedFile>,
    not_checked: Vec<FailedFile>,
    refused_deletes: Option<RefusedDeletes>,
    /// Each file this job completed, failed or deleted: what the end-of-job check looks at.
    touched: Vec<Touched>,
    /// Files whose work item this worker's lease lost to another before it finished.
    lost: Vec<String>,
    /// Work items a planner queued.
    queued: u64,
}

impl Tally {
    fn into_report(
        self,
        job_id: String,
        settings: &JobSettings,
        status: &str,
        counters: &Counters,
        started: Instant,
        error: Option<String>,
    ) -> JobReport {
        let elapsed = started.elapsed().as_secs_f64();
        let chunks = counters.chunks_embedded.load(Ordering::Relaxed);
        JobReport {
            job_id,
            collection: settings.collection.clone(),
            status: status.to_string(),
            files_seen: counters.files_seen.load(Ordering::Relaxed),
            added: self.added,
            updated: self.updated,
            unchanged: counters.unchanged.load(Ordering::Relaxed),
            deleted: self.deleted,
            failed: self.failed,
            not_retried: self.not_retried,
            scan_problems: self.scan_problems,
            scan_notes: self.scan_notes,
            no_text: self.no_text,
            not_text: self.not_text,
            filtered_out: counters.filtered_out.load(Ordering::Relaxed),
            not_checked: self.not_checked,
            refused_deletes: self.refused_deletes,
            lost_leases: self.lost,
            queued: self.queued,
            queue: None,
            verified: None,
            plan: None,
            files_read: counters.files_read.load(Ordering::Relaxed),
            bytes_read: counters.bytes_read.load(Ordering::Relaxed),
            chunks,
            cache_hits: counters.cache_hits.load(Ordering::Relaxed),
            points: counters.points_written.load(Ordering::Relaxed),
            elapsed_seconds: elapsed,
            chunks_per_second: chunks as f64 / elapsed.max(1e-9),
            peak_memory_mib: crate::progress::peak_memory_mib(),
            stage_seconds: counters.stages.seconds(),
            error,
        }
    }

    /// The job row's counters.
    fn counters(&self, live: &Counters) -> JobCounters {
        JobCounters {
            total_files: live.files_seen.load(Ordering::Relaxed) as i64,
            processed_files: (self.added + self.updated) as i64,
            failed_files: self.failed.len() as i64,
            skipped_files: live.unchanged.load(Ordering::Relaxed) as i64,
            deleted_files: self.deleted as i64,
        }
    }
}

/// Writes embedded files through the protocol, in commit groups.
struct Committer<'a> {
    settings: &'a JobSettings,
    catalog: &'a Catalog,
    /// PostgreSQL's collection lock, confirmed before each write of a commit group.
    lock: Option<&'a CollectionLock>,
    index: &'a dyn VectorIndex,
    parquet: &'a ParquetCopy,
    job_id: &'a str,
    model_id: &'a str,
    counters: &'a Counters,
    progress: &'a Progress,
    group: Vec<EmbeddedFile>,
    group_points: usize,
    group_started: Instant,
    /// Names this committer's parquet parts apart from those of other processes on the job.
    part_token: String,
    parts_written: u64,
    report: Tally,
}

impl Committer<'_> {
    async fn run(&mut self, input: &mut mpsc::Receiver<Outcome>) -> Result<()> {
        loop {
            let wait = self.settings.commit_interval.saturating_sub(self.group_started.elapsed());
            let next = if self.group.is_empty() {
                input.recv().await
            } else {
                match tokio::time::timeout(wait, input.recv()).await {
                    Ok(next) => next,
                    Err(_) => {
                        self.flush().await?;
                        continue;
                    }
                }
            };
            let Some(outcome) = next else { break };
            self.handle(outcome).await?;
            if self.group_points >= self.settings.upload_batch_size
                || (!self.group.is_empty() && self.group_started.elapsed() >= self.settings.commit_interval)
            {
                self.flush().await?;
            }
            self.progress.tick();
        }
        self.flush().await
    }

    async fn handle(&mut self, outcome: Outcome) -> Result<()> {
        match outcome {
            Outcome::Embedded(file) => {
                if self.group.is_empty() {
                    self.group_started = Instant::now();
                }
                self.group_points += file.vectors.len();
                self.group.push(file);
            }
            Outcome::Restat { path, size, modified_ns } => {
                self.catalog.refresh_stat(&self.settings.collection, &path, size, modified_ns).await?;
                Counters::add(&self.counters.unchanged, 1);
                Counters::add(&self.counters.files_done, 1);
            }
            Outcome::Failed { facts, previous, reason } => {
                if self.record_without_points(&facts, previous, FileStatus::Failed, &reason).await? {
                    self.report.failed.push(FailedFile { path: facts.path, reason });
                }
            }
            Outcome::NoText { facts, previous, reason } => {
                if self.record_without_points(&facts, previous, FileStatus::NoText, &reason).await? {
                    self.report.no_text.push(FailedFile { path: facts.path, reason });
                }
            }
            Outcome::NotText { facts, previous, reason } => {
                if self.record_without_points(&facts, previous, FileStatus::NoText, &reason).await? {
                    self.report.not_text.push(FailedFile { path: facts.path, reason });
                }
            }
            Outcome::ScanProblem(problem) => self.report.scan_problems.push(problem),
            Outcome::ScanNote(note) => self.report.scan_notes.push(note),
            Outcome::NotRetried(file) => {
                self.report.not_retried.push(file);
                Counters::add(&self.counters.files_done, 1);
            }
            Outcome::WouldEmbed { path, .. } => anyhow::bail!("{path}: a planned change reached the commit stage"),
            Outcome::Vanished(files) => {
                self.ensure_lock_held().await?;
                // A batch's points go before its rows say `deleted`: a crash in between leaves
                // the files for the next run to delete again.
                for batch in files.chunks(DOCUMENTS_PER_DELETE) {
                    let clock = &self.counters.stages;
                    let paths: Vec<String> = batch.iter().map(|f| f.path.clone()).collect();
                    let lost = clock.timed(Stage::Commit, self.catalog.lost_leases(&paths)).await?;
                    let batch: Vec<&FileRow> = batch.iter().filter(|f| !lost.contains(&f.path)).collect();
                    let doc_ids: Vec<String> = batch.iter().map(|f| f.doc_id.clone()).collect();
                    clock.timed(Stage::Upsert, self.index.delete_documents(&doc_ids)).await?;
                    let paths: Vec<String> = batch.iter().map(|f| f.path.clone()).collect();
                    let deleted = self.catalog.mark_deleted(&self.settings.collection, self.job_id, &paths);
                    let lost_since = clock.timed(Stage::Commit, deleted).await?;
                    self.report.deleted += (batch.len() - lost_since.len()) as u64;
                    self.report.lost.extend(lost.into_iter().chain(lost_since.iter().cloned()));
                    let batch = batch.into_iter().filter(|f| !lost_since.contains(&f.path));
                    self.report.touched.extend(batch.map(|f| Touched {
                        path: f.path.clone(),
                        doc_id: f.doc_id.clone(),
                        points: 0,
                    }));
                }
            }
            Outcome::NotChecked(file) => self.report.not_checked.push(file),
            Outcome::TooManyVanished { refused, .. } => self.report.refused_deletes = Some(refused),
        }
        Ok(())
    }

    /// Removes the points a file may have had, then records it as `status` (failed, or no
    /// text) with `reason`. Returns false, having done neither, when the file's lease was lost.
    async fn record_without_points(
        &mut self,
        facts: &FileFacts,
        previous: Option<FileRow>,
        status: FileStatus,
        reason: &str,
    ) -> Result<bool> {
        let path = std::slice::from_ref(&facts.path);
        if !self.catalog.lost_leases(path).await?.is_empty() {
            self.report.lost.push(facts.path.clone());
            return Ok(false);
        }
        if previous.as_ref().is_some_and(|p| p.vectors_created > 0 || p.status() != FileStatus::Completed) {
            self.index.delete_documents(std::slice::from_ref(&facts.doc_id)).await?;
        }
        let catalog = self.catalog;
        if !catalog.record_without_points(&self.settings.collection, self.job_id, facts, status, reason).await? {
            self.report.lost.push(facts.path.clone());
            return Ok(false);
        }
        self.report.touched.push(Touched { path: facts.path.clone(), doc_id: facts.doc_id.clone(), points: 0 });
        Counters::add(&self.counters.files_done, 1);
        Ok(true)
    }

    /// Stops the job (resumably) when PostgreSQL's collection lock was lost: no write may
    /// go out unlocked.
    async fn ensure_lock_held(&self) -> Result<()> {
        match self.lock {
            Some(lock) => lock.ensure_held().await,
            None => Ok(()),
        }
    }

    /// The write protocol for one commit group.
    async fn flush(&mut self) -> Result<()> {
        if self.group.is_empty() {
            return Ok(());
        }
        self.ensure_lock_held().await?;
        let mut group = std::mem::take(&mut self.group);
        self.group_points = 0;
        let collection = &self.settings.collection;
        let clock = &self.counters.stages;
        let facts: Vec<FileFacts> = group.iter().map(|f| f.prepared.facts.clone()).collect();
        let lost = clock.timed(Stage::Commit, self.catalog.mark_processing(collection, self.job_id, &facts)).await?;
        if !lost.is_empty() {
            group.retain(|f| !lost.contains(&f.prepared.facts.path));
            self.report.lost.extend(lost);
        }

        let created_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let points: Vec<Point> = group
            .iter()
            .flat_map(|file| {
                let facts = &file.prepared.facts;
                file.prepared.chunks.iter().zip(&file.vectors).map(|(chunk, vector)| Point {
                    id: hash::point_id(&facts.doc_id, chunk.index),
                    vector: vector.clone(),
                    payload: PointPayload {
                        path: facts.path.clone(),
                        doc_id: facts.doc_id.clone(),
                        chunk_index: chunk.index,
                        content: chunk.content.clone(),
                        content_hash: chunk.content_hash.clone(),
                        job_id: self.job_id.to_string(),
                        model: self.model_id.to_string(),
                        created_at: created_at.clone(),
                        origin: chunk.origin.clone(),
                    },
                })
            })
            .collect();
        let part = format!("{}-{:06}", self.part_token, self.parts_written);
        clock.time(Stage::Parquet, || self.parquet.write_part(self.job_id, &part, &points))?;
        self.parts_written += 1;

        let counters = self.counters;
        let upserted = upsert_in_batches(
            self.index,
            &points,
            self.settings.upload_batch_size,
            self.settings.upload_parallelism,
            |n| Counters::add(&counters.points_written, n as u64),
        );
        clock.timed(Stage::Upsert, upserted).await?;

        let mut done = Vec::with_capacity(group.len());
        let mut written = Vec::with_capacity(group.len());
        for file in &group {
            let count = file.vectors.len() as u32;
            let needs_trim = file
                .prepared
                .previous
                .as_ref()
                .is_some_and(|p| p.status() != FileStatus::Completed || p.vectors_created > count as i64);
            if needs_trim {
                clock.timed(Stage::Upsert, self.index.delete_tail(&file.prepared.facts.doc_id, count)).await?;
            }
            let facts = &file.prepared.facts;
            let is_update = file.prepared.previous.as_ref().is_some_and(|p| p.status() != FileStatus::Deleted);
            written
                .push((Touched { path: facts.path.clone(), doc_id: facts.doc_id.clone(), points: count }, is_update));
            done.push(Completion {
                path: file.prepared.facts.path.clone(),
                chunks: file.prepared.chunks.len() as i64,
                vectors: count as i64,
            });
        }
        let lost = clock.timed(Stage::Commit, self.catalog.mark_completed(collection, self.job_id, &done)).await?;
        for (touched, is_update) in written {
            if lost.contains(&touched.path) {
                continue;
            }
            if is_update {
                self.report.updated += 1;
            } else {
                self.report.added += 1;
            }
            Counters::add(&self.counters.files_done, 1);
            self.report.touched.push(touched);
        }
        self.report.lost.extend(lost);
        let current = group.last().map(|f| f.prepared.facts.path.as_str());
        let job_counters = self.report.counters(self.counters);
        clock.timed(Stage::Commit, self.catalog.save_progress(self.job_id, &job_counters, current)).await?;
        self.group_started = Instant::now();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chunk_budget_holds_senders_until_chunks_are_taken() {
        let budget = Arc::new(ChunkBudget::new(10));
        budget.reserve(25); // a file larger than the whole budget goes alone
        let waiting = {
            let budget = budget.clone();
            std::thread::spawn(move || budget.reserve(1))
        };
        std::thread::sleep(Duration::from_millis(200));
        assert!(!waiting.is_finished(), "no room until the large file is taken");
        budget.release(25);
        waiting.join().unwrap();
        budget.reserve(9);
        let after_close = {
            let budget = budget.clone();
            std::thread::spawn(move || budget.reserve(5))
        };
        budget.close();
        after_close.join().unwrap();
    }

    #[test]
    fn paths_under_a_root() {
        assert!(is_under("/docs/a.txt", "/docs"));
        assert!(is_under("/docs/sub/a.txt", "/docs/"));
        assert!(!is_under("/docs2/a.txt", "/docs"));
        assert!(!is_under("/other/a.txt", "/docs"));
    }

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
        assert_eq!(distinct.len(), formats.len() - 2, "md, pdf and docx share a version string; the rest differ");
    }
}
