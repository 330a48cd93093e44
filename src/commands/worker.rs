//! # `ingest worker`
//!
//! In: [`Settings`] (which must name a PostgreSQL catalog and a Qdrant server) and the
//! worker's [`WorkerOptions`]. Out: its [`WorkerReport`], once it is stopped or, with
//! `--once`, once no queued job of the collection has work left.
//!
//! The worker works on the jobs of every generation of the collection, each with the model
//! that builds it: without `--model-dir`, the installed model of the generation's id; with
//! it, that model, and a job of a generation built by another is refused with why. Before
//! each claim it reads the generations again, so a switch, a rollback or a new build beside
//! the live one reaches a worker that runs for days; when the live generation changes, it
//! checks the collection's name on the Qdrant server, as every command does. With
//! `--metrics-listen`, its Prometheus metrics are served there ([`crate::metrics`]).

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::cancel_on_signals;
use crate::catalog::{CollectionCatalog, GenerationState, JobRow};
use crate::generations::{installed_model, name};
use crate::metrics::WorkerMetrics;
use crate::model::ModelInfo;
use crate::parquet_copy::ParquetCopy;
use crate::pipeline::worker::{run_worker, GenerationParts, Generations, WorkerParts, WorkerReport};
use crate::settings::{Settings, WorkerOptions};
use crate::workspace::{generations_of, open_store, parquet_dir, Workspace};

/// Works on queued jobs until stopped (or, with `--once`, until none is left).
pub async fn worker(settings: &Settings, args: &WorkerOptions) -> Result<WorkerReport> {
    let worker = settings.worker(args)?;
    settings.require_servers("ingest worker")?;
    let program = std::env::current_exe().context("finding this program, to start extractor processes")?;
    let given = match &settings.model_dir {
        Some(dir) => Some(ModelInfo::load(Some(dir))?),
        None => None,
    };
    let workspace = Workspace::open(settings).await?;
    let generations =
        CollectionGenerations { workspace: &workspace, given, opened: Default::default(), live: Default::default() };
    let job_settings = |job: &JobRow| settings.worker_job(job, &args.tuning, program.clone());
    let metrics = match args.metrics_listen {
        Some(address) => {
            let metrics = Arc::new(WorkerMetrics::new(workspace.named().clone()));
            let bound = crate::metrics::listen(address, metrics.clone()).await?;
            if !settings.quiet {
                eprintln!("ingest worker: metrics at http://{bound}/metrics");
            }
            Some(metrics)
        }
        None => None,
    };
    let parts = WorkerParts {
        named: workspace.named(),
        generations: &generations,
        database_url: settings.database_url.as_deref().unwrap_or_default(),
        job_settings: &job_settings,
        metrics,
    };
    run_worker(parts, &worker, cancel_on_signals(), settings.quiet).await
}

/// The collection's generations, each opened once (by number and store collection).
struct CollectionGenerations<'a> {
    workspace: &'a Workspace,
    /// The model of `--model-dir`.
    given: Option<ModelInfo>,
    opened: tokio::sync::Mutex<HashMap<(i64, String), Arc<GenerationParts>>>,
    /// The live generation when last read, to check the collection's name when it changes.
    live: tokio::sync::Mutex<Option<i64>>,
}

impl CollectionGenerations<'_> {
    fn named(&self) -> &CollectionCatalog {
        self.workspace.named()
    }

    /// The model that builds `generation` here, or why there is none.
    fn model_of(&self, generation: &crate::catalog::GenerationRow) -> Result<ModelInfo, String> {
        match &self.given {
            Some(model) if model.id == generation.recipe.model_id => Ok(model.clone()),
            Some(model) => Err(format!(
                "generation {} is built by model {}, but this worker was given {} (--model-dir); give workers the \
                 planner's model",
                generation.number, generation.recipe.model_id, model.id
            )),
            None => installed_model(generation).map_err(|e| format!("{e:#}")),
        }
    }
}

#[async_trait::async_trait]
impl Generations for CollectionGenerations<'_> {
    async fn current(&self) -> Result<Vec<Arc<GenerationParts>>> {
        let mut generations = generations_of(self.named()).await?;
        let live = generations.iter().find(|g| g.state == GenerationState::Live).map(|g| g.number);
        let mut seen = self.live.lock().await;
        if *seen != live {
            if let Some(note) = name::check_alias(self.workspace).await? {
                eprintln!("ingest worker: {note}");
            }
            *seen = live;
        }
        let order = |state| match state {
            GenerationState::Live => 0,
            GenerationState::Building => 1,
            GenerationState::Previous => 2,
        };
        generations.sort_by_key(|g| (order(g.state), -g.number));
        let settings = self.workspace.settings();
        let mut opened = self.opened.lock().await;
        let mut current = Vec::with_capacity(generations.len());
        for generation in generations {
            let key = (generation.number, generation.store_collection.clone());
            if let Some(parts) = opened.get(&key) {
                current.push(parts.clone());
                continue;
            }
            let parts = Arc::new(GenerationParts {
                number: generation.number,
                catalog: self.named().collection(&generation.name),
                index: open_store(settings, &generation.store_collection).await?,
                parquet: ParquetCopy::at(
                    parquet_dir(settings, &generation.name),
                    generation.recipe.vector_dim as usize,
                ),
                model: self.model_of(&generation),
            });
            opened.insert(key, parts.clone());
            current.push(parts);
        }
        Ok(current)
    }
}
