//! # Verify
//!
//! In: the collection's catalog (the source of truth), its parquet copy and the collection.
//! Out: a [`Health`] report of where the three disagree, point by point, and with a repair a
//! [`Repair`]: each point recovered from whichever side still holds it. Memory is bounded
//! (see [`super::walk`]), whatever the number of points.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use super::walk::{walk, Findings, Mode};
use super::{UnreadableFile, Upload};
use crate::catalog::{CollectionCatalog, JobCounters, JobRow, JobStatus};
use crate::store::VectorIndex;

/// Where the catalog, the collection and the parquet copy stand.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Health {
    pub collection: String,
    pub completed_files: u64,
    /// Completed files whose points are all present and equal to their parquet rows.
    pub synced_files: u64,
    pub expected_points: u64,
    pub stored_points: u64,
    /// Points a completed file should have and the collection lacks.
    pub missing_points: u64,
    /// Points no completed file accounts for.
    pub orphan_points: u64,
    /// Points whose payload or vector differs from their parquet row.
    pub stale_points: u64,
    /// Points of completed files without a live parquet row.
    pub missing_parquet_rows: u64,
    pub unreadable_parquet: Vec<UnreadableFile>,
    /// The latest completed job's counters that disagree with its file rows, as
    /// "name: recorded N, files say M".
    pub counter_mismatches: Vec<String>,
    /// With `--check-files`: completed files gone from disk, and those whose bytes changed
    /// since they were indexed (the next `ingest DIR` brings both up to date).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files_on_disk: Option<DiskCheck>,
    pub synced_percent: f64,
    /// Paths of the files that are not in sync, at most 20.
    pub examples: Vec<String>,
}

/// Completed files compared with the disk.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DiskCheck {
    pub checked: u64,
    pub missing: Vec<String>,
    pub changed: Vec<String>,
}

/// Reads every completed file from disk, a page of the catalog at a time, and compares its
/// bytes with the hash the catalog recorded.
async fn check_files_on_disk(catalog: &CollectionCatalog) -> Result<DiskCheck> {
    let mut check = DiskCheck::default();
    catalog
        .for_each_completed_file(|file| {
            check.checked += 1;
            match std::fs::read(&file.path) {
                Err(_) => check.missing.push(file.path),
                Ok(bytes) if file.content_hash.as_deref() != Some(crate::hash::sha256_hex(&bytes).as_str()) => {
                    check.changed.push(file.path)
                }
                Ok(_) => {}
            }
        })
        .await?;
    check.missing.sort();
    check.changed.sort();
    Ok(check)
}

impl Health {
    pub fn is_clean(&self) -> bool {
        let disk_clean = self.files_on_disk.as_ref().is_none_or(|d| d.missing.is_empty() && d.changed.is_empty());
        disk_clean
            && self.missing_points == 0
            && self.orphan_points == 0
            && self.stale_points == 0
            && self.missing_parquet_rows == 0
            && self.unreadable_parquet.is_empty()
            && self.counter_mismatches.is_empty()
    }
}

/// What `--repair` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Repair {
    pub points_reuploaded: u64,
    /// Parquet rows written back from points that agreed with the catalog.
    pub parquet_rows_written: u64,
    pub orphans_deleted: u64,
    pub counters_fixed: bool,
    /// Files some of whose points are lost from both the collection and parquet: returned to
    /// `pending` (their points removed), so the next `ingest DIR` embeds them again.
    pub files_to_reembed: Vec<String>,
}

/// The latest job, when it completed, and its counters as the collection's file rows tell
/// them: files it embedded (`processed`), failed and deleted. Other counters are kept as
/// recorded.
async fn counters_from_files(catalog: &CollectionCatalog) -> Result<Option<(JobRow, JobCounters)>> {
    let Some(job) = catalog.jobs(1).await?.into_iter().next() else { return Ok(None) };
    if job.status != JobStatus::Completed {
        return Ok(None);
    }
    let files = catalog.job_file_counts(&job.id).await?;
    let expected = JobCounters {
        processed_files: files.embedded,
        failed_files: files.failed,
        deleted_files: files.deleted,
        ..job.counters
    };
    Ok(Some((job, expected)))
}

fn counter_mismatches(recorded: &JobCounters, expected: &JobCounters) -> Vec<String> {
    [
        ("processed_files", recorded.processed_files, expected.processed_files),
        ("failed_files", recorded.failed_files, expected.failed_files),
        ("deleted_files", recorded.deleted_files, expected.deleted_files),
    ]
    .into_iter()
    .filter(|(_, a, b)| a != b)
    .map(|(name, a, b)| format!("{name}: recorded {a}, files say {b}"))
    .collect()
}

/// Compares the three stores; with `repair`, fixes what it found and returns the repair.
///
/// Repair deletes only what it can put back or what is proven wrong. Each point of a
/// completed file is recovered from whichever side still holds it: a live parquet row is
/// uploaded when the point is missing or differs from it; a point that agrees with the
/// catalog but lacks its row is written back to parquet. Points no completed file accounts
/// for are deleted. A file only returns to `pending` when some of its points are lost from
/// both sides. A copy that is unusable as a whole stops the repair before any change.
pub async fn verify(
    catalog: &CollectionCatalog,
    index: &dyn VectorIndex,
    parquet_dir: &Path,
    dim: usize,
    check_files: bool,
    repair: Option<Upload>,
) -> Result<(Health, Option<Repair>)> {
    let mode = repair.map_or(Mode::Check, Mode::Repair);
    let found = walk(catalog, index, parquet_dir, dim, mode, true).await?;
    let mut health = health_of(index.collection(), parquet_dir, &found);
    if check_files {
        health.files_on_disk = Some(check_files_on_disk(catalog).await?);
    }
    if let Some((job, expected)) = counters_from_files(catalog).await? {
        health.counter_mismatches = counter_mismatches(&job.counters, &expected);
    }
    if repair.is_none() {
        return Ok((health, None));
    }
    let mut files_to_reembed: Vec<String> = found.lost.values().cloned().collect();
    files_to_reembed.sort();
    let mut repaired = Repair {
        points_reuploaded: found.points_uploaded,
        parquet_rows_written: found.rows_written,
        orphans_deleted: found.orphans_deleted,
        counters_fixed: false,
        files_to_reembed,
    };
    // Last, as returning files to pending changes what the rows say.
    if let Some((job, expected)) = counters_from_files(catalog).await? {
        if !counter_mismatches(&job.counters, &expected).is_empty() {
            catalog.save_progress(&job.id, &expected, None).await?;
            repaired.counters_fixed = true;
        }
    }
    Ok((health, Some(repaired)))
}

/// The health a walk found.
fn health_of(collection: &str, parquet_dir: &Path, found: &Findings) -> Health {
    let mut unreadable_parquet = found.unreadable.clone();
    if let Some(reason) = &found.unusable {
        unreadable_parquet.push(UnreadableFile { path: parquet_dir.display().to_string(), reason: reason.clone() });
    }
    let completed = found.health.completed_files;
    let synced_files = completed - found.troubled.len() as u64;
    Health {
        collection: collection.to_string(),
        synced_files,
        unreadable_parquet,
        synced_percent: if completed == 0 { 100.0 } else { 100.0 * synced_files as f64 / completed as f64 },
        ..found.health.clone()
    }
}
