//! # Job runner
//!
//! In: a directory, the job's settings, the collection's [`CollectionCatalog`], a
//! [`VectorIndex`] and an [`Embedder`]. Out: the collection brought in line with the
//! directory, the catalog rows that say so, a parquet copy of every new embedding, and a
//! [`JobReport`].
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
//! There are `--extractors` extract threads, so that many files are extracted at once;
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
//! One file per stage, each starting its own thread and holding its own state: `prepare`
//! (change detection, hashing; the prepare thread and the extract threads it starts, for
//! extraction and chunking), `embed` (the embed thread, running the model), `commit` (the
//! commit task, carrying out the write protocol) and `seal` (the job's end: compaction, the
//! store's finish, the end-of-job check). [`plan`] holds the two runs that only plan: the
//! dry run ([`plan::plan_job`]) and a job queued for workers ([`plan::queue_job`]);
//! [`worker`] holds `ingest worker`: the same stages, fed by claims from PostgreSQL's queue
//! instead of a walk. This file holds the job's settings, the messages between the stages,
//! its report, and [`run_job`]: a local run, from its start to its end, in order.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::catalog::{
    CollectionCatalog, CollectionLock, FileFacts, FileStatus, JobStatus, KnownFile, NewJob, ParkedItem, PreviousRow,
    QueueDepth, WorkerRow,
};
use crate::chunk::{Chunk, Chunker};
use crate::consistency::Verification;
use crate::embed::{Batching, Embedder};
use crate::extract::ocr::{OcrMode, OcrSettings};
use crate::extract::OcrTally;
use crate::extract::{ExtractorSettings, Format};
use crate::model::ModelInfo;
use crate::parquet_copy::ParquetCopy;
use crate::progress::{Counters, Progress, Stage, StageSeconds};
use crate::scan::{self, ScanItem, ScanOptions};
use crate::store::VectorIndex;

mod commit;
mod embed;
mod known;
pub mod plan;
mod prepare;
mod seal;
pub mod worker;

use commit::{Committer, Tally};
use known::KnownFiles;
use prepare::{facts_of, ChunkBudget, Planning, Preparer, ToExtract, PREPARED_CHUNKS};

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
    /// The extractor processes: their program, time and memory limits, how many, and what
    /// they do with scans.
    pub extraction: ExtractorSettings,
    /// The run's OCR, and the engine found for it.
    pub ocr: OcrSettings,
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
    /// Pages and images read by OCR (their time is `stage_seconds.ocr`).
    pub ocr_pages: u64,
    /// Files with scanned pages left unread, and why (OCR off or not installed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ocr_unread: Option<OcrUnread>,
    pub points: u64,
    pub elapsed_seconds: f64,
    pub chunks_per_second: f64,
    /// The process's peak resident memory so far, in MiB (Linux).
    pub peak_memory_mib: Option<f64>,
    /// Time each stage spent working (summed over its threads).
    pub stage_seconds: StageSeconds,
    pub error: Option<String>,
    /// For a run that built a generation beside the live one: what became of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<crate::generations::BuiltBeside>,
}

/// Files whose scanned pages were not read, and why: said once per run.
#[derive(Debug, Clone, Serialize)]
pub struct OcrUnread {
    pub files: u64,
    pub reason: String,
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
    previous: Option<PreviousRow>,
    chunks: Vec<Chunk>,
    /// Each chunk's BM25 sparse vector, in the order of `chunks`.
    sparse: Vec<crate::sparse::SparseVector>,
}

/// A file's chunks with their vectors.
struct EmbeddedFile {
    prepared: PreparedFile,
    vectors: Vec<Vec<f32>>,
}

/// What the prepare stage makes of one walked item, and what the stages after it hand on.
/// `Change` is what becomes of a changed file: [`Extracted`] in a run, where the extract
/// threads read it, and a [`PlannedChange`] when only planning.
#[allow(clippy::large_enum_variant)] // a changed file, the most common outcome, is as large
enum Outcome<Change = Extracted> {
    /// A changed file.
    Changed(Change),
    /// Content and logic unchanged, but size or mtime moved: the catalog learns the new ones.
    /// (Files whose stat did not move are only counted, in [`Counters::unchanged`].)
    Restat {
        path: String,
        size: i64,
        modified_ns: i64,
    },
    Failed {
        facts: FileFacts,
        previous: Option<PreviousRow>,
        reason: String,
    },
    ScanProblem(FailedFile),
    /// An entry the walk passed over on purpose.
    ScanNote(FailedFile),
    /// Failed too often and unchanged since: left alone.
    NotRetried(FailedFile),
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

/// A changed file, extracted and chunked by an extract thread (a file whose extraction failed
/// is an [`Outcome::Failed`]).
enum Extracted {
    /// Its chunks, whose vectors the embed stage fills in.
    Embedded(EmbeddedFile),
    /// Read and understood, but holding no text to index (an empty file, a scan without a
    /// text layer): recorded as such, not as a failure.
    NoText { facts: FileFacts, previous: Option<PreviousRow>, reason: String },
    /// A file taken for its contents (no extension, or an unknown one) that is not text:
    /// skipped, and recorded like a file without text so that re-runs pass it by.
    NotText { facts: FileFacts, previous: Option<PreviousRow>, reason: String },
}

/// Planning (a dry run, or a job queued for workers): a changed file, to be embedded.
struct PlannedChange {
    path: String,
    extension: String,
    is_new: bool,
}

/// The logic fingerprint: what, besides a file's bytes, decides its points: the model, the
/// chunking, the version of the extractor of the file's format, and, for a file OCR read
/// (or had to leave unread), the OCR engine and languages.
#[derive(Debug, Clone)]
pub struct LogicFingerprint {
    model_and_chunking: String,
    /// What the run's OCR depends on ([`OcrSettings::fingerprint`]); `None` when it reads
    /// nothing.
    ocr: Option<String>,
    /// The run reads every page by OCR, text layers too (`--ocr force`).
    forces_ocr: bool,
}

/// The OCR part of a file whose scanned pages were left unread.
const OCR_UNREAD: &str = "ocr:unread";

impl LogicFingerprint {
    pub fn new(model_id: &str, chunk_size: usize, chunk_overlap: usize) -> Self {
        Self {
            model_and_chunking: format!("{model_id}|chunk:{chunk_size}/{chunk_overlap}"),
            ocr: None,
            forces_ocr: false,
        }
    }

    /// This fingerprint in a run whose OCR reads as `ocr` says.
    pub fn reading_scans(self, ocr: &OcrSettings) -> Self {
        Self { ocr: ocr.fingerprint(), forces_ocr: ocr.reads() && ocr.mode == OcrMode::Force, ..self }
    }

    /// The fingerprint of a file with this (lower-case) extension, before it is read: what
    /// the row of a file that fails records.
    pub fn of(&self, extension: &str) -> String {
        format!("{}|{}", self.model_and_chunking, Format::from_extension(extension).extractor_version())
    }

    /// The fingerprint a file's row records once it is read, `ocr` saying what OCR did with
    /// it, and `has_text` whether it had text: [`Self::of`], and, for a format OCR may read,
    /// the run's OCR fingerprint when OCR read a page (or, on, found no text at all), or
    /// `ocr:unread` when scanned pages were left unread.
    pub fn recorded(&self, extension: &str, ocr: &OcrTally, has_text: bool) -> String {
        let base = self.of(extension);
        if !Format::from_extension(extension).reads_scans() {
            return base;
        }
        let read = !ocr.pages.is_empty() || !has_text;
        match (&self.ocr, ocr.unread) {
            (_, 1..) => format!("{base}|{OCR_UNREAD}"),
            (Some(reading), 0) if read => format!("{base}|{reading}"),
            (None, 0) if !has_text => format!("{base}|{OCR_UNREAD}"),
            _ => base,
        }
    }

    /// Whether a file whose row records `stored`, with `status` (completed or without text),
    /// needs no new reading in this run: its fingerprint is this run's, except that turning
    /// OCR off, or losing it, re-reads nothing (the scans read before keep their text); a
    /// run that forces OCR re-reads the files read from their text layers; and a file of a
    /// format OCR may read that had no text before OCR existed is read again once it does.
    pub fn settles(&self, stored: Option<&str>, status: FileStatus, extension: &str) -> bool {
        let base = self.of(extension);
        let Some(rest) = stored.and_then(|stored| stored.strip_prefix(base.as_str())) else { return false };
        if !Format::from_extension(extension).reads_scans() {
            return rest.is_empty();
        }
        match (rest.strip_prefix('|'), &self.ocr) {
            _ if rest.is_empty() => match status {
                FileStatus::Completed => !self.forces_ocr,
                _ => self.ocr.is_none(),
            },
            (Some(part), Some(reading)) => part == reading,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// Runs one job to its end. Errors are returned only when the job could not start; a job
/// that fails midway is recorded as failed and reported. With `lock`, the job stops, failed
/// and resumable, as soon as PostgreSQL's collection lock turns out lost. A dry run goes to
/// [`plan::plan_job`], and a job queued for `ingest worker` processes (`settings.queued`) to
/// [`plan::queue_job`]; what follows them here is a local run, in the order it happens.
#[allow(clippy::too_many_arguments)] // each is a distinct collaborator; a bundle would only rename them
pub async fn run_job(
    settings: &JobSettings,
    catalog: &CollectionCatalog,
    lock: Option<&CollectionLock>,
    index: Arc<dyn VectorIndex>,
    parquet: &ParquetCopy,
    embedder: Embedder,
    cancel: Arc<AtomicBool>,
    quiet: bool,
) -> Result<JobReport> {
    if settings.dry_run {
        return plan::plan_job(settings, catalog, &embedder.info, &cancel).await;
    }
    if settings.queued {
        return plan::queue_job(settings, catalog, index.as_ref(), parquet, &embedder.info, &cancel).await;
    }
    let started = Instant::now();
    let model = embedder.info.clone();
    let fingerprint = job_fingerprint(settings, &model)?;
    let Begun { job_id, walker, walked, known, counters } =
        begin_job(settings, catalog, index.as_ref(), &model).await?;

    let source: Source = {
        let (settings, counters, cancel, fingerprint) =
            (settings.clone(), counters.clone(), cancel.clone(), fingerprint.clone());
        Box::new(move |to_extract, out| {
            let stage = Preparer {
                settings: &settings,
                fingerprint: &fingerprint,
                counters: &counters,
                cancel: &cancel,
                changed: to_extract,
            };
            stage.run(walked, known, out)
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
    let (tally, outcome) = stages.run(embedder, source, &cancel, quiet).await?;
    walker.join().map_err(|_| anyhow::anyhow!("the walk panicked"))?;

    let cancelled = cancel.load(Ordering::SeqCst);
    let refused = tally.refused_deletes.as_ref().map(RefusedDeletes::message);
    let (status, error) = match &outcome {
        Ok(()) if cancelled => (JobStatus::Cancelled, Some("cancelled by signal".to_string())),
        // A cancel also stops calls waiting out an outage, with an error that says so.
        Err(e) if cancelled => (JobStatus::Cancelled, Some(format!("cancelled by signal: {e:#}"))),
        Ok(()) if refused.is_some() => (JobStatus::Failed, refused),
        Ok(()) => (JobStatus::Completed, None),
        Err(e) => (JobStatus::Failed, Some(format!("{e:#}"))),
    };
    let mut verified = None;
    let finishing = Instant::now();
    if outcome.is_ok() && !cancelled {
        verified = seal::seal_job(catalog, index.as_ref(), parquet, &job_id).await?;
    }
    counters.stages.add(Stage::Finish, finishing.elapsed());
    catalog.save_progress(&job_id, &tally.counters(&counters), None).await?;
    catalog.set_job_status(&job_id, status, error.as_deref()).await?;
    let mut report = tally.into_report(job_id, settings, status.into(), &counters, started, error);
    report.verified = verified;
    Ok(report)
}

/// The job's logic fingerprint with `model`, once its chunking is checked against the model.
fn job_fingerprint(settings: &JobSettings, model: &ModelInfo) -> Result<LogicFingerprint> {
    Chunker::check(settings.chunk_size, settings.chunk_overlap, model.max_passage_sequence()?)?;
    Ok(LogicFingerprint::new(&model.id, settings.chunk_size, settings.chunk_overlap).reading_scans(&settings.ocr))
}

/// A job that writes, begun: its row, and its walk under way.
struct Begun {
    job_id: String,
    walker: JoinHandle<()>,
    /// The walked entries, at most [`WALK_AHEAD`] ahead of their taker.
    walked: crossbeam_channel::Receiver<ScanItem>,
    /// The catalog's rows of the collection, read alongside the walk.
    known: KnownFiles,
    counters: Arc<Counters>,
}

/// Begins a job that writes (a local run, or one queued for workers): refuses while a queued
/// job of the collection has work open, makes sure the collection exists, records the job
/// (`scanning`), starts the walk and the reading of the catalog's rows, and marks the job
/// `processing`.
async fn begin_job(
    settings: &JobSettings,
    catalog: &CollectionCatalog,
    index: &dyn VectorIndex,
    model: &ModelInfo,
) -> Result<Begun> {
    let (open, _) = catalog.open_work().await?;
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
    // The walk and the reading of the catalog's rows start together, so the two overlap.
    let (walked_tx, walked) = crossbeam_channel::bounded::<ScanItem>(WALK_AHEAD);
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
    let known = known_files(settings, catalog);
    catalog.set_job_status(&job_id, JobStatus::Processing, None).await?;
    Ok(Begun { job_id, walker, walked, known, counters })
}

/// Where the files a job's stages work on come from: run in the prepare thread, it sends
/// changed files to be extracted, and every other outcome straight on.
type Source =
    Box<dyn FnOnce(&crossbeam_channel::Sender<ToExtract>, &crossbeam_channel::Sender<Outcome>) -> Result<()> + Send>;

/// What the stages from extraction to commit share, for one job in one process.
#[derive(Clone, Copy)]
struct Stages<'a> {
    settings: &'a JobSettings,
    catalog: &'a CollectionCatalog,
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
        let model = embedder.info.clone();
        let outage_clocks: Vec<_> =
            std::iter::once(self.catalog.outage_clock().clone()).chain(self.index.outage_clock()).collect();
        for clock in &outage_clocks {
            clock.give_up_when(cancel.clone());
        }
        let progress = Progress::new(self.counters.clone(), outage_clocks, quiet);

        let (prepared_tx, prepared_rx) = crossbeam_channel::bounded::<Outcome>(64);
        let chunk_budget = Arc::new(ChunkBudget::new(PREPARED_CHUNKS));
        let (embedded_tx, mut embedded_rx) = mpsc::channel::<Outcome>(8);
        let preparer = prepare::spawn(self, &model, cancel, source, prepared_tx, chunk_budget.clone())?;
        let embedder_thread = embed::spawn(self, embedder, cancel, prepared_rx, chunk_budget, embedded_tx)?;
        let mut committer = Committer::new(self, &model.id, &progress);
        let commit_result = committer.run(&mut embedded_rx).await;
        drop(embedded_rx);
        let embed_result = embedder_thread.join().map_err(|_| anyhow::anyhow!("the embed stage panicked"))?;
        let prepare_result = preparer.join().map_err(|_| anyhow::anyhow!("the prepare stage panicked"))?;
        progress.finish();
        Ok((committer.into_tally(), commit_result.and(embed_result).and(prepare_result)))
    }
}

/// The catalog's rows of the collection, read alongside a walk of `settings.root`.
fn known_files(settings: &JobSettings, catalog: &CollectionCatalog) -> KnownFiles {
    KnownFiles::read(catalog, &settings.root, &settings.scan)
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
    fn ocr_re_reads_only_the_files_it_read_or_left_unread() {
        let plain = LogicFingerprint::new("m@1", 200, 20);
        let reading = |mode: &str, languages: &str| LogicFingerprint {
            ocr: Some(format!("{mode}tesseract-5/poppler-22/{languages}")),
            forces_ocr: mode == "ocr-force:",
            ..plain.clone()
        };
        let (eng, deu, forced) =
            (reading("ocr-auto:", "eng"), reading("ocr-auto:", "eng+deu"), reading("ocr-force:", "eng"));
        let scanned = OcrTally { pages: vec![2], ..OcrTally::default() };
        let unread = OcrTally { unread: 3, ..OcrTally::default() };
        let none = OcrTally::default();
        let completed = FileStatus::Completed;
        // A text layer everywhere: kept under any OCR but forced.
        let layered = eng.recorded("pdf", &none, true);
        assert_eq!(layered, plain.of("pdf"));
        for fingerprint in [&plain, &eng, &deu] {
            assert!(fingerprint.settles(Some(&layered), completed, "pdf"));
        }
        assert!(!forced.settles(Some(&layered), completed, "pdf"), "force re-reads text layers");
        // Read by OCR: kept while the engine and languages stay, and when OCR goes away.
        let read = eng.recorded("pdf", &scanned, true);
        assert!(eng.settles(Some(&read), completed, "pdf"));
        assert!(!deu.settles(Some(&read), completed, "pdf"), "other languages re-read it");
        assert!(plain.settles(Some(&read), completed, "pdf"), "OCR off or missing keeps what it read");
        assert_eq!(eng.recorded("png", &scanned, true), read.replace("pdf-3", "image-1"));
        // Left unread: read once OCR is there.
        let left = plain.recorded("pdf", &unread, false);
        assert!(plain.settles(Some(&left), FileStatus::NoText, "pdf"));
        assert!(!eng.settles(Some(&left), FileStatus::NoText, "pdf"));
        // No text from before OCR existed: read again once it does.
        assert!(plain.settles(Some(&plain.of("pdf")), FileStatus::NoText, "pdf"));
        assert!(!eng.settles(Some(&plain.of("pdf")), FileStatus::NoText, "pdf"));
        // Other formats ignore OCR.
        assert_eq!(eng.recorded("docx", &none, true), plain.of("docx"));
        assert!(forced.settles(Some(&plain.of("docx")), completed, "docx"));
        assert!(!eng.settles(Some(&format!("{}|x", plain.of("docx"))), completed, "docx"));
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
