//! # Restore and verify
//!
//! In: the collection's catalog (the source of truth: which files are `completed`, by which
//! job, with how many vectors), the parquet copy, and the collection. Out: a collection
//! rebuilt from parquet without embedding ([`restore`]), or a [`Health`] report of where the
//! three disagree, repaired on request ([`verify`]).
//!
//! [`restore`] streams: it holds a flag per point and a page or an upload's worth of
//! points, never the whole copy or collection. [`verify`] still reads both whole.
//!
//! [`check_touched`] is the cheap check a job runs at its end: only the files it touched,
//! against the collection, plus the collection's total.
//!
//! A parquet row is live when the catalog's completed file with its `doc_id` was embedded by
//! the row's job (`embedded_job_id`) and the row's chunk index is below the file's
//! `vectors_created`. Superseded rows of re-embedded or deleted files are never live, so they
//! never come back.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use uuid::Uuid;

use crate::catalog::{CollectionCatalog, FileRow, FileStatus, JobCounters, JobRow, JobStatus};
use crate::hash::point_id;
use crate::parquet_copy::{point_batches, read_points, ParquetCopy};
use crate::store::{all_points, delete_documents_in_batches, for_each_page, upsert_in_batches, Point, VectorIndex};

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
    /// Why the copy as a whole cannot be used, when it cannot: the directory is missing or
    /// unlistable, or it holds no readable parquet file while the catalog has completed
    /// files (an unmounted volume looks like that).
    pub unusable: Option<String>,
}

impl LiveRows {
    /// Refuses to go on when the copy as a whole is unusable: nothing may be changed on the
    /// strength of a copy that is not there.
    pub fn require_usable(&self, dir: &Path) -> Result<()> {
        require_usable(&self.unusable, dir)
    }
}

/// Refuses to go on when a parquet copy is `unusable`.
fn require_usable(unusable: &Option<String>, dir: &Path) -> Result<()> {
    match unusable {
        None => Ok(()),
        Some(reason) => anyhow::bail!(
            "the parquet copy at {} cannot be used ({reason}), so nothing was changed; mount or restore that \
             directory and run again (if the copy is lost for good, `ingest export --out {}` writes it again from \
             the collection)",
            dir.display(),
            dir.display()
        ),
    }
}

/// The completed files among `files`, by `doc_id`.
fn completed_by_doc(files: Vec<FileRow>) -> HashMap<String, FileRow> {
    files.into_iter().filter(|f| f.status() == FileStatus::Completed).map(|f| (f.doc_id.clone(), f)).collect()
}

/// Reads every parquet file under `dir` and keeps the live rows. A file with the wrong
/// schema or dimension, or a corrupt one, is reported by name and contributes nothing.
pub fn live_rows(dir: &Path, dim: usize, completed: &HashMap<String, FileRow>) -> Result<LiveRows> {
    let mut live = LiveRows { rows: BTreeMap::new(), unreadable: Vec::new(), unusable: None };
    let files = match ParquetCopy::at(dir.to_path_buf(), dim).files() {
        Ok(files) => files,
        Err(error) => {
            live.unusable = Some(format!("{error:#}"));
            return Ok(live);
        }
    };
    let file_count = files.len();
    for file in files {
        let points = match read_points(&file, dim) {
            Ok(points) => points,
            Err(error) => {
                live.unreadable.push(UnreadableFile { path: file.display().to_string(), reason: format!("{error:#}") });
                continue;
            }
        };
        for point in points {
            if is_live(&point, completed) {
                live.rows.insert(point.id, point);
            }
        }
    }
    live.unusable = unusable_copy(dir, completed, file_count, live.unreadable.len());
    Ok(live)
}

/// Whether a parquet row is live: see the module's documentation.
fn is_live(row: &Point, completed: &HashMap<String, FileRow>) -> bool {
    completed.get(&row.payload.doc_id).is_some_and(|f| {
        f.embedded_job_id.as_deref() == Some(row.payload.job_id.as_str())
            && (row.payload.chunk_index as i64) < f.vectors_created
    })
}

/// Why a parquet copy of `file_count` files, `unreadable` of them unreadable, cannot be used
/// as a whole; `None` when it can.
fn unusable_copy(
    dir: &Path,
    completed: &HashMap<String, FileRow>,
    file_count: usize,
    unreadable: usize,
) -> Option<String> {
    (!completed.is_empty() && unreadable == file_count).then(|| {
        if !dir.is_dir() {
            "the directory does not exist".to_string()
        } else if file_count == 0 {
            format!("it holds no parquet file, yet the catalog has {} completed files", completed.len())
        } else {
            format!("none of its {file_count} parquet files can be read")
        }
    })
}

/// What a first reading of a parquet copy found, a batch at a time, keeping none of its
/// rows: the files that can be opened, and which chunks of each completed file have a live
/// row (one flag a chunk).
struct Census {
    files: Vec<std::path::PathBuf>,
    chunks: HashMap<String, Vec<bool>>,
    unreadable: Vec<UnreadableFile>,
    unusable: Option<String>,
}

impl Census {
    fn take(dir: &Path, dim: usize, completed: &HashMap<String, FileRow>) -> Self {
        let mut census = Census { files: Vec::new(), chunks: HashMap::new(), unreadable: Vec::new(), unusable: None };
        let files = match ParquetCopy::at(dir.to_path_buf(), dim).files() {
            Ok(files) => files,
            Err(error) => {
                census.unusable = Some(format!("{error:#}"));
                return census;
            }
        };
        let file_count = files.len();
        for file in files {
            // A file that breaks off keeps the rows read before the break: the restore reads
            // the same rows again, and names the file.
            let read = point_batches(&file, dim).and_then(|batches| {
                for batch in batches {
                    for row in batch?.iter().filter(|row| is_live(row, completed)) {
                        let file = &completed[&row.payload.doc_id];
                        let chunks = census
                            .chunks
                            .entry(row.payload.doc_id.clone())
                            .or_insert_with(|| vec![false; file.vectors_created.max(0) as usize]);
                        chunks[row.payload.chunk_index as usize] = true;
                    }
                }
                Ok(())
            });
            match read {
                Ok(()) => census.files.push(file),
                Err(error) => {
                    let reason = format!("{error:#}");
                    census.unreadable.push(UnreadableFile { path: file.display().to_string(), reason });
                    census.files.push(file);
                }
            }
        }
        let unopened = census.unreadable.len();
        census.unusable = unusable_copy(dir, completed, file_count, unopened);
        census
    }

    /// How many of `file`'s chunks have a live row.
    fn rows_of(&self, file: &FileRow) -> i64 {
        self.chunks.get(&file.doc_id).map_or(0, |chunks| chunks.iter().filter(|&&seen| seen).count() as i64)
    }
}

/// The ids of the points a completed file should have.
fn point_ids(file: &FileRow) -> impl Iterator<Item = Uuid> + '_ {
    (0..file.vectors_created as u32).map(|chunk| point_id(&file.doc_id, chunk))
}

/// Whether the stored point `id` is chunk `chunk` of `file` as the catalog records it: same
/// document, path and chunk index, written by the job that completed the file.
fn agrees_with_catalog(file: &FileRow, chunk: u32, point: &Point) -> bool {
    point.payload.doc_id == file.doc_id
        && point.payload.path == file.path
        && point.payload.chunk_index == chunk
        && file.embedded_job_id.as_deref() == Some(point.payload.job_id.as_str())
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

/// How far an upload has come, of how many points.
struct Progress {
    total: u64,
    done: std::sync::atomic::AtomicUsize,
    quiet: bool,
}

/// Uploads `points`, saying how far the whole upload (`progress`) has come after each batch.
async fn upload(index: &dyn VectorIndex, points: Vec<Point>, upload: Upload, progress: &Progress) -> Result<()> {
    upsert_in_batches(index, &points, upload.batch_size, upload.parallelism, |n| {
        let so_far = progress.done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
        if !progress.quiet {
            eprintln!("restore: {so_far}/{} points uploaded", progress.total);
        }
    })
    .await
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub collection: String,
    pub files_restored: u64,
    /// Files without all their parquet rows whose points were all there and agreed with the
    /// catalog: kept as they were.
    pub files_kept: u64,
    pub points_restored: u64,
    pub orphan_points_deleted: u64,
    /// Completed files without live parquet rows: returned to `pending`, the next run embeds them.
    pub files_to_reembed: Vec<String>,
    pub unreadable: Vec<UnreadableFile>,
}

/// Rebuilds the collection from the parquet files in `dir`, without embedding. Safe to run
/// again after a crash: ids are deterministic, so uploads overwrite.
///
/// Memory holds the catalog's completed files, one flag a point, and a page or an upload's
/// worth of points, never the whole copy or collection: a first reading of the copy counts
/// the live rows of each file; a scan of the collection, a page at a time, deletes what the
/// catalog does not back and finds the files whose points are all there; then each parquet
/// file is read again, a batch at a time, and its live rows uploaded.
pub async fn restore(
    catalog: &CollectionCatalog,
    index: &dyn VectorIndex,
    dir: &Path,
    dim: usize,
    settings: Upload,
    quiet: bool,
) -> Result<RestoreReport> {
    let collection = index.collection().to_string();
    let completed = completed_by_doc(catalog.files().await?);
    let census = Census::take(dir, dim, &completed);
    require_usable(&census.unusable, dir)?;
    index.ensure_collection(dim).await?;

    // A file is restored from its rows; without all of them, its points are kept when they
    // are all there and agree with the catalog; only a file that has lost both is re-embedded.
    let restorable: HashMap<&str, &FileRow> =
        completed.values().filter(|f| census.rows_of(f) == f.vectors_created).map(|f| (f.doc_id.as_str(), f)).collect();
    // For each file not restorable: its points stored, and those that agree with the catalog.
    let mut stored: HashMap<&str, (u64, i64)> = HashMap::new();
    let mut orphan_points_deleted = 0;
    for_each_page(index, false, async |page| {
        let mut orphans = Vec::new();
        for point in page {
            let file = completed.get(point.payload.doc_id.as_str());
            let chunk = point.payload.chunk_index;
            let backed =
                file.is_some_and(|f| point.id == point_id(&f.doc_id, chunk) && (chunk as i64) < f.vectors_created);
            match file {
                Some(file) if backed && !restorable.contains_key(file.doc_id.as_str()) => {
                    let (present, agreeing) = stored.entry(file.doc_id.as_str()).or_default();
                    *present += 1;
                    *agreeing += agrees_with_catalog(file, chunk, &point) as i64;
                }
                _ if backed => {}
                _ => orphans.push(point.id),
            }
        }
        orphan_points_deleted += orphans.len() as u64;
        delete_points(index, &orphans).await
    })
    .await?;
    let (mut kept, mut lost) = (0u64, Vec::new());
    for file in completed.values().filter(|f| !restorable.contains_key(f.doc_id.as_str())) {
        if stored.get(file.doc_id.as_str()).map_or(0, |&(_, agreeing)| agreeing) == file.vectors_created {
            kept += 1;
        } else {
            lost.push(file);
        }
    }
    // The points of a file that is embedded again go with it.
    let lost_docs: Vec<String> = lost.iter().map(|f| f.doc_id.clone()).collect();
    delete_documents_in_batches(index, &lost_docs).await?;
    orphan_points_deleted +=
        lost.iter().map(|f| stored.get(f.doc_id.as_str()).map_or(0, |&(present, _)| present)).sum::<u64>();
    let mut files_to_reembed: Vec<String> = lost.iter().map(|f| f.path.clone()).collect();
    files_to_reembed.sort();

    let total: i64 = restorable.values().map(|f| f.vectors_created).sum();
    let progress = Progress { total: total.max(0) as u64, done: Default::default(), quiet };
    let mut pending = Vec::new();
    for file in &census.files {
        // Read as far as it reads: the census counted the same rows.
        let Ok(batches) = point_batches(file, dim) else { continue };
        for batch in batches.map_while(Result::ok) {
            pending.extend(
                batch
                    .into_iter()
                    .filter(|row| is_live(row, &completed) && restorable.contains_key(row.payload.doc_id.as_str())),
            );
            if pending.len() >= settings.batch_size * settings.parallelism {
                upload(index, std::mem::take(&mut pending), settings, &progress).await?;
            }
        }
    }
    upload(index, pending, settings, &progress).await?;

    if !files_to_reembed.is_empty() {
        catalog.mark_pending(&files_to_reembed).await?;
    }
    index.finish().await?;
    Ok(RestoreReport {
        collection,
        files_restored: restorable.len() as u64,
        files_kept: kept,
        points_restored: progress.done.load(std::sync::atomic::Ordering::Relaxed) as u64,
        orphan_points_deleted,
        files_to_reembed,
        unreadable: census.unreadable,
    })
}

/// Gives every point of the collection this build's sparse vector, from the parquet copy,
/// without the model: the points are uploaded again from their rows, whose sparse vectors
/// are made from their text where the rows have none ([`crate::parquet_copy::read_points`]).
/// `None` when the collection does not exist or has nothing to add.
pub async fn add_sparse_vectors(
    catalog: &CollectionCatalog,
    index: &dyn VectorIndex,
    dir: &Path,
    settings: Upload,
    quiet: bool,
) -> Result<Option<RestoreReport>> {
    if !index.exists().await? || crate::search::sparse_gap(index).await?.is_none() {
        return Ok(None);
    }
    let Some(dim) = crate::parquet_copy::dimension_in(dir)? else {
        anyhow::bail!(
            "collection {:?} needs sparse vectors, but {} holds no parquet copy to make them from; re-index with `ingest DIR --full`",
            index.collection(),
            dir.display()
        );
    };
    restore(catalog, index, dir, dim, settings, quiet).await.map(Some)
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
    /// Parquet rows written back from points that agreed with the catalog.
    pub parquet_rows_written: u64,
    pub orphans_deleted: u64,
    pub counters_fixed: bool,
    /// Files some of whose points are lost from both the collection and parquet: returned to
    /// `pending` (their points removed), so the next `ingest DIR` embeds them again.
    pub files_to_reembed: Vec<String>,
}

fn same_point(stored: &Point, row: &Point) -> bool {
    let close = |a: &[f32], b: &[f32]| a.len() == b.len() && a.iter().zip(b).all(|(a, b)| (a - b).abs() <= 1e-5);
    stored.payload == row.payload
        && close(&stored.vector, &row.vector)
        && stored.sparse.indices == row.sparse.indices
        && close(&stored.sparse.values, &row.sparse.values)
}

/// The latest job, when it completed, and its counters as the collection's file rows tell
/// them: files it embedded (`processed`), failed and deleted. Other counters are kept as
/// recorded.
async fn counters_from_files(catalog: &CollectionCatalog, files: &[FileRow]) -> Result<Option<(JobRow, JobCounters)>> {
    let Some(job) = catalog.jobs(1).await?.into_iter().next() else { return Ok(None) };
    if job.status != JobStatus::Completed {
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
    let files = catalog.files().await?;
    let completed = completed_by_doc(files.clone());
    let live = live_rows(parquet_dir, dim, &completed)?;
    if repair.is_some() {
        live.require_usable(parquet_dir)?;
    }
    let stored = all_points(index, true).await?;

    let mut unreadable_parquet = live.unreadable.clone();
    if let Some(reason) = &live.unusable {
        unreadable_parquet.push(UnreadableFile { path: parquet_dir.display().to_string(), reason: reason.clone() });
    }
    let mut health = Health {
        collection: index.collection().to_string(),
        completed_files: completed.len() as u64,
        stored_points: stored.len() as u64,
        unreadable_parquet,
        ..Health::default()
    };
    let mut expected = BTreeSet::new();
    let mut reupload = Vec::new();
    let mut rows_from_points = Vec::new();
    let mut reembed = Vec::new();
    for file in completed.values() {
        let mut file_reupload = Vec::new();
        let mut file_rows = Vec::new();
        let mut lost = false;
        for (id, chunk) in point_ids(file).zip(0..) {
            expected.insert(id);
            let point = stored.get(&id);
            match (point, live.rows.get(&id)) {
                (Some(point), Some(row)) if same_point(point, row) => {}
                (Some(_), Some(row)) => {
                    health.stale_points += 1;
                    file_reupload.push(row.clone());
                }
                (None, Some(row)) => {
                    health.missing_points += 1;
                    file_reupload.push(row.clone());
                }
                (Some(point), None) => {
                    health.missing_parquet_rows += 1;
                    if agrees_with_catalog(file, chunk, point) && point.vector.len() == dim {
                        file_rows.push(point.clone());
                    } else {
                        lost = true;
                    }
                }
                (None, None) => {
                    health.missing_points += 1;
                    health.missing_parquet_rows += 1;
                    lost = true;
                }
            }
        }
        if file_reupload.is_empty() && file_rows.is_empty() && !lost {
            health.synced_files += 1;
            continue;
        }
        if health.examples.len() < 20 {
            health.examples.push(file.path.clone());
        }
        if lost {
            reembed.push(file.clone());
        } else {
            reupload.extend(file_reupload);
            rows_from_points.extend(file_rows);
        }
    }
    health.expected_points = expected.len() as u64;
    if check_files {
        health.files_on_disk = Some(check_files_on_disk(&completed));
    }
    if let Some((job, expected)) = counters_from_files(catalog, &files).await? {
        health.counter_mismatches = counter_mismatches(&job.counters, &expected);
    }
    let orphans: Vec<Uuid> = stored.keys().filter(|id| !expected.contains(id)).copied().collect();
    health.orphan_points = orphans.len() as u64;
    health.synced_percent =
        if completed.is_empty() { 100.0 } else { 100.0 * health.synced_files as f64 / completed.len() as f64 };

    let Some(settings) = repair else { return Ok((health, None)) };
    let mut repaired = Repair { orphans_deleted: orphans.len() as u64, ..Repair::default() };
    if !rows_from_points.is_empty() {
        let copy = ParquetCopy::at(parquet_dir.to_path_buf(), dim);
        copy.write_file(&format!("repair-{}", Uuid::new_v4()), &rows_from_points)
            .context("writing parquet rows back from the collection")?;
        repaired.parquet_rows_written = rows_from_points.len() as u64;
    }
    delete_points(index, &orphans).await?;
    repaired.points_reuploaded = reupload.len() as u64;
    let progress = Progress { total: repaired.points_reuploaded, done: Default::default(), quiet: true };
    upload(index, reupload, settings, &progress).await?;
    if !reembed.is_empty() {
        let doc_ids: Vec<String> = reembed.iter().map(|f| f.doc_id.clone()).collect();
        delete_documents_in_batches(index, &doc_ids).await?;
        repaired.files_to_reembed = reembed.into_iter().map(|f| f.path).collect();
        repaired.files_to_reembed.sort();
        catalog.mark_pending(&repaired.files_to_reembed).await?;
    }
    // Last, as returning files to pending changes what the rows say.
    let files = catalog.files().await?;
    if let Some((job, expected)) = counters_from_files(catalog, &files).await? {
        if !counter_mismatches(&job.counters, &expected).is_empty() {
            catalog.save_progress(&job.id, &expected, None).await?;
            repaired.counters_fixed = true;
        }
    }
    Ok((health, Some(repaired)))
}

/// A file a job touched, and the number of points it must have now (0 once it failed or
/// was deleted).
#[derive(Debug, Clone)]
pub struct Touched {
    pub path: String,
    pub doc_id: String,
    pub points: u32,
}

/// The result of [`check_touched`].
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Verification {
    /// Files checked: each one the job completed, failed or deleted.
    pub files: u64,
    /// Whether every checked file, and the collection's total, agree with the catalog.
    pub agree: bool,
    /// Points the collection holds, and the sum of its completed files' vectors.
    pub collection_points: u64,
    pub catalog_points: u64,
    /// What disagrees, at most 20 entries.
    pub disagreements: Vec<String>,
    pub seconds: f64,
}

/// Requests in flight while checking touched files.
const CHECKS_IN_FLIGHT: usize = 8;

/// Files that must hold no points, counted in one request.
const EMPTY_FILES_PER_COUNT: usize = 500;

/// Checks that each touched file has exactly its points, with chunk indexes `0..points`
/// (the count is right and nothing lies beyond the last index, and ids are one per index),
/// and that the collection holds as many points as the catalog's completed files account for.
pub async fn check_touched(
    catalog: &CollectionCatalog,
    index: &dyn VectorIndex,
    touched: &[Touched],
) -> Result<Verification> {
    use futures::stream::{self, StreamExt, TryStreamExt};
    let started = std::time::Instant::now();
    // Files that must hold no points (deleted, failed) are counted together, a group at a
    // time; only a group that holds some is counted file by file, to name the culprits.
    let (empty, with_points): (Vec<&Touched>, Vec<&Touched>) = touched.iter().partition(|file| file.points == 0);
    let mut to_count_alone = with_points;
    for group in empty.chunks(EMPTY_FILES_PER_COUNT) {
        let doc_ids: Vec<String> = group.iter().map(|file| file.doc_id.clone()).collect();
        if index.count_documents(&doc_ids).await.context("checking the emptied files' points")? > 0 {
            to_count_alone.extend(group);
        }
    }
    let mut disagreements: Vec<String> = stream::iter(to_count_alone)
        .map(|file| async move {
            let found = index.count(Some(&file.doc_id)).await?;
            let beyond = if found == 0 { 0 } else { index.count_tail(&file.doc_id, file.points).await? };
            let agrees = found == u64::from(file.points) && beyond == 0;
            anyhow::Ok((!agrees).then(|| {
                format!(
                    "{}: the catalog says {} points, the collection holds {found} ({beyond} beyond the last chunk)",
                    file.path, file.points
                )
            }))
        })
        .buffer_unordered(CHECKS_IN_FLIGHT)
        .try_filter_map(|disagreement| async move { Ok(disagreement) })
        .try_collect()
        .await
        .context("checking the touched files' points")?;
    let collection = index.collection();
    let collection_points = index.count(None).await?;
    let catalog_points = catalog.completed_vectors().await?;
    if collection_points != catalog_points {
        disagreements.push(format!(
            "collection {collection:?} holds {collection_points} points, its completed files account for {catalog_points}"
        ));
    }
    let agree = disagreements.is_empty();
    disagreements.sort();
    disagreements.truncate(20);
    Ok(Verification {
        files: touched.len() as u64,
        agree,
        collection_points,
        catalog_points,
        disagreements,
        seconds: started.elapsed().as_secs_f64(),
    })
}
