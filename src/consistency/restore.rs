//! # Restore
//!
//! In: the collection's catalog, its parquet copy and the collection (empty, missing or
//! damaged). Out: the collection rebuilt from the copy without embedding, and a
//! [`RestoreReport`]. Each completed file's points come from its live rows; a point without a
//! row is kept when it is stored and agrees with the catalog; a file with a point lost from
//! both sides returns to `pending`, its points removed, for the next run to embed. Into a
//! collection that holds points already (a restore a crash cut short, run again), only the
//! points that are missing or differ from their rows are uploaded.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use super::walk::{walk, Mode};
use super::{UnreadableFile, Upload};
use crate::catalog::CollectionCatalog;
use crate::store::VectorIndex;

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub collection: String,
    /// Files all of whose points came from their rows.
    pub files_restored: u64,
    /// Files without all their parquet rows whose points were there and agreed with the
    /// catalog: kept as they were.
    pub files_kept: u64,
    pub points_restored: u64,
    /// Points no completed file accounts for, and the points of the files to embed again.
    pub orphan_points_deleted: u64,
    /// Completed files with a point lost from both sides: returned to `pending`, the next
    /// run embeds them.
    pub files_to_reembed: Vec<String>,
    pub unreadable: Vec<UnreadableFile>,
}

/// Rebuilds the collection from the parquet files in `dir`, without embedding. Safe to run
/// again after a crash: ids are deterministic, so uploads overwrite. Memory is bounded (see
/// [`super::walk`]): the copy is read a batch at a time and uploaded in parallel batches.
pub async fn restore(
    catalog: &CollectionCatalog,
    index: &dyn VectorIndex,
    dir: &Path,
    dim: usize,
    settings: Upload,
    quiet: bool,
) -> Result<RestoreReport> {
    let found = walk(catalog, index, dir, dim, Mode::Restore(settings), quiet).await?;
    let mut files_to_reembed: Vec<String> = found.lost.values().cloned().collect();
    files_to_reembed.sort();
    Ok(RestoreReport {
        collection: index.collection().to_string(),
        files_restored: found.health.completed_files - found.without_rows.len() as u64,
        files_kept: (found.without_rows.len() - found.lost.len()) as u64,
        points_restored: found.points_uploaded,
        orphan_points_deleted: found.orphans_deleted + found.lost_points_deleted,
        files_to_reembed,
        unreadable: found.unreadable,
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
