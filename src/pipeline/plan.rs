//! # Planning
//!
//! In: the walk and the catalog's view of the collection. Out: what a run would change,
//! judged without extracting anything: for `--dry-run`, a [`Plan`] and nothing written;
//! for a job queued for workers (`--workers`), its work items in PostgreSQL's queue (files
//! to embed, files to delete), plus what the planner records itself (files the walk already
//! found unreadable, files whose mtime moved but not their content). [`plan_job`] (the dry
//! run) and [`queue_job`] (the queued job) are the entry points, each returning the run's
//! [`JobReport`].

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::Result;

use super::{
    Begun, FailedFile, JobReport, JobSettings, KnownFiles, LogicFingerprint, Outcome, Plan, PlannedChange, Planning,
    Preparer, RefusedDeletes, RunStatus, Tally,
};
use crate::catalog::{CollectionCatalog, FileFacts, FileStatus, JobStatus, KnownFile, PreviousRow, WorkItem, WorkKind};
use crate::model::ModelInfo;
use crate::parquet_copy::ParquetCopy;
use crate::progress::Counters;
use crate::scan::{self, ScanItem};
use crate::store::VectorIndex;

/// What the planner found: the tally of a run's report, and the changes behind it.
#[derive(Default)]
struct Findings {
    tally: Tally,
    plan: Plan,
    /// Files to embed, with the extension the walk judged them by.
    embed: Vec<WorkItem>,
    /// Known files no longer on disk (unless the run refused to delete them).
    vanished: Vec<KnownFile>,
    /// Files the walk or the hash found unreadable (too large, a name that is not UTF-8).
    failed: Vec<(FileFacts, Option<PreviousRow>, String)>,
    /// Files whose content is unchanged though their size or mtime moved.
    restat: Vec<(String, i64, i64)>,
}

/// Judges every walked item against `known`, reading only the files whose stat moved.
/// Blocks the calling thread (see [`Preparer::run`]).
fn find(
    settings: &JobSettings,
    fingerprint: &LogicFingerprint,
    walked: impl IntoIterator<Item = ScanItem>,
    known: KnownFiles,
    counters: &Counters,
    cancel: &AtomicBool,
) -> Result<Findings> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let stage = Preparer { settings, fingerprint, counters, cancel, changed: &Planning };
    stage.run(walked, known, &tx)?;
    drop(tx);
    let mut found = Findings::default();
    let tally = &mut found.tally;
    for outcome in rx {
        match outcome {
            Outcome::Changed(PlannedChange { path, extension, is_new }) => {
                if is_new {
                    tally.added += 1;
                    found.plan.add.push(path.clone());
                } else {
                    tally.updated += 1;
                    found.plan.update.push(path.clone());
                }
                found.embed.push(WorkItem { path, extension, kind: WorkKind::Embed });
            }
            Outcome::Restat { path, size, modified_ns } => {
                Counters::add(&counters.unchanged, 1);
                found.restat.push((path, size, modified_ns));
            }
            Outcome::Failed { facts, previous, reason } => {
                tally.failed.push(FailedFile { path: facts.path.clone(), reason: reason.clone() });
                found.failed.push((facts, previous, reason));
            }
            Outcome::NotRetried(file) => tally.not_retried.push(file),
            Outcome::ScanProblem(problem) => tally.scan_problems.push(problem),
            Outcome::ScanNote(note) => tally.scan_notes.push(note),
            Outcome::Vanished(files) => {
                tally.deleted += files.len() as u64;
                found.plan.delete.extend(files.iter().map(|f| f.path.clone()));
                found.vanished = files;
            }
            Outcome::NotChecked(file) => tally.not_checked.push(file),
            Outcome::TooManyVanished { refused, paths } => {
                found.plan.delete = paths;
                tally.refused_deletes = Some(refused);
            }
        }
    }
    Ok(found)
}

/// `--dry-run`: scan and change detection only (hashing where size or mtime moved); no
/// job row, no extraction, no model, no writes anywhere.
pub async fn plan_job(
    settings: &JobSettings,
    catalog: &CollectionCatalog,
    model: &ModelInfo,
    cancel: &AtomicBool,
) -> Result<JobReport> {
    let started = Instant::now();
    let fingerprint = super::job_fingerprint(settings, model)?;
    let known = super::known_files(settings, catalog);
    let counters = Counters::default();
    let walked = scan::scan(&settings.root, &settings.scan);
    let found = tokio::task::block_in_place(|| find(settings, &fingerprint, walked, known, &counters, cancel))?;
    let mut report = found.tally.into_report(String::new(), settings, RunStatus::DryRun, &counters, started, None);
    report.plan = Some(found.plan);
    Ok(report)
}

/// A job queued for `ingest worker` processes (`settings.queued`): begins the job like a
/// local run, plans its work into the catalog's queue ([`enqueue_job`]), and ends the job
/// itself when that leaves nothing for workers to do. The report says `queued` otherwise.
pub async fn queue_job(
    settings: &JobSettings,
    catalog: &CollectionCatalog,
    index: &dyn VectorIndex,
    parquet: &ParquetCopy,
    model: &ModelInfo,
    cancel: &AtomicBool,
) -> Result<JobReport> {
    let started = Instant::now();
    let fingerprint = super::job_fingerprint(settings, model)?;
    let Begun { job_id, walker, walked, known, counters } = super::begin_job(settings, catalog, index, model).await?;
    let planned = enqueue_job(settings, catalog, index, &fingerprint, &job_id, walked, known, &counters, cancel);
    let planned = planned.await;
    walker.join().map_err(|_| anyhow::anyhow!("the walk panicked"))?;
    let tally = planned?;
    catalog.save_progress(&job_id, &tally.counters(&counters), None).await?;
    // Too many vanished files: the deletions were not queued, and the run says why.
    let refused = tally.refused_deletes.as_ref().map(RefusedDeletes::message);
    // Nothing for workers to do: the planner ends the job itself.
    let ended = tally.queued == 0 && super::worker::end_queued_job(catalog, index, parquet, &job_id).await?;
    let status = if ended { RunStatus::Job(JobStatus::Completed) } else { RunStatus::Queued };
    let mut report = tally.into_report(job_id.clone(), settings, status, &counters, started, refused);
    if ended {
        let job = catalog.job(&job_id).await?;
        report.verified = job.and_then(|j| j.verification).map(serde_json::from_value).transpose()?;
    }
    Ok(report)
}

/// A job queued for workers: judges the walk like a run, records the work in the catalog's
/// queue (which wakes idle workers), and records itself what needs no worker. Returns the
/// tally of what it planned; the job stays `processing` until the workers are done.
#[allow(clippy::too_many_arguments)] // the job's settings, its place, and the walk's two sides
async fn enqueue_job(
    settings: &JobSettings,
    catalog: &CollectionCatalog,
    index: &dyn VectorIndex,
    fingerprint: &LogicFingerprint,
    job_id: &str,
    walked: crossbeam_channel::Receiver<ScanItem>,
    known: KnownFiles,
    counters: &Counters,
    cancel: &AtomicBool,
) -> Result<Tally> {
    let found = tokio::task::block_in_place(|| find(settings, fingerprint, walked, known, counters, cancel))?;
    for (path, size, modified_ns) in &found.restat {
        catalog.refresh_stat(path, *size, *modified_ns).await?;
    }
    for (facts, previous, reason) in &found.failed {
        if previous.is_some_and(|p| p.may_have_points()) {
            index.delete_documents(std::slice::from_ref(&facts.doc_id)).await?;
        }
        catalog.record_without_points(job_id, facts, FileStatus::Failed, reason).await?;
    }
    let mut items = found.embed;
    items.extend(found.vanished.into_iter().map(|f| WorkItem {
        path: f.path,
        extension: f.extension,
        kind: WorkKind::Delete,
    }));
    catalog.enqueue(job_id, &items).await?;
    let mut tally = found.tally;
    tally.queued = items.len() as u64;
    tally.planned_new = found.plan.add;
    tally.planned_updates = found.plan.update;
    Ok(tally)
}
