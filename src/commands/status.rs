//! # `ingest status`
//!
//! In: [`Settings`] and, optionally, one job's id. Out: a [`Status`]: the collection's latest
//! jobs (or that one), the queues of those with work items, its live workers, its failed
//! files, and its sync health, or why the health could not be read.

use anyhow::Result;

use crate::catalog::{FileRow, FileStatus, JobRow, ParkedItem, QueueDepth, WorkerRow};
use crate::consistency::{self, Health};
use crate::model::ModelInfo;
use crate::settings::Settings;
use crate::workspace::{open_catalog, open_store, parquet_dir};

/// What `ingest status` found.
pub struct Status {
    pub jobs: Vec<JobRow>,
    /// The collection's files whose last attempt failed.
    pub failed_files: Vec<FileRow>,
    pub workers: Vec<WorkerRow>,
    /// For each job with work items: its id, its items' states, and its parked items.
    pub queues: Vec<(String, QueueDepth, Vec<ParkedItem>)>,
    /// The collection's sync health, or why it could not be read.
    pub health: Result<Health, String>,
}

/// Reads the catalog, then the collection's health; only the catalog's errors are returned.
pub async fn status(settings: &Settings, job: Option<&str>) -> Result<Status> {
    let catalog = open_catalog(settings).await?.collection(&settings.collection);
    let jobs = match job {
        Some(id) => catalog.job(id).await?.into_iter().collect(),
        None => catalog.jobs(10).await?,
    };
    let failed_files: Vec<_> =
        catalog.files().await?.into_iter().filter(|f| f.status() == FileStatus::Failed).collect();
    let workers = catalog.live_workers().await?;
    let mut queues = Vec::new();
    for job in &jobs {
        let depth = catalog.queue_depth(&job.id).await?;
        if depth != Default::default() {
            queues.push((job.id.clone(), depth, catalog.parked_items(&job.id).await?));
        }
    }
    let health = async {
        let model = ModelInfo::load(settings.model_dir.as_deref())?;
        let index = open_store(settings).await?;
        let dir = parquet_dir(settings);
        anyhow::Ok(consistency::verify(&catalog, index.as_ref(), &dir, model.dim, false, None).await?.0)
    }
    .await
    .map_err(|e| format!("{e:#}"));
    Ok(Status { jobs, failed_files, workers, queues, health })
}
