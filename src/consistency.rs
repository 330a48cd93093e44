//! # Restore and verify
//!
//! In: the catalog (the source of truth: which files are `completed`, by which job, with how
//! many vectors), the parquet copy, and the collection. Out: a collection rebuilt from
//! parquet without embedding ([`restore`]), or a [`Health`] report of where the three
//! disagree, repaired on request ([`verify`]).
//!
//! A parquet row is live when the catalog's completed file with its `doc_id` was embedded by
//! the row's job (`embedded_job_id`) and the row's chunk index is below the file's
//! `vectors_created`. Superseded rows of re-embedded or deleted files are never live, so they
//! never come back.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;
use uuid::Uuid;

use crate::catalog::{Catalog, FileRow, FileStatus, JobCounters, JobRow};
use crate::hash::point_id;
use crate::parquet_copy::read_points;
use crate::store::{all_points, upsert_in_batches, Point, VectorIndex};

/// A parquet file that could not be used, and why.
#[derive(Debug, Clone, Serialize)]
pub struct UnreadableFile {
    pub path: String,
    pub reason: String,
}

/// The live rows of a parquet directory.
pub struct LiveRows {
    pub rows: BTreeMap<Uuid, Point>,
    pub unreadable: Vec<UnreadableFile>,
}

/// The completed files among `files`, by `doc_id`.
fn completed_by_doc(files: &[FileRow]) -> HashMap<String, FileRow> {
    files.iter().filter(|f| f.status() == FileStatus::Completed).map(|f| (f.doc_id.clone(), f.clone())).collect()
}

/// Reads every parquet file under `dir` and keeps the live rows. A file with the wrong
/// schema or dimension, or a corrupt one, is reported by name and contributes nothing.
pub fn live_rows(dir: &Path, dim: usize, completed: &HashMap<String, FileRow>) -> Result<LiveRows> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| x == "parquet")
                    && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    files.sort();
    let mut live = LiveRows { rows: BTreeMap::new(), unreadable: Vec::new() };
    for file in files {
        let points = match read_points(&file, dim) {
            Ok(points) => points,
            Err(error) => {
                live.unreadable.push(UnreadableFile { path: file.display().to_string(), reason: format!("{error:#}") });
                continue;
            }
        };
        for point in points {
            let is_live = completed.get(&point.payload.doc_id).is_some_and(|f| {
                f.embedded_job_id.as_deref() == Some(point.payload.job_id.as_str())
                    && (point.payload.chunk_index as i64) < f.vectors_created
            });
            if is_live {
                live.rows.insert(point.id, point);
            }
        }
    }
    Ok(live)
}

/// The ids of the points a completed file should have.
fn point_ids(file: &FileRow) -> impl Iterator<Item = Uuid> + '_ {
    (0..file.vectors_created as u32).map(|chunk| point_id(&file.doc_id, chunk))
}

/// Deletes `ids` in requests of 1,000.
async fn delete_points(index: &dyn VectorIndex, ids: &[Uuid]) -> Result<()> {
    for batch in ids.chunks(1000) {
        index.delete_points(batch).await?;
    }
    Ok(())
}

/// How to upload.
#[derive(Debug, Clone, Copy)]
pub struct Upload {
    pub batch_size: usize,
    pub parallelism: usize,
}

async fn upload(index: &dyn VectorIndex, points: Vec<Point>, upload: Upload, quiet: bool) -> Result<u64> {
    let total = points.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    upsert_in_batches(index, &points, upload.batch_size, upload.parallelism, |n| {
        let so_far = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
        if !quiet {
            eprintln!("restore: {so_far}/{total} points uploaded");
        }
    })
    .await?;
    Ok(total as u64)
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub collection: String,
    pub files_restored: u64,
    pub points_restored: u64,
    pub orphan_points_deleted: u64,
    /// Completed files without live parquet rows: returned to `pending`, the next run embeds them.
    pub files_to_reembed: Vec<String>,
    pub unreadable: Vec<UnreadableFile>,
}

/// Rebuilds the collection from the parquet files in `dir`, without embedding. Safe to run
/// again after a crash: ids are deterministic, so uploads overwrite.
pub async fn restore(
    catalog: &Catalog,
    index: &dyn VectorIndex,
    dir: &Path,
    dim: usize,
    settings: Upload,
    quiet: bool,
) -> Result<RestoreReport> {
    let collection = index.collection().to_string();
    let completed = completed_by_doc(&catalog.files(&collection).await?);
    let live = live_rows(dir, dim, &completed)?;
    index.ensure_collection(dim).await?;

    let mut rows_per_doc: HashMap<&str, i64> = HashMap::new();
    for row in live.rows.values() {
        *rows_per_doc.entry(row.payload.doc_id.as_str()).or_default() += 1;
    }
    let (restorable, unrestorable): (Vec<&FileRow>, Vec<&FileRow>) = completed
        .values()
        .partition(|f| rows_per_doc.get(f.doc_id.as_str()).copied().unwrap_or(0) == f.vectors_created);
    let mut files_to_reembed: Vec<String> = unrestorable.iter().map(|f| f.path.clone()).collect();
    files_to_reembed.sort();
    let expected: BTreeSet<Uuid> = restorable.iter().flat_map(|f| point_ids(f)).collect();
    let restorable: BTreeSet<&str> = restorable.iter().map(|f| f.doc_id.as_str()).collect();

    let points: Vec<Point> =
        live.rows.into_values().filter(|p| restorable.contains(p.payload.doc_id.as_str())).collect();
    let was_empty = index.count(None).await? == 0;
    let points_restored = upload(index, points, settings, quiet).await?;

    // Whatever else the collection holds is not backed by the catalog.
    let stored = if was_empty { Default::default() } else { all_points(index, false).await? };
    let orphans: Vec<Uuid> = stored.keys().filter(|id| !expected.contains(id)).copied().collect();
    delete_points(index, &orphans).await?;
    if !files_to_reembed.is_empty() {
        catalog.mark_pending(&collection, &files_to_reembed).await?;
    }
    index.finish().await?;
    Ok(RestoreReport {
        collection,
        files_restored: restorable.len() as u64,
        points_restored,
        orphan_points_deleted: orphans.len() as u64,
        files_to_reembed,
        unreadable: live.unreadable,
    })
}

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

fn check_files_on_disk(completed: &HashMap<String, FileRow>) -> DiskCheck {
    let mut check = DiskCheck::default();
    let mut files: Vec<&FileRow> = completed.values().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    for file in files {
        check.checked += 1;
        match std::fs::read(&file.path) {
            Err(_) => check.missing.push(file.path.clone()),
            Ok(bytes) if file.content_hash.as_deref() != Some(crate::hash::sha256_hex(&bytes).as_str()) => {
                check.changed.push(file.path.clone())
            }
            Ok(_) => {}
        }
    }
    check
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
    pub orphans_deleted: u64,
    pub counters_fixed: bool,
    /// Files with neither points nor parquet rows to restore them from: returned to `pending`
    /// (their points removed), so the next `ingest DIR` embeds them again.
    pub files_to_reembed: Vec<String>,
}

fn same_point(stored: &Point, row: &Point) -> bool {
    stored.payload == row.payload
        && stored.vector.len() == row.vector.len()
        && stored.vector.iter().zip(&row.vector).all(|(a, b)| (a - b).abs() <= 1e-5)
}

/// The latest job, when it completed, and its counters as the collection's file rows tell
/// them: files it embedded (`processed`), failed and deleted. Other counters are kept as
/// recorded.
async fn counters_from_files(
    catalog: &Catalog,
    collection: &str,
    files: &[FileRow],
) -> Result<Option<(JobRow, JobCounters)>> {
    let Some(job) = catalog.jobs(Some(collection), 1).await?.into_iter().next() else { return Ok(None) };
    if job.status != "completed" {
        return Ok(None);
    }
    let count = |keep: &dyn Fn(&FileRow) -> bool| files.iter().filter(|f| keep(f)).count() as i64;
    let expected = JobCounters {
        processed_files: count(&|f| f.embedded_job_id.as_deref() == Some(job.id.as_str())),
        failed_files: count(&|f| f.status() == FileStatus::Failed && f.job_id.as_deref() == Some(job.id.as_str())),
        deleted_files: count(&|f| f.status() == FileStatus::Deleted && f.job_id.as_deref() == Some(job.id.as_str())),
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
pub async fn verify(
    catalog: &Catalog,
    index: &dyn VectorIndex,
    parquet_dir: &Path,
    dim: usize,
    check_files: bool,
    repair: Option<Upload>,
) -> Result<(Health, Option<Repair>)> {
    let collection = index.collection().to_string();
    let files = catalog.files(&collection).await?;
    let completed = completed_by_doc(&files);
    let live = live_rows(parquet_dir, dim, &completed)?;
    let stored = all_points(index, true).await?;

    let mut health = Health {
        collection: collection.clone(),
        completed_files: completed.len() as u64,
        stored_points: stored.len() as u64,
        unreadable_parquet: live.unreadable.clone(),
        ..Health::default()
    };
    let mut expected = BTreeSet::new();
    let mut reupload = Vec::new();
    let mut reembed = Vec::new();
    for file in completed.values() {
        let mut in_sync = true;
        let mut restorable = true;
        for id in point_ids(file) {
            expected.insert(id);
            let row = live.rows.get(&id);
            if row.is_none() {
                health.missing_parquet_rows += 1;
                restorable = false;
                in_sync = false;
            }
            match (stored.get(&id), row) {
                (None, _) => {
                    health.missing_points += 1;
                    in_sync = false;
                }
                (Some(point), Some(row)) if !same_point(point, row) => {
                    health.stale_points += 1;
                    in_sync = false;
                }
                _ => {}
            }
        }
        if in_sync {
            health.synced_files += 1;
        } else {
            if health.examples.len() < 20 {
                health.examples.push(file.path.clone());
            }
            if restorable {
                reupload.extend(point_ids(file).filter_map(|id| {
                    let row = &live.rows[&id];
                    (!stored.get(&id).is_some_and(|p| same_point(p, row))).then(|| row.clone())
                }));
            } else {
                reembed.push(file.clone());
            }
        }
    }
    health.expected_points = expected.len() as u64;
    if check_files {
        health.files_on_disk = Some(check_files_on_disk(&completed));
    }
    if let Some((job, expected)) = counters_from_files(catalog, &collection, &files).await? {
        health.counter_mismatches = counter_mismatches(&job.counters, &expected);
    }
    let orphans: Vec<Uuid> = stored.keys().filter(|id| !expected.contains(id)).copied().collect();
    health.orphan_points = orphans.len() as u64;
    health.synced_percent =
        if completed.is_empty() { 100.0 } else { 100.0 * health.synced_files as f64 / completed.len() as f64 };

    let Some(settings) = repair else { return Ok((health, None)) };
    let mut repaired = Repair { orphans_deleted: orphans.len() as u64, ..Repair::default() };
    delete_points(index, &orphans).await?;
    repaired.points_reuploaded = upload(index, reupload, settings, true).await?;
    if !reembed.is_empty() {
        let doc_ids: Vec<String> = reembed.iter().map(|f| f.doc_id.clone()).collect();
        index.delete_documents(&doc_ids).await?;
        repaired.files_to_reembed = reembed.into_iter().map(|f| f.path).collect();
        repaired.files_to_reembed.sort();
        catalog.mark_pending(&collection, &repaired.files_to_reembed).await?;
    }
    // Last, as returning files to pending changes what the rows say.
    let files = catalog.files(&collection).await?;
    if let Some((job, expected)) = counters_from_files(catalog, &collection, &files).await? {
        if !counter_mismatches(&job.counters, &expected).is_empty() {
            catalog.save_progress(&job.id, &expected, None).await?;
            repaired.counters_fixed = true;
        }
    }
    Ok((health, Some(repaired)))
}
