//! # `ingest restore` and `ingest verify`
//!
//! Both work on the live generation, or on `--generation N`.
//!
//! `restore`: in, [`Settings`], a directory of parquet files (by default the generation's
//! parquet copy) and how to upload; out, [`Restored`]: its collection rebuilt from them,
//! without embedding, and what could not be used. `verify`: in, [`Settings`] and whether to
//! repair and to check the files on disk; out, a [`VerifyReport`]: whether the catalog, the
//! collection and the parquet copy agree, what a repair did, and what it left.

use std::path::PathBuf;

use anyhow::Result;

use crate::consistency::{self, Health, Repair, RestoreReport, Upload};
use crate::settings::{in_range, Settings, MAX_UPLOAD_BATCH, MAX_UPLOAD_PARALLELISM};
use crate::workspace::Workspace;

/// What `ingest restore` did, from the parquet files in `dir`.
pub struct Restored {
    pub report: RestoreReport,
    pub dir: PathBuf,
}

/// Rebuilds the collection from the parquet files in `dir` (by default its parquet copy),
/// holding the collection's locks, `upload`'s figures checked against their ranges first.
pub async fn restore(settings: &Settings, dir: Option<PathBuf>, upload: Upload) -> Result<Restored> {
    in_range("upload-batch-size", upload.batch_size, 1..=MAX_UPLOAD_BATCH)?;
    in_range("upload-parallelism", upload.parallelism, 1..=MAX_UPLOAD_PARALLELISM)?;
    let workspace = Workspace::exclusive(settings).await?;
    let dim = workspace.vector_dim()?;
    let dir = dir.unwrap_or_else(|| workspace.parquet_dir().to_path_buf());
    let (catalog, index) = (workspace.catalog(), workspace.index().as_ref());
    let report = consistency::restore(catalog, index, &dir, dim, upload, settings.quiet).await?;
    // On a Qdrant server, the live generation's collection rebuilt takes the collection's name again.
    crate::generations::name::align_alias(&workspace).await?;
    Ok(Restored { report, dir })
}

/// What `ingest verify` found, what its repair did, and what it found after.
pub struct VerifyReport {
    pub health: Health,
    pub repair: Option<Repair>,
    pub after_repair: Option<Health>,
}

impl VerifyReport {
    /// Whether the collection is in sync in the end (after the repair, if any).
    pub fn is_clean(&self) -> bool {
        self.after_repair.as_ref().unwrap_or(&self.health).is_clean()
    }
}

/// How a repair uploads the points it found missing or stale: in requests of 1,000, two in
/// flight. A repair's uploads are a small part of its work (it compares every point), and
/// what waits for them is held: 1,000-point requests keep a repair of a large damage within
/// about 30 MiB of `verify` (4,000-point ones, as a restore sends, about 100 MiB at 384
/// dimensions).
const REPAIR_UPLOAD: Upload = Upload { batch_size: 1000, parallelism: 2 };

/// Compares the catalog, the collection and the parquet copy (and, with `check_files`, the
/// files on disk); with `repair`, fixes what it can, then compares again.
pub async fn verify(settings: &Settings, repair: bool, check_files: bool) -> Result<VerifyReport> {
    // A repair takes the collection's locks, as a run does, so it never judges the points of
    // a run in flight (here or on another machine) to be orphans.
    let workspace = if repair { Workspace::exclusive(settings).await? } else { Workspace::open(settings).await? };
    let (catalog, index, dir) = (workspace.catalog(), workspace.index(), workspace.parquet_dir());
    let dim = workspace.vector_dim()?;
    let upload = repair.then_some(REPAIR_UPLOAD);
    let (health, repair) = consistency::verify(catalog, index.as_ref(), dir, dim, check_files, upload).await?;
    let after_repair = match repair {
        Some(_) => Some({
            crate::generations::name::align_alias(&workspace).await?;
            consistency::verify(catalog, index.as_ref(), dir, dim, check_files, None).await?.0
        }),
        None => None,
    };
    Ok(VerifyReport { health, repair, after_repair })
}
