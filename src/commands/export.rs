//! # `ingest export`
//!
//! In: [`Settings`] and a directory. Out: [`Exported`]: the collection's points, as stored,
//! written to one fresh parquet file, `<dir>/<collection>.parquet`, and how many there were.

use std::path::PathBuf;

use anyhow::Result;

use crate::model::ModelInfo;
use crate::parquet_copy::ParquetCopy;
use crate::settings::Settings;
use crate::workspace::open_store;

/// Where `ingest export` wrote the collection's points, and how many.
pub struct Exported {
    pub path: PathBuf,
    pub points: usize,
}

/// Writes the collection's points to one parquet file in `out`; an error when the collection
/// does not exist.
pub async fn export(settings: &Settings, out: PathBuf) -> Result<Exported> {
    let model = ModelInfo::load(settings.model_dir.as_deref())?;
    let index = open_store(settings).await?;
    if !index.exists().await? {
        anyhow::bail!("collection {:?} does not exist; nothing to export", settings.collection);
    }
    let points: Vec<_> = crate::store::all_points(index.as_ref(), true).await?.into_values().collect();
    let path = ParquetCopy::at(out, model.dim).write_file(&settings.collection, &points)?;
    Ok(Exported { path, points: points.len() })
}
