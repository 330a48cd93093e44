//! # `ingest worker`
//!
//! In: [`Settings`] (which must name a PostgreSQL catalog and a Qdrant server) and the
//! worker's [`WorkerOptions`]. Out: its [`WorkerReport`], once it is stopped or, with
//! `--once`, once no queued job of the collection has work left.

use anyhow::{Context, Result};

use super::cancel_on_signals;
use crate::catalog::JobRow;
use crate::model::ModelInfo;
use crate::pipeline::worker::{run_worker, WorkerParts, WorkerReport};
use crate::settings::{Settings, WorkerOptions};
use crate::workspace::Workspace;

/// Works on queued jobs until stopped (or, with `--once`, until none is left).
pub async fn worker(settings: &Settings, args: &WorkerOptions) -> Result<WorkerReport> {
    settings.require_servers("ingest worker")?;
    let worker = settings.worker(args)?;
    let program = std::env::current_exe().context("finding this program, to start extractor processes")?;
    let model = ModelInfo::load(settings.model_dir.as_deref())?;
    let workspace = Workspace::open(settings).await?;
    let parquet = workspace.parquet(model.dim);
    let job_settings = |job: &JobRow| settings.worker_job(job, &args.tuning, program.clone());
    let parts = WorkerParts {
        catalog: workspace.catalog(),
        index: workspace.index().clone(),
        parquet: &parquet,
        model: &model,
        database_url: settings.database_url.as_deref().unwrap_or_default(),
        job_settings: &job_settings,
    };
    run_worker(parts, &worker, cancel_on_signals(), settings.quiet).await
}
