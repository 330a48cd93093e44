//! # The end-of-job check
//!
//! In: a job whose work is done, the catalog (which records, on each file row, the job
//! that last touched it) and the collection. Out: a [`Verification`]: whether each file the
//! job completed, failed or deleted holds exactly its points, and the collection as many as
//! the catalog's completed files account for. Cheap: counts, not points; and the job's
//! files are read a page at a time, so the check holds a page, not the job.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::catalog::{CollectionCatalog, FileRow, FileStatus};
use crate::store::VectorIndex;

/// A file the job touched, and the number of points it must have now (0 once it failed or
/// was deleted).
#[derive(Debug, Clone)]
struct Touched {
    path: String,
    doc_id: String,
    points: u32,
}

impl From<FileRow> for Touched {
    fn from(row: FileRow) -> Self {
        let points = if row.status() == FileStatus::Completed { row.vectors_created.max(0) as u32 } else { 0 };
        Touched { path: row.path, doc_id: row.doc_id, points }
    }
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

/// Files counted together in one request.
const FILES_PER_COUNT: usize = 500;

/// Files held waiting for a full group before every group is counted as it stands.
const FILES_HELD: usize = 20_000;

/// Disagreements a check reports at most.
const DISAGREEMENTS_REPORTED: usize = 20;

/// Checks that each file job `job_id` touched has exactly its points, with chunk indexes
/// `0..points` (the count is right and nothing lies beyond the last index, and ids are one
/// per index), and that the collection holds as many points as the catalog's completed
/// files account for. `None`, having counted nothing, when the job touched no file.
pub async fn check_touched(
    catalog: &CollectionCatalog,
    index: &dyn VectorIndex,
    job_id: &str,
) -> Result<Option<Verification>> {
    let started = std::time::Instant::now();
    // Files that must hold the same number of points are counted together, a group at a
    // time: ids being one per chunk index, a group whose files hold nothing at or beyond
    // that index and as many points as its files must hold together holds each file's
    // points exactly. Only a group that fails this is counted file by file, to name the
    // culprits.
    let mut waiting: BTreeMap<u32, Vec<Touched>> = BTreeMap::new();
    let mut found = Findings::default();
    catalog
        .for_each_page_of_job(job_id, async |rows| {
            found.files += rows.len() as u64;
            for row in rows {
                let file = Touched::from(row);
                waiting.entry(file.points).or_default().push(file);
            }
            let held: usize = waiting.values().map(Vec::len).sum();
            let full_groups = take_groups(&mut waiting, held >= FILES_HELD);
            found.check_groups(index, full_groups).await
        })
        .await?;
    if found.files == 0 {
        return Ok(None);
    }
    found.check_groups(index, take_groups(&mut waiting, true)).await?;
    let collection = index.collection();
    let collection_points = index.count(None).await?;
    let catalog_points = catalog.completed_vectors().await?;
    if collection_points != catalog_points {
        found.disagree(format!(
            "collection {collection:?} holds {collection_points} points, its completed files account for {catalog_points}"
        ));
    }
    found.disagreements.sort();
    found.disagreements.truncate(DISAGREEMENTS_REPORTED);
    Ok(Some(Verification {
        files: found.files,
        agree: !found.any_disagreement,
        collection_points,
        catalog_points,
        disagreements: found.disagreements,
        seconds: started.elapsed().as_secs_f64(),
    }))
}

/// The groups of files to count now: every full group, or with `all`, every group.
fn take_groups(waiting: &mut BTreeMap<u32, Vec<Touched>>, all: bool) -> Vec<Vec<Touched>> {
    let mut groups = Vec::new();
    for files in waiting.values_mut() {
        while files.len() >= FILES_PER_COUNT || (all && !files.is_empty()) {
            let rest = files.split_off(files.len().min(FILES_PER_COUNT));
            groups.push(std::mem::replace(files, rest));
        }
    }
    waiting.retain(|_, files| !files.is_empty());
    groups
}

/// What the check has found so far.
#[derive(Default)]
struct Findings {
    files: u64,
    any_disagreement: bool,
    /// The first disagreements in order, a few more than reported between trims.
    disagreements: Vec<String>,
}

impl Findings {
    fn disagree(&mut self, disagreement: String) {
        self.any_disagreement = true;
        self.disagreements.push(disagreement);
        if self.disagreements.len() >= 10 * DISAGREEMENTS_REPORTED {
            self.disagreements.sort();
            self.disagreements.truncate(DISAGREEMENTS_REPORTED);
        }
    }

    /// Counts each group's points together, and the files of a group that disagrees one by one.
    async fn check_groups(&mut self, index: &dyn VectorIndex, groups: Vec<Vec<Touched>>) -> Result<()> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        let to_count_alone: Vec<Touched> = stream::iter(groups)
            .map(|group| async move {
                let doc_ids: Vec<String> = group.iter().map(|file| file.doc_id.clone()).collect();
                let points = group[0].points;
                let expected = u64::from(points) * group.len() as u64;
                let agrees = index.count_documents(&doc_ids).await? == expected
                    && (points == 0 || index.count_tail(&doc_ids, points).await? == 0);
                anyhow::Ok(if agrees { Vec::new() } else { group })
            })
            .buffer_unordered(CHECKS_IN_FLIGHT)
            .try_concat()
            .await
            .context("checking the touched files' points")?;
        let disagreements: Vec<String> = stream::iter(to_count_alone)
            .map(|file| async move {
                let found = index.count(Some(&file.doc_id)).await?;
                let doc_id = std::slice::from_ref(&file.doc_id);
                let beyond = if found == 0 { 0 } else { index.count_tail(doc_id, file.points).await? };
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
        disagreements.into_iter().for_each(|disagreement| self.disagree(disagreement));
        Ok(())
    }
}
