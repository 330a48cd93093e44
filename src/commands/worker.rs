//! # `ingest worker`
//!
//! In: [`Settings`] (which must name a PostgreSQL catalog and a Qdrant server) and the
//! worker's [`WorkerOptions`]. Out: its [`WorkerReport`], once it is stopped or, with
//! `--once`, once no queued job of the collection has work left.

use anyhow::{Context, Result};

use super::cancel_on_signals;
use crate::catalog::{GenerationRow, GenerationState, JobRow};
use crate::generations::installed_model;
use crate::model::ModelInfo;
use crate::pipeline::worker::{run_worker, WorkerParts, WorkerReport};
use crate::settings::{Settings, WorkerOptions};
use crate::workspace::{generations_of, Workspace};

/// Works on queued jobs until stopped (or, with `--once`, until none is left).
pub async fn worker(settings: &Settings, args: &WorkerOptions) -> Result<WorkerReport> {
    let worker = settings.worker(args)?;
    settings.require_servers("ingest worker")?;
    let program = std::env::current_exe().context("finding this program, to start extractor processes")?;
    let mut workspace = Workspace::open(settings).await?;
    let generations = generations_of(workspace.named()).await?;
    let latest = |state| generations.iter().rev().find(|g: &&GenerationRow| g.state == state);
    // Without --model-dir, the model of the generation being built beside the live one, or
    // else of the live one, as a run without it uses.
    let model = match latest(GenerationState::Building).or_else(|| latest(GenerationState::Live)) {
        Some(generation) if settings.model_dir.is_none() => installed_model(generation)?,
        _ => ModelInfo::load(settings.model_dir.as_deref())?,
    };
    // The generation this worker's model builds: one beside the live one, else the live
    // one. A job planned with another model is refused when claimed.
    let ours = |state| latest(state).filter(|g| g.recipe.model_id == model.id);
    if let Some(generation) = ours(GenerationState::Building).or_else(|| ours(GenerationState::Live)) {
        workspace.enter(generation.clone()).await?;
    }
    let parquet = workspace.parquet(model.dim);
    let job_settings = |job: &JobRow| settings.worker_job(job, &args.tuning, program.clone());
    let parts = WorkerParts {
        named: workspace.named(),
        catalog: workspace.catalog(),
        index: workspace.index().clone(),
        parquet: &parquet,
        model: &model,
        database_url: settings.database_url.as_deref().unwrap_or_default(),
        job_settings: &job_settings,
    };
    run_worker(parts, &worker, cancel_on_signals(), settings.quiet).await
}
