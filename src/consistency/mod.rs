//! # Restore and verify
//!
//! In: the collection's catalog (the source of truth: which files are `completed`, by which
//! job, with how many vectors), the parquet copy, and the collection. Out: a collection
//! rebuilt from parquet without embedding ([`restore`]), or a [`Health`] report of where the
//! three disagree, repaired on request ([`verify`]); both walk the three a range of point ids
//! at a time ([`walk`]), in memory that does not grow with the number of points.
//!
//! [`check_touched`] is the cheap check a job runs at its end: only the files it touched,
//! against the collection, plus the collection's total.
//!
//! A parquet row is live when the catalog's completed file with its `doc_id` was embedded by
//! the row's job (`embedded_job_id`) and the row's chunk index is below the file's
//! `vectors_created`. Superseded rows of re-embedded or deleted files are never live, so they
//! never come back.

mod restore;
mod touched;
mod verify;
mod walk;

use anyhow::Result;
use serde::Serialize;
use uuid::Uuid;

use crate::store::{upsert_in_batches, Point, VectorIndex};

pub use restore::{add_sparse_vectors, restore, RestoreReport};
pub use touched::{check_touched, Verification};
pub use verify::{verify, DiskCheck, Health, Repair};

/// A parquet file that could not be used, and why.
#[derive(Debug, Clone, Serialize)]
pub struct UnreadableFile {
    pub path: String,
    pub reason: String,
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
    upsert_in_batches(index, points, upload.batch_size, upload.parallelism, |n| {
        let so_far = progress.done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
        if !progress.quiet {
            eprintln!("restore: {so_far}/{} points uploaded", progress.total);
        }
        crate::kill_point::kill_point("upload:batch");
    })
    .await
}
