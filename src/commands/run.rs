//! # `ingest DIR` (`ingest run`)
//!
//! In: [`Settings`] and the run's [`RunOptions`]. Out: the job's [`JobReport`]: a local run's,
//! a dry run's plan, or, with `--workers`, the queued job's, once the local workers it
//! started (and any elsewhere) have finished it, unless `--no-wait`.

use anyhow::{Context, Result};

use super::cancel_on_signals;
use crate::chunk::Chunker;
use crate::embed::Embedder;
use crate::model::ModelInfo;
use crate::pipeline::plan::{plan_job, queue_job};
use crate::pipeline::worker::wait_for_queued_job;
use crate::pipeline::{run_job, JobReport, RunStatus};
use crate::settings::{RunOptions, Settings};
use crate::workspace::Workspace;

/// Runs a job over `args.dir`, or plans it (`--dry-run`), or queues it for workers.
pub async fn run(settings: &Settings, args: &RunOptions) -> Result<JobReport> {
    let program = std::env::current_exe().context("finding this program, to start extractor processes")?;
    let job = settings.job(args, program.clone())?;
    if job.queued {
        settings.require_servers("--workers")?;
    }
    let model = ModelInfo::load(settings.model_dir.as_deref())?;
    // Checked against the model before the collection's locks are taken; the job checks it too.
    Chunker::check(job.chunk_size, job.chunk_overlap, model.max_passage_sequence()?)?;
    let mut workspace = Workspace::exclusive(settings).await?;
    let parquet = workspace.parquet(model.dim);
    let embedder = Embedder::new(model, settings.model_threads(&args.tuning))?;
    let cancel = cancel_on_signals();
    let (catalog, index, lock) = (workspace.catalog(), workspace.index().clone(), workspace.collection_lock());
    let report = if job.dry_run {
        plan_job(&job, catalog, &embedder.info, &cancel).await?
    } else if job.queued {
        queue_job(&job, catalog, index.as_ref(), &parquet, &embedder.info, &cancel).await?
    } else {
        run_job(&job, catalog, lock, index, &parquet, embedder, cancel.clone(), settings.quiet).await?
    };
    Ok(match args.workers {
        Some(local) if !job.dry_run && report.status == RunStatus::Queued => {
            // The planner lets go of the collection, so that workers can share it.
            workspace.release_locks();
            let workers = (0..local)
                .map(|_| settings.local_worker(&program, local).spawn().context("starting a local worker process"))
                .collect::<Result<Vec<_>>>()?;
            if args.no_wait {
                report
            } else {
                let (catalog, index) = (workspace.catalog(), workspace.index().as_ref());
                let waited = wait_for_queued_job(catalog, index, &parquet, report, &cancel, settings.quiet).await;
                for mut child in workers {
                    let _ = child.wait();
                }
                waited?
            }
        }
        _ => report,
    })
}
