//! # `ingest export`
//!
//! In: [`Settings`] and a directory. Out: [`Exported`]: the points of the live generation
//! (or of `--generation N`), as stored, written to one fresh parquet file,
//! `<dir>/<generation name>.parquet` (the collection's own name for generation 1,
//! `<collection>-g<N>` for the others), a page at a time, and how many there were.

use std::path::PathBuf;

use anyhow::Result;

use crate::parquet_copy::ParquetCopy;
use crate::settings::Settings;
use crate::store::for_each_page;
use crate::workspace::Workspace;

/// Where `ingest export` wrote the collection's points, and how many.
pub struct Exported {
    pub path: PathBuf,
    pub points: usize,
}

/// Writes the collection's points to one parquet file in `out`; an error when the collection
/// does not exist.
pub async fn export(settings: &Settings, out: PathBuf) -> Result<Exported> {
    let workspace = Workspace::open(settings).await?;
    let index = workspace.index();
    if !index.exists().await? {
        anyhow::bail!("collection {:?} does not exist; nothing to export", settings.collection);
    }
    let name = workspace.generation().map_or(settings.collection.as_str(), |g| g.name.as_str());
    // A page at a time: the file's rows are the collection's points in id order.
    let mut file = ParquetCopy::at(out, workspace.vector_dim()?).create(name)?;
    let mut points = 0;
    for_each_page(index.as_ref(), true, async |page| {
        points += page.len();
        file.write(&page)
    })
    .await?;
    Ok(Exported { path: file.finish()?, points })
}
