//! # `ingest DIR` (`ingest run`)
//!
//! In: [`Settings`] and the run's [`RunOptions`]. Out: the job's [`JobReport`]: a local run's,
//! a dry run's plan, or, with `--workers`, the queued job's, once the local workers it
//! started (and any elsewhere) have finished it, unless `--no-wait`.
//!
//! The run's model and chunking pick its generation ([`crate::generations`]). Without
//! `--model-dir`, a run uses the live generation's model, and without chunking options, its
//! chunking: the nightly run updates the live generation. A run given another model or
//! chunking builds a generation beside the live one; once its job completes, the run
//! catches up with files that changed meanwhile, then switches if the generation is ready.

use anyhow::{bail, Context, Result};

use super::cancel_on_signals;
use crate::catalog::{GenerationRecipe, JobStatus};
use crate::chunk::Chunker;
use crate::embed::Embedder;
use crate::generations::{self, BuiltBeside};
use crate::lock::Busy;
use crate::model::ModelInfo;
use crate::pipeline::plan::{plan_job, queue_job};
use crate::pipeline::worker::wait_for_queued_job;
use crate::pipeline::{run_job, JobReport, JobSettings, RunStatus};
use crate::settings::{RunOptions, Settings};
use crate::workspace::Workspace;

/// Runs over the tree again after a generation beside the live one is built, at most this
/// many times, until a run finds nothing changed since the one before.
const CATCH_UP_PASSES: usize = 3;

/// Runs a job over `args.dir`, or plans it (`--dry-run`), or queues it for workers.
pub async fn run(settings: &Settings, args: &RunOptions) -> Result<JobReport> {
    if settings.generation.is_some() {
        bail!(
            "--generation picks the generation that search, restore, verify and export work on; a run picks its own \
             from its model and chunking, so drop --generation"
        );
    }
    let program = std::env::current_exe().context("finding this program, to start extractor processes")?;
    let mut job = settings.job(args, program.clone())?;
    if job.queued {
        settings.require_servers("--workers")?;
    }
    let given_model = match &settings.model_dir {
        Some(dir) => Some(ModelInfo::load(Some(dir))?),
        None => None,
    };
    let mut workspace = Workspace::exclusive(settings).await?;
    let live = workspace.generation().cloned();
    let model = match (given_model, &live) {
        (Some(model), _) => model,
        (None, Some(live)) => generations::installed_model(live)?,
        (None, None) => ModelInfo::load(None)?,
    };
    if let Some(live) = live.as_ref().filter(|_| !settings.chunking_given(args)) {
        job.chunk_size = live.recipe.chunk_size as usize;
        job.chunk_overlap = live.recipe.chunk_overlap as usize;
    }
    Chunker::check(job.chunk_size, job.chunk_overlap, model.max_passage_sequence()?)?;
    let recipe = GenerationRecipe {
        model_id: model.id.clone(),
        vector_dim: model.dim as i64,
        chunk_size: job.chunk_size as i64,
        chunk_overlap: job.chunk_overlap as i64,
    };
    let beside_live = generations::enter_for_run(&mut workspace, &recipe, job.dry_run).await?;
    let generation = workspace.generation().context("a run's generation")?.clone();
    job.collection = generation.name.clone();
    let parquet = workspace.parquet(model.dim);
    let threads = settings.model_threads(&args.tuning)?;
    let embedder = Embedder::new(model.clone(), threads)?;
    let cancel = cancel_on_signals();
    let report = {
        let (catalog, index, lock) = (workspace.catalog(), workspace.index().clone(), workspace.collection_lock());
        if job.dry_run {
            plan_job(&job, catalog, &embedder.info, &cancel).await?
        } else if job.queued {
            queue_job(&job, catalog, index.as_ref(), &parquet, &embedder.info, &cancel).await?
        } else {
            run_job(&job, catalog, lock, index, &parquet, embedder, cancel.clone(), settings.quiet).await?
        }
    };
    let mut report = match args.workers {
        Some(local) if !job.dry_run && report.status == RunStatus::Queued => {
            // The planner lets go of the collection, so that workers can share it.
            workspace.release_locks();
            let workers = (0..local)
                .map(|_| settings.local_worker(&program, local).spawn().context("starting a local worker process"))
                .collect::<Result<Vec<_>>>()?;
            if args.no_wait {
                return Ok(report);
            }
            let (named, catalog, index) = (workspace.named(), workspace.catalog(), workspace.index().as_ref());
            let waited = wait_for_queued_job(named, catalog, index, &parquet, report, &cancel, settings.quiet).await;
            for mut child in workers {
                let _ = child.wait();
            }
            waited?
        }
        _ => report,
    };
    if beside_live && !job.dry_run {
        // A planner catches up itself, with the model it planned with, once it holds the collection again.
        let catch_up = CatchUp { job: &job, model: &model, threads, cancel: &cancel };
        // A planner let go of the collection for its workers; a switch is one process's alone.
        let locked = if job.queued { workspace.lock_again().await } else { Ok(()) };
        report.generation = Some(match locked {
            Ok(()) => finish_beside(&mut workspace, &report, catch_up).await?,
            Err(error) if error.downcast_ref::<Busy>().is_some() => BuiltBeside {
                waiting: Some(
                    "another process holds the collection (a run, a rollback or another planner); the next run with \
                     this model switches"
                        .to_string(),
                ),
                ..BuiltBeside::of(workspace.generation().context("a run's generation")?)
            },
            Err(error) => return Err(error),
        });
    }
    Ok(report)
}

/// What a run needs to run again over its tree in this process.
struct CatchUp<'a> {
    job: &'a JobSettings,
    model: &'a ModelInfo,
    threads: usize,
    cancel: &'a std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// After the job that built a generation beside the live one (here or by workers): catches
/// up with files that changed meanwhile, then switches to the generation if it is ready.
async fn finish_beside(workspace: &mut Workspace, built: &JobReport, catch_up: CatchUp<'_>) -> Result<BuiltBeside> {
    let generation = workspace.generation().context("a run's generation")?.clone();
    let mut outcome = BuiltBeside::of(&generation);
    let mut last = built.clone();
    let CatchUp { job, model, threads, cancel } = catch_up;
    // Done here, whether the build was queued for workers or not.
    let job = &JobSettings { queued: false, ..job.clone() };
    while outcome.catch_up_passes < CATCH_UP_PASSES && last.status == RunStatus::Job(JobStatus::Completed) {
        let parquet = workspace.parquet(model.dim);
        let embedder = Embedder::new(model.clone(), threads)?;
        let (catalog, index, lock) = (workspace.catalog(), workspace.index().clone(), workspace.collection_lock());
        last = run_job(job, catalog, lock, index, &parquet, embedder, cancel.clone(), true).await?;
        outcome.catch_up_passes += 1;
        let changed = last.added + last.updated + last.deleted;
        outcome.caught_up_files += changed;
        if changed == 0 {
            break;
        }
    }
    outcome.waiting = generations::not_ready(workspace, &last, &mut outcome.missing).await?;
    if outcome.waiting.is_none() {
        // The embedded engine lets one process at a collection at a time: let searches in.
        workspace.enter(generation.clone()).await?;
        let served = generations::switch(workspace, generation.number).await?;
        (outcome.replaced, outcome.moved) = (served.replaced, served.moved);
        outcome.live = true;
    }
    Ok(outcome)
}
