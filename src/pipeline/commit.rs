//! # Commit stage
//!
//! In: embedded files and every other [`Outcome`] of the stages before. Out: the write
//! protocol carried out per commit group (catalog `processing` → parquet part → upsert,
//! acknowledged → stale tail trimmed → catalog `completed`), failed and vanished files
//! recorded, and the [`Tally`] a job's report is made from. With a worker's fenced catalog,
//! a file whose lease was lost is left to the worker that took it over; its fence keeps the
//! list of such files for the worker's report. [`Committer::new`] builds the stage from the
//! job's shared parts.

use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::Result;
use tokio::sync::mpsc;

use super::seal::STATISTICS_AFTER_FILES;
use super::{
    EmbeddedFile, Extracted, FailedFile, JobReport, JobSettings, OcrUnread, Outcome, RefusedDeletes, RunStatus, Stages,
};
use crate::catalog::{Completion, FileFacts, FileStatus, JobCounters, KnownFile, PreviousRow};
use crate::hash;
use crate::progress::{Counters, Progress, Stage};
use crate::sparse::ANALYZER_VERSION;
use crate::store::{extension_of, upsert_in_batches, Point, PointPayload, DOCUMENTS_PER_DELETE};

#[derive(Default)]
pub(super) struct Tally {
    pub(super) added: u64,
    pub(super) updated: u64,
    pub(super) deleted: u64,
    pub(super) failed: Vec<FailedFile>,
    pub(super) not_retried: Vec<FailedFile>,
    pub(super) scan_problems: Vec<FailedFile>,
    pub(super) scan_notes: Vec<FailedFile>,
    no_text: Vec<FailedFile>,
    not_text: Vec<FailedFile>,
    pub(super) not_checked: Vec<FailedFile>,
    pub(super) refused_deletes: Option<RefusedDeletes>,
    /// Files whose work item this worker's lease lost to another before it finished: the
    /// worker's fence has the list.
    pub(super) lost: Vec<String>,
    /// Work items a planner queued.
    pub(super) queued: u64,
    /// The files a planner queued to embed: new ones, and those indexed before.
    pub(super) planned_new: Vec<String>,
    pub(super) planned_updates: Vec<String>,
}

impl Tally {
    pub(super) fn into_report(
        self,
        job_id: String,
        settings: &JobSettings,
        status: RunStatus,
        counters: &Counters,
        started: Instant,
        error: Option<String>,
    ) -> JobReport {
        let elapsed = started.elapsed().as_secs_f64();
        let chunks = counters.chunks_embedded.load(Ordering::Relaxed);
        JobReport {
            job_id,
            collection: settings.collection.clone(),
            status,
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
            planned_new: self.planned_new,
            planned_updates: self.planned_updates,
            queue: None,
            verified: None,
            plan: None,
            files_read: counters.files_read.load(Ordering::Relaxed),
            bytes_read: counters.bytes_read.load(Ordering::Relaxed),
            chunks,
            cache_hits: counters.cache_hits.load(Ordering::Relaxed),
            ocr_pages: counters.ocr_pages.load(Ordering::Relaxed),
            ocr_unread: match counters.ocr_unread_files.load(Ordering::Relaxed) {
                0 => None,
                files => Some(OcrUnread { files, reason: settings.ocr.unread_reason() }),
            },
            points: counters.points_written.load(Ordering::Relaxed),
            elapsed_seconds: elapsed,
            chunks_per_second: chunks as f64 / elapsed.max(1e-9),
            peak_memory_mib: crate::progress::peak_memory_mib(),
            stage_seconds: counters.stages.seconds(),
            error,
            generation: None,
        }
    }

    /// The job row's counters.
    pub(super) fn counters(&self, live: &Counters) -> JobCounters {
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
pub(super) struct Committer<'a> {
    /// The job's shared parts: its settings, catalog, collection lock (confirmed before each
    /// write of a commit group), store, parquet copy, counters, and whether this process
    /// keeps the job row's counters (a single run does; workers don't).
    stages: Stages<'a>,
    model_id: &'a str,
    progress: &'a Progress,
    group: Vec<EmbeddedFile>,
    group_points: usize,
    group_started: Instant,
    /// Names this committer's parquet parts apart from those of other processes on the job.
    part_token: String,
    parts_written: u64,
    /// The number of files written after which the catalog's statistics are refreshed next.
    statistics_after: u64,
    report: Tally,
}

impl<'a> Committer<'a> {
    /// A committer for `stages`' job, writing points made by `model_id`, whose progress
    /// `progress` shows.
    pub(super) fn new(stages: &Stages<'a>, model_id: &'a str, progress: &'a Progress) -> Self {
        Self {
            stages: *stages,
            model_id,
            progress,
            group: Vec::new(),
            group_points: 0,
            group_started: Instant::now(),
            part_token: uuid::Uuid::new_v4().simple().to_string()[..8].to_string(),
            parts_written: 0,
            statistics_after: STATISTICS_AFTER_FILES,
            report: Tally::default(),
        }
    }

    /// Commits what `input` brings until it closes, then the last group.
    pub(super) async fn run(&mut self, input: &mut mpsc::Receiver<Outcome>) -> Result<()> {
        loop {
            let wait = self.stages.settings.commit_interval.saturating_sub(self.group_started.elapsed());
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
            if self.group_points >= self.stages.settings.upload_batch_size
                || (!self.group.is_empty() && self.group_started.elapsed() >= self.stages.settings.commit_interval)
            {
                self.flush().await?;
            }
            self.progress.tick();
        }
        self.flush().await
    }

    /// What this committer tallied.
    pub(super) fn into_tally(self) -> Tally {
        self.report
    }

    async fn handle(&mut self, outcome: Outcome) -> Result<()> {
        match outcome {
            Outcome::Changed(Extracted::Embedded(file)) => {
                if self.group.is_empty() {
                    self.group_started = Instant::now();
                }
                self.group_points += file.vectors.len();
                self.group.push(file);
            }
            Outcome::Restat { path, size, modified_ns } => {
                self.stages.catalog.refresh_stat(&path, size, modified_ns).await?;
                Counters::add(&self.stages.counters.unchanged, 1);
                Counters::add(&self.stages.counters.files_done, 1);
            }
            Outcome::Failed { facts, previous, reason } => {
                if self.record_without_points(&facts, previous, FileStatus::Failed, &reason).await? {
                    self.stages.counters.failed(&reason);
                    self.report.failed.push(FailedFile { path: facts.path, reason });
                }
            }
            Outcome::Changed(Extracted::NoText { facts, previous, reason }) => {
                if self.record_without_points(&facts, previous, FileStatus::NoText, &reason).await? {
                    self.report.no_text.push(FailedFile { path: facts.path, reason });
                }
            }
            Outcome::Changed(Extracted::NotText { facts, previous, reason }) => {
                if self.record_without_points(&facts, previous, FileStatus::NoText, &reason).await? {
                    self.report.not_text.push(FailedFile { path: facts.path, reason });
                }
            }
            Outcome::ScanProblem(problem) => self.report.scan_problems.push(problem),
            Outcome::ScanNote(note) => self.report.scan_notes.push(note),
            Outcome::NotRetried(file) => {
                self.report.not_retried.push(file);
                Counters::add(&self.stages.counters.files_done, 1);
            }
            Outcome::Vanished(files) => {
                self.ensure_lock_held().await?;
                // A batch's points go before its rows say `deleted`: a crash in between leaves
                // the files for the next run to delete again.
                for batch in files.chunks(DOCUMENTS_PER_DELETE) {
                    let clock = &self.stages.counters.stages;
                    let paths: Vec<String> = batch.iter().map(|f| f.path.clone()).collect();
                    let lost = clock.timed(Stage::Commit, self.stages.catalog.lost_leases(&paths)).await?;
                    let batch: Vec<&KnownFile> = batch.iter().filter(|f| !lost.contains(&f.path)).collect();
                    let doc_ids: Vec<String> = batch.iter().map(|f| f.doc_id.clone()).collect();
                    clock.timed(Stage::Upsert, self.stages.index.delete_documents(&doc_ids)).await?;
                    let paths: Vec<String> = batch.iter().map(|f| f.path.clone()).collect();
                    let deleted = self.stages.catalog.mark_deleted(self.stages.job_id, &paths);
                    let lost_since = clock.timed(Stage::Commit, deleted).await?;
                    self.report.deleted += (batch.len() - lost_since.len()) as u64;
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
        previous: Option<PreviousRow>,
        status: FileStatus,
        reason: &str,
    ) -> Result<bool> {
        let path = std::slice::from_ref(&facts.path);
        if !self.stages.catalog.lost_leases(path).await?.is_empty() {
            return Ok(false);
        }
        if previous.is_some_and(|p| p.may_have_points()) {
            self.stages.index.delete_documents(std::slice::from_ref(&facts.doc_id)).await?;
        }
        if !self.stages.catalog.record_without_points(self.stages.job_id, facts, status, reason).await? {
            return Ok(false);
        }
        Counters::add(&self.stages.counters.files_done, 1);
        Ok(true)
    }

    /// Stops the job (resumably) when PostgreSQL's collection lock was lost: no write may
    /// go out unlocked.
    async fn ensure_lock_held(&self) -> Result<()> {
        match self.stages.lock {
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
        let clock = &self.stages.counters.stages;
        let facts: Vec<FileFacts> = group.iter().map(|f| f.prepared.facts.clone()).collect();
        let lost = clock.timed(Stage::Commit, self.stages.catalog.mark_processing(self.stages.job_id, &facts)).await?;
        group.retain(|f| !lost.contains(&f.prepared.facts.path));
        if group.is_empty() {
            // Every lease of the group was lost: nothing of it is written.
            return Ok(());
        }

        let created_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let points: Vec<Point> = group
            .iter()
            .flat_map(|file| {
                let facts = &file.prepared.facts;
                let (chunks, sparse) = (&file.prepared.chunks, &file.prepared.sparse);
                chunks.iter().zip(&file.vectors).zip(sparse).map(|((chunk, vector), sparse)| Point {
                    id: hash::point_id(&facts.doc_id, chunk.index),
                    vector: vector.clone(),
                    sparse: sparse.clone(),
                    payload: PointPayload {
                        path: facts.path.clone(),
                        doc_id: facts.doc_id.clone(),
                        chunk_index: chunk.index,
                        content: chunk.content.clone(),
                        content_hash: chunk.content_hash.clone(),
                        job_id: self.stages.job_id.to_string(),
                        model: self.model_id.to_string(),
                        created_at: created_at.clone(),
                        analyzer: Some(ANALYZER_VERSION.to_string()),
                        ext: extension_of(&facts.path),
                        origin: chunk.origin.clone(),
                    },
                })
            })
            .collect();
        let part = format!("{}-{:06}", self.part_token, self.parts_written);
        clock.time(Stage::Parquet, || self.stages.parquet.write_part(self.stages.job_id, &part, &points))?;
        self.parts_written += 1;

        let counters = self.stages.counters;
        let upserted = upsert_in_batches(
            self.stages.index,
            points,
            self.stages.settings.upload_batch_size,
            self.stages.settings.upload_parallelism,
            |n| Counters::add(&counters.points_written, n as u64),
        );
        clock.timed(Stage::Upsert, upserted).await?;

        let mut done = Vec::with_capacity(group.len());
        for file in &group {
            let count = file.vectors.len() as u32;
            let needs_trim = file
                .prepared
                .previous
                .as_ref()
                .is_some_and(|p| p.status != FileStatus::Completed || p.vectors_created > count as i64);
            if needs_trim {
                clock.timed(Stage::Upsert, self.stages.index.delete_tail(&file.prepared.facts.doc_id, count)).await?;
            }
            done.push(Completion {
                path: file.prepared.facts.path.clone(),
                chunks: file.prepared.chunks.len() as i64,
                vectors: count as i64,
            });
        }
        let lost = clock.timed(Stage::Commit, self.stages.catalog.mark_completed(self.stages.job_id, &done)).await?;
        for file in group.iter().filter(|file| !lost.contains(&file.prepared.facts.path)) {
            if file.prepared.previous.as_ref().is_some_and(|p| p.status != FileStatus::Deleted) {
                self.report.updated += 1;
            } else {
                self.report.added += 1;
            }
            Counters::add(&self.stages.counters.files_done, 1);
        }
        // PostgreSQL plans each group's writes by what it knows of the table: a collection
        // the job is filling, never analysed (autovacuum may be off, or behind), looks like a
        // few hundred rows, and each group's update then reads all of them (72 ms a group at
        // 100,000 files, about 700 at a million). Refreshed each time the job's share doubles.
        let written = self.report.added + self.report.updated;
        if written >= self.statistics_after {
            clock.timed(Stage::Commit, self.stages.catalog.refresh_statistics()).await?;
            self.statistics_after = written * 2;
        }
        // The job's counters are one process's to keep: a worker sees only its share.
        if self.stages.keeps_job_counters {
            let current = group.last().map(|f| f.prepared.facts.path.as_str());
            let job_counters = self.report.counters(self.stages.counters);
            clock
                .timed(Stage::Commit, self.stages.catalog.save_progress(self.stages.job_id, &job_counters, current))
                .await?;
        }
        self.group_started = Instant::now();
        Ok(())
    }
}
