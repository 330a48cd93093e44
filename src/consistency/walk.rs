//! # The walk: a collection, its catalog and its parquet copy, one range of point ids at a time
//!
//! In: the catalog's completed files, the parquet copy and the collection, and a [`Mode`].
//! Out: [`Findings`]: for every point a completed file should have, whether its live parquet
//! row and its stored point are there and agree; the points no completed file accounts for;
//! the files lost from both sides. On the way, as the mode asks, points are uploaded again
//! from their rows, rows written back from points, and orphans deleted.
//!
//! Memory holds one range's expected points (a slot each) and their files, a batch of rows
//! and a page of points, never the whole catalog, copy or collection. The point-id space is
//! cut into ranges of at most [`POINTS_PER_RANGE`] expected points (a file counting as four);
//! for each range the catalog's completed files are read a page at a time and their point ids
//! computed, the copy is read a batch at a time, and the collection is scrolled a page at a
//! time from the range's first id to its last. Every point is compared: a row with its
//! stored point, fetched by id, vector for vector.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use uuid::Uuid;

use super::{delete_points, upload, Health, Progress, UnreadableFile, Upload};
use crate::catalog::{CollectionCatalog, FileRow};
use crate::hash::point_id;
use crate::parquet_copy::{point_batches, point_batches_where, FileWriter, ParquetCopy};
use crate::store::{delete_documents_in_batches, Point, VectorIndex, DOCUMENTS_PER_DELETE};

/// Expected points a range holds at most (a completed file counting as four, for its row).
const POINTS_PER_RANGE: u64 = 1_000_000;

/// Points read from the collection, by scroll or by id, in one request.
const STORE_PAGE: usize = 1_000;

/// Rows of a row group of the file a repair writes rows back into: what its writer holds
/// before they go to disk (with a page of points read back, about 5 MiB at 384 dimensions).
const ROWS_PER_WRITE_BACK_GROUP: usize = 1_000;

/// What the walk does besides looking.
#[derive(Debug, Clone, Copy)]
pub(super) enum Mode {
    /// Compares and changes nothing.
    Check,
    /// Compares, uploads the rows of missing and stale points, writes back the rows of
    /// healthy points that lack them, deletes orphans.
    Repair(Upload),
    /// Uploads every live row without comparing, deletes orphans.
    Restore(Upload),
}

impl Mode {
    fn upload(self) -> Option<Upload> {
        match self {
            Mode::Check => None,
            Mode::Repair(upload) | Mode::Restore(upload) => Some(upload),
        }
    }
}

/// What the walk found and did.
#[derive(Debug, Default)]
pub(super) struct Findings {
    /// The counts: completed files, expected, stored, missing, orphan and stale points,
    /// missing parquet rows and the examples; the rest of a [`Health`] is not the walk's.
    pub health: Health,
    /// Files some of whose points are missing, stale or without a row, by `doc_id`.
    pub troubled: HashSet<String>,
    /// Files some of whose chunks have no live row, by `doc_id`.
    pub without_rows: HashSet<String>,
    /// Files some of whose points are lost from both sides: `doc_id` to path.
    pub lost: BTreeMap<String, String>,
    pub points_uploaded: u64,
    pub rows_written: u64,
    pub orphans_deleted: u64,
    /// The points the lost files held when they were deleted.
    pub lost_points_deleted: u64,
    pub unreadable: Vec<UnreadableFile>,
    /// Why the copy as a whole cannot be used, when it cannot.
    pub unusable: Option<String>,
}

impl Findings {
    fn trouble(&mut self, file: &ExpectedFile) {
        if self.troubled.insert(file.doc_id.clone()) && self.health.examples.len() < 20 {
            self.health.examples.push(file.path.clone());
        }
    }

    fn without_row(&mut self, file: &ExpectedFile) {
        self.trouble(file);
        self.without_rows.insert(file.doc_id.clone());
    }

    fn lose(&mut self, file: &ExpectedFile) {
        self.without_row(file);
        self.lost.insert(file.doc_id.clone(), file.path.clone());
    }
}

/// A range of point ids, by their first 64 bits: `from` up to `until` (excluded), or to the
/// end of the id space.
#[derive(Debug, Clone, Copy)]
struct IdRange {
    from: u64,
    until: Option<u64>,
}

impl IdRange {
    /// `count` ranges of equal width that cover the id space.
    fn cover(count: u64) -> Vec<IdRange> {
        let width = u64::MAX / count.max(1);
        (0..count.max(1))
            .map(|n| IdRange { from: n * width, until: (n + 1 < count).then(|| (n + 1) * width) })
            .collect()
    }

    fn contains(&self, id: Uuid) -> bool {
        let key = (id.as_u128() >> 64) as u64;
        key >= self.from && self.until.is_none_or(|until| key < until)
    }

    fn first(&self) -> Uuid {
        Uuid::from_u128(u128::from(self.from) << 64)
    }
}

/// What the walk needs of a completed file.
#[derive(Debug)]
pub(super) struct ExpectedFile {
    pub doc_id: String,
    pub path: String,
    pub embedded_job_id: Option<String>,
}

/// A point a completed file should have: its file (an index into [`Expected::files`]) and
/// chunk, and whether a live row and a stored point were found for it.
#[derive(Debug, Clone, Copy)]
struct Slot {
    file: u32,
    chunk: u32,
    row: bool,
    stored: bool,
}

/// The points the catalog's completed files should have in one range.
struct Expected {
    files: Vec<ExpectedFile>,
    slots: HashMap<Uuid, Slot>,
}

impl Expected {
    async fn read(catalog: &CollectionCatalog, range: IdRange) -> Result<Self> {
        let mut expected = Expected { files: Vec::new(), slots: HashMap::new() };
        catalog.for_each_completed_file(|file| expected.add(file, range)).await?;
        Ok(expected)
    }

    fn add(&mut self, file: FileRow, range: IdRange) {
        let mut index = None;
        for chunk in 0..file.vectors_created.max(0) as u32 {
            let id = point_id(&file.doc_id, chunk);
            if range.contains(id) {
                let file = *index.get_or_insert(self.files.len() as u32);
                self.slots.insert(id, Slot { file, chunk, row: false, stored: false });
            }
        }
        if index.is_some() {
            self.files.push(ExpectedFile {
                doc_id: file.doc_id,
                path: file.path,
                embedded_job_id: file.embedded_job_id,
            });
        }
    }

    /// The slot of `row` when the row is live (see the module's documentation of
    /// [`super`]) and the first live row seen for its point.
    fn first_live_row(&mut self, row: &Point) -> Option<&mut Slot> {
        let slot = self.slots.get_mut(&row.id).filter(|slot| !slot.row)?;
        let file = &self.files[slot.file as usize];
        let live = file.doc_id == row.payload.doc_id
            && slot.chunk == row.payload.chunk_index
            && file.embedded_job_id.as_deref() == Some(row.payload.job_id.as_str());
        live.then_some(slot)
    }
}

/// Whether the stored point is chunk `chunk` of `file` as the catalog records it: same
/// document, path and chunk index, written by the job that completed the file.
pub(super) fn agrees_with_catalog(file: &ExpectedFile, chunk: u32, point: &Point) -> bool {
    point.payload.doc_id == file.doc_id
        && point.payload.path == file.path
        && point.payload.chunk_index == chunk
        && file.embedded_job_id.as_deref() == Some(point.payload.job_id.as_str())
}

/// Whether a stored point equals its parquet row (vectors within rounding).
fn same_point(stored: &Point, row: &Point) -> bool {
    let close = |a: &[f32], b: &[f32]| a.len() == b.len() && a.iter().zip(b).all(|(a, b)| (a - b).abs() <= 1e-5);
    stored.payload == row.payload
        && close(&stored.vector, &row.vector)
        && stored.sparse.indices == row.sparse.indices
        && close(&stored.sparse.values, &row.sparse.values)
}

/// The files of a parquet copy that open, and those that do not.
struct CopyFiles {
    files: Vec<PathBuf>,
    unreadable: BTreeMap<String, String>,
    unusable: Option<String>,
}

impl CopyFiles {
    /// Lists the copy and opens each file (its footer only). The copy is unusable as a whole
    /// when the directory is missing or unlistable, or none of its files opens while the
    /// catalog has completed files (an unmounted volume looks like that).
    fn open(dir: &Path, dim: usize, completed_files: u64) -> Self {
        let mut copy = CopyFiles { files: Vec::new(), unreadable: BTreeMap::new(), unusable: None };
        let listed = match ParquetCopy::at(dir.to_path_buf(), dim).files() {
            Ok(listed) => listed,
            Err(error) => {
                copy.unusable = Some(format!("{error:#}"));
                return copy;
            }
        };
        for file in listed {
            match point_batches(&file, dim) {
                Ok(_) => copy.files.push(file),
                Err(error) => {
                    copy.unreadable.insert(file.display().to_string(), format!("{error:#}"));
                }
            }
        }
        if completed_files > 0 && copy.files.is_empty() {
            copy.unusable = Some(if !dir.is_dir() {
                "the directory does not exist".to_string()
            } else if copy.unreadable.is_empty() {
                format!("it holds no parquet file, yet the catalog has {completed_files} completed files")
            } else {
                format!("none of its {} parquet files can be read", copy.unreadable.len())
            });
        }
        copy
    }
}

/// Refuses to go on when a parquet copy is `unusable`.
pub(super) fn require_usable(unusable: &Option<String>, dir: &Path) -> Result<()> {
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

/// One walk over a collection.
struct Walk<'a> {
    index: &'a dyn VectorIndex,
    dir: &'a Path,
    dim: usize,
    mode: Mode,
    exists: bool,
    /// Whether rows are compared with their points before a restore uploads them: when the
    /// collection held points before (a restore a crash cut short, run again, uploads only
    /// what is missing or differs).
    compare_first: bool,
    copy: CopyFiles,
    findings: Findings,
    progress: Progress,
    /// Rows to upload, of missing or stale points or of a restore.
    to_upload: Vec<Point>,
    /// The file rows are written back into from points, once there is one to write: one
    /// file for the whole walk, in small row groups, put in place at its end.
    written_back: Option<FileWriter>,
}

/// Walks the collection `index` with its catalog and the parquet copy in `dir`. A mode that
/// changes anything refuses, before any change, a copy that is unusable as a whole; the
/// lost files' points are deleted and the files returned to `pending`.
pub(super) async fn walk(
    catalog: &CollectionCatalog,
    index: &dyn VectorIndex,
    dir: &Path,
    dim: usize,
    mode: Mode,
    quiet: bool,
) -> Result<Findings> {
    let (completed_files, expected_points) = catalog.completed_counts().await?;
    let copy = CopyFiles::open(dir, dim, completed_files);
    if mode.upload().is_some() {
        require_usable(&copy.unusable, dir)?;
    }
    let existed = index.exists().await?;
    let held_points = existed && index.count(None).await? > 0;
    let restoring = matches!(mode, Mode::Restore(_));
    if restoring {
        index.ensure_collection(dim).await?;
    }
    let quiet = quiet || !restoring;
    let mut walk = Walk {
        index,
        dir,
        dim,
        mode,
        // A restore has just created it.
        exists: existed || restoring,
        compare_first: held_points,
        copy,
        findings: Findings {
            health: Health { completed_files, expected_points, ..Health::default() },
            ..Findings::default()
        },
        progress: Progress { total: expected_points, done: Default::default(), quiet },
        to_upload: Vec::new(),
        written_back: None,
    };
    let weight = expected_points + 4 * completed_files;
    for range in IdRange::cover(weight.div_ceil(points_per_range())) {
        let mut expected = Expected::read(catalog, range).await?;
        walk.read_copy(&mut expected, range).await?;
        walk.read_collection(&mut expected, range).await?;
        walk.settle(&expected);
    }
    walk.flush_uploads(0).await?;
    if let Some(file) = walk.written_back.take() {
        file.finish().context("writing parquet rows back from the collection")?;
    }
    let Walk { mut findings, copy, .. } = walk;
    findings.unreadable = copy.unreadable.into_iter().map(|(path, reason)| UnreadableFile { path, reason }).collect();
    findings.unusable = copy.unusable;
    if mode.upload().is_some() && !findings.lost.is_empty() {
        let doc_ids: Vec<String> = findings.lost.keys().cloned().collect();
        for group in doc_ids.chunks(DOCUMENTS_PER_DELETE) {
            findings.lost_points_deleted += index.count_documents(group).await?;
        }
        delete_documents_in_batches(index, &doc_ids).await?;
        let mut paths: Vec<String> = findings.lost.values().cloned().collect();
        paths.sort();
        catalog.mark_pending(&paths).await?;
    }
    if mode.upload().is_some() {
        index.finish().await?;
    }
    Ok(findings)
}

/// [`POINTS_PER_RANGE`]; in builds for fault injection, `INGEST_POINTS_PER_RANGE` when set,
/// so that tests walk many ranges over a small collection.
fn points_per_range() -> u64 {
    #[cfg(feature = "fault-injection")]
    if let Some(points) = std::env::var("INGEST_POINTS_PER_RANGE").ok().and_then(|v| v.parse().ok()) {
        return points;
    }
    POINTS_PER_RANGE
}

impl Walk<'_> {
    /// Reads the copy a batch at a time and handles the live rows of `range`, making no
    /// point of the rows of other ranges.
    async fn read_copy(&mut self, expected: &mut Expected, range: IdRange) -> Result<()> {
        let mut rows = Vec::new();
        for file in self.copy.files.clone() {
            // A file that breaks off gives the rows read before the break, and is named.
            let batches = match point_batches_where(&file, self.dim, move |id| range.contains(id)) {
                Ok(batches) => batches,
                Err(error) => {
                    self.copy.unreadable.insert(file.display().to_string(), format!("{error:#}"));
                    continue;
                }
            };
            for batch in batches {
                let batch = match batch {
                    Ok(batch) => batch,
                    Err(error) => {
                        self.copy.unreadable.insert(file.display().to_string(), format!("{error:#}"));
                        break;
                    }
                };
                for row in batch {
                    if let Some(slot) = expected.first_live_row(&row) {
                        slot.row = true;
                        rows.push(row);
                    }
                }
                if rows.len() >= STORE_PAGE {
                    self.handle_rows(expected, std::mem::take(&mut rows)).await?;
                }
            }
        }
        self.handle_rows(expected, rows).await
    }

    /// Uploads `rows` in a restore into an empty collection; otherwise compares them with
    /// their stored points first.
    async fn handle_rows(&mut self, expected: &mut Expected, rows: Vec<Point>) -> Result<()> {
        if matches!(self.mode, Mode::Restore(_)) && !self.compare_first {
            self.to_upload.extend(rows);
        } else {
            self.compare(expected, rows).await?;
        }
        match self.mode.upload() {
            Some(upload) => self.flush_uploads(upload.batch_size * upload.parallelism).await,
            None => Ok(()),
        }
    }

    /// Compares each row with its stored point, fetched by id; the rows of missing and stale
    /// points are uploaded when the mode changes anything.
    async fn compare(&mut self, expected: &mut Expected, rows: Vec<Point>) -> Result<()> {
        let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
        let mut stored: HashMap<Uuid, Point> = HashMap::new();
        if self.exists {
            for page in ids.chunks(STORE_PAGE) {
                stored.extend(self.index.retrieve(page).await?.into_iter().map(|point| (point.id, point)));
            }
        }
        for row in rows {
            let slot = expected.slots.get_mut(&row.id).expect("a live row has a slot");
            let file = &expected.files[slot.file as usize];
            match stored.get(&row.id) {
                Some(point) => {
                    slot.stored = true;
                    if same_point(point, &row) {
                        continue;
                    }
                    self.findings.health.stale_points += 1;
                }
                None => self.findings.health.missing_points += 1,
            }
            self.findings.trouble(file);
            if self.mode.upload().is_some() {
                self.to_upload.push(row);
            }
        }
        Ok(())
    }

    /// Scrolls the range's points: counts them, finds the orphans (deleted when the mode
    /// changes anything) and the points without a live row (whose rows a repair writes back
    /// when they agree with the catalog).
    async fn read_collection(&mut self, expected: &mut Expected, range: IdRange) -> Result<()> {
        if !self.exists {
            return Ok(());
        }
        let mut offset = Some(range.first());
        while let Some(from) = offset {
            let (page, next) = self.index.scroll(Some(from), STORE_PAGE, false).await?;
            offset = next;
            let (mut orphans, mut write_back) = (Vec::new(), Vec::new());
            for point in page {
                if !range.contains(point.id) {
                    offset = None;
                    break;
                }
                self.findings.health.stored_points += 1;
                let Some(slot) = expected.slots.get_mut(&point.id) else {
                    orphans.push(point.id);
                    continue;
                };
                slot.stored = true;
                if slot.row {
                    continue;
                }
                self.findings.health.missing_parquet_rows += 1;
                let file = &expected.files[slot.file as usize];
                if !agrees_with_catalog(file, slot.chunk, &point) {
                    self.findings.lose(file);
                } else {
                    self.findings.without_row(file);
                    write_back.push(point.id);
                }
            }
            self.findings.health.orphan_points += orphans.len() as u64;
            if self.mode.upload().is_some() {
                delete_points(self.index, &orphans).await?;
                self.findings.orphans_deleted += orphans.len() as u64;
            }
            if matches!(self.mode, Mode::Repair(_)) && !write_back.is_empty() {
                self.write_back(expected, &write_back).await?;
            }
        }
        Ok(())
    }

    /// Writes the rows of the points `ids` (healthy, without a live row) back to the copy;
    /// a point with a vector of the wrong width cannot give a row, and loses its file.
    async fn write_back(&mut self, expected: &Expected, ids: &[Uuid]) -> Result<()> {
        let mut rows = Vec::with_capacity(ids.len());
        for point in self.index.retrieve(ids).await? {
            if point.vector.len() == self.dim {
                rows.push(point);
            } else {
                let slot = expected.slots[&point.id];
                self.findings.lose(&expected.files[slot.file as usize]);
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        let file = match &mut self.written_back {
            Some(file) => file,
            None => self.written_back.insert(
                ParquetCopy::at(self.dir.to_path_buf(), self.dim)
                    .create_in_groups_of(&format!("repair-{}", Uuid::new_v4()), ROWS_PER_WRITE_BACK_GROUP)?,
            ),
        };
        file.write(&rows).context("writing parquet rows back from the collection")?;
        self.findings.rows_written += rows.len() as u64;
        Ok(())
    }

    /// The range's points that have neither a live row nor a stored point: lost, with their files.
    fn settle(&mut self, expected: &Expected) {
        for slot in expected.slots.values().filter(|slot| !slot.row && !slot.stored) {
            self.findings.health.missing_points += 1;
            self.findings.health.missing_parquet_rows += 1;
            self.findings.lose(&expected.files[slot.file as usize]);
        }
    }

    /// Uploads the rows waiting when they are `at_least` many.
    async fn flush_uploads(&mut self, at_least: usize) -> Result<()> {
        let Some(settings) = self.mode.upload() else { return Ok(()) };
        if self.to_upload.is_empty() || self.to_upload.len() < at_least {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.to_upload);
        self.findings.points_uploaded += rows.len() as u64;
        upload(self.index, rows, settings, &self.progress).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_the_id_space_once() {
        for count in [1, 2, 3, 7, 64] {
            let ranges = IdRange::cover(count);
            assert_eq!(ranges.len() as u64, count);
            for id in [Uuid::nil(), Uuid::max(), Uuid::from_u128(u128::MAX / 3), Uuid::new_v4(), Uuid::new_v4()] {
                assert_eq!(ranges.iter().filter(|r| r.contains(id)).count(), 1, "{id} in {count} ranges");
            }
            for range in &ranges {
                assert!(range.contains(range.first()));
            }
        }
    }
}
