//! # `ingest status`
//!
//! In: [`Settings`] and, optionally, one job's id. Out: a [`Status`]: the collection's
//! generations, and of the live one (or of `--generation N`) the latest jobs (or that one),
//! the queues of those with work items, its live workers, its failed files, and its sync
//! health, or why the health could not be read.

use anyhow::Result;

use crate::catalog::{FileRow, FileStatus, GenerationRow, JobRow, ParkedItem, QueueDepth, WorkerRow};
use crate::consistency::{self, Health};
use crate::settings::Settings;
use crate::workspace::{generations_of, Workspace};

/// A generation, with the files and points its catalog rows hold.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GenerationStatus {
    #[serde(flatten)]
    pub row: GenerationRow,
    pub files: u64,
    pub points: u64,
}

/// What `ingest status` found.
pub struct Status {
    /// The collection's generations, oldest first.
    pub generations: Vec<GenerationStatus>,
    /// The generation the rest is about; `None` before the first run.
    pub generation: Option<i64>,
    pub jobs: Vec<JobRow>,
    /// The collection's files whose last attempt failed.
    pub failed_files: Vec<FileRow>,
    pub workers: Vec<WorkerRow>,
    /// For each job with work items: its id, its items' states, and its parked items.
    pub queues: Vec<(String, QueueDepth, Vec<ParkedItem>)>,
    /// The collection's sync health, or why it could not be read.
    pub health: Result<Health, String>,
    /// Why the collection's name on a Qdrant server was left naming another generation than
    /// the live one ([`crate::generations::name::check_alias`]).
    pub alias: Option<String>,
}

/// Reads the catalog, then the collection's health; only the catalog's errors are returned.
pub async fn status(settings: &Settings, job: Option<&str>) -> Result<Status> {
    let workspace = Workspace::open(settings).await?;
    let alias = crate::generations::name::check_alias(&workspace).await?;
    let mut generations = Vec::new();
    for row in generations_of(workspace.named()).await? {
        let (files, points) = workspace.named().collection(&row.name).completed_counts().await?;
        generations.push(GenerationStatus { row, files, points });
    }
    let catalog = workspace.catalog();
    let jobs = match job {
        Some(id) => catalog.job(id).await?.into_iter().collect(),
        None => catalog.jobs(10).await?,
    };
    let failed_files: Vec<_> =
        catalog.files().await?.into_iter().filter(|f| f.status() == FileStatus::Failed).collect();
    // Workers register under the collection's name: they work on every generation.
    let workers = workspace.named().live_workers().await?;
    let mut queues = Vec::new();
    for job in &jobs {
        let depth = catalog.queue_depth(&job.id).await?;
        if depth != Default::default() {
            queues.push((job.id.clone(), depth, catalog.parked_items(&job.id).await?));
        }
    }
    let health = async {
        let (index, dir) = (workspace.index().as_ref(), workspace.parquet_dir());
        anyhow::Ok(consistency::verify(catalog, index, dir, workspace.vector_dim()?, false, None).await?.0)
    }
    .await
    .map_err(|e| format!("{e:#}"));
    let generation = workspace.generation().map(|g| g.number);
    Ok(Status { generations, generation, jobs, failed_files, workers, queues, health, alias })
}
