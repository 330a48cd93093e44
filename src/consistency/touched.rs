//! # The end-of-job check
//!
//! In: the files a job touched ([`Touched`]: completed, failed or deleted, with the points
//! each must have now), the catalog and the collection. Out: a [`Verification`]: whether each
//! touched file holds exactly its points, and the collection as many as the catalog's
//! completed files account for. Cheap: counts, not points.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::catalog::CollectionCatalog;
use crate::store::VectorIndex;

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

/// Files counted together in one request.
const FILES_PER_COUNT: usize = 500;

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
    // Files that must hold the same number of points are counted together, a group at a
    // time: ids being one per chunk index, a group whose files hold nothing at or beyond
    // that index and as many points as its files must hold together holds each file's
    // points exactly. Only a group that fails this is counted file by file, to name the
    // culprits.
    let mut by_points: BTreeMap<u32, Vec<&Touched>> = BTreeMap::new();
    for file in touched {
        by_points.entry(file.points).or_default().push(file);
    }
    let groups = by_points.values().flat_map(|files| files.chunks(FILES_PER_COUNT));
    let to_count_alone: Vec<&Touched> = stream::iter(groups)
        .map(|group| async move {
            let doc_ids: Vec<String> = group.iter().map(|file| file.doc_id.clone()).collect();
            let points = group[0].points;
            let expected = u64::from(points) * group.len() as u64;
            let agrees = index.count_documents(&doc_ids).await? == expected
                && (points == 0 || index.count_tail(&doc_ids, points).await? == 0);
            anyhow::Ok(if agrees { Vec::new() } else { group.to_vec() })
        })
        .buffer_unordered(CHECKS_IN_FLIGHT)
        .try_concat()
        .await
        .context("checking the touched files' points")?;
    let mut disagreements: Vec<String> = stream::iter(to_count_alone)
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
