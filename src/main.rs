//! The `ingest` command: parses arguments, wires the catalog, the vector store and the
//! model together, runs the command, and hands what it found to [`ingest::output`], which
//! prints it; the command's outcome is an [`Exit`], whose code the process exits with.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};

use ingest::catalog::FileStatus;
use ingest::cli::{
    Cli, Command, ExportArgs, RestoreArgs, RunArgs, SearchArgs, Settings, StatusArgs, VerifyArgs, WorkerArgs,
};
use ingest::consistency::{self, Upload};
use ingest::embed::{Embedder, ModelInfo};
use ingest::output::{self, Exit};
use ingest::parquet_copy::ParquetCopy;
use ingest::pipeline::plan::{plan_job, queue_job};
use ingest::pipeline::worker::{run_worker, wait_for_queued_job, WorkerParts};
use ingest::pipeline::{run_job, RunStatus};
use ingest::workspace::{open_catalog, open_store, Workspace};

fn main() -> ExitCode {
    ingest::embed::return_freed_memory_promptly();
    ingest::extract::install_quiet_parser_panics();
    let cli = match Cli::try_parse_args_and_env() {
        Ok(cli) => cli,
        Err(error) => {
            let exit = if error.use_stderr() { Exit::Failed } else { Exit::Ok };
            let _ = error.print();
            return ExitCode::from(exit.code());
        }
    };
    // An extractor process serves its parent over stdin and stdout, before any runtime,
    // catalog or store exists.
    if let Some(Command::ExtractWorker(args)) = &cli.command {
        return match ingest::extract::pool::serve(args.memory_limit) {
            Ok(()) => ExitCode::from(Exit::Ok.code()),
            Err(error) => {
                eprintln!("error: extractor process: {error:#}");
                ExitCode::from(Exit::Failed.code())
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(Exit::Failed.code());
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(Exit::of_error(&error).code())
        }
    }
}

async fn dispatch(cli: Cli) -> Result<Exit> {
    let settings = Settings::resolve(&cli.global)?;
    match cli.command {
        None => run(&settings, &cli.run).await,
        Some(Command::Run(args)) => run(&settings, &args).await,
        Some(Command::Search(args)) => search(&settings, &args).await,
        Some(Command::Status(args)) => status(&settings, &args).await,
        Some(Command::Check) => check(&settings).await,
        Some(Command::Restore(args)) => restore(&settings, &args).await,
        Some(Command::Verify(args)) => verify(&settings, &args).await,
        Some(Command::Export(args)) => export(&settings, &args).await,
        Some(Command::Migrate) => migrate(&settings).await,
        Some(Command::Worker(args)) => worker(&settings, &args).await,
        Some(Command::ExtractWorker(_)) => unreachable!("main serves extract-worker before any set-up"),
    }
}

/// Cancels the job on SIGINT or SIGTERM: stages stop taking new work and in-flight commits
/// finish. A second signal ends the process at once ([`Exit::Cancelled`]); the catalog's rows say where
/// the next run resumes, and extractor processes die with this one.
fn cancel_on_signals() -> Arc<AtomicBool> {
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return,
        };
        let mut signal = async || {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        signal().await;
        eprintln!(
            "ingest: stopping after the work in flight (signal again to stop at once); the next run resumes from here"
        );
        flag.store(true, Ordering::SeqCst);
        signal().await;
        eprintln!("ingest: stopped at once; the next run resumes from here");
        std::process::exit(Exit::Cancelled.code().into());
    });
    cancel
}

async fn run(settings: &Settings, args: &RunArgs) -> Result<Exit> {
    let program = std::env::current_exe().context("finding this program, to start extractor processes")?;
    let job = settings.job(args, program.clone())?;
    if job.queued {
        settings.require_servers("--workers")?;
    }
    let model = ModelInfo::load(settings.model_dir.as_deref())?;
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
    let report = match args.workers {
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
    };
    output::job_report(settings, &report)?;
    Ok(report.exit())
}

/// `ingest worker`: works on queued jobs until stopped (or, with --once, until none is left).
async fn worker(settings: &Settings, args: &WorkerArgs) -> Result<Exit> {
    settings.require_servers("ingest worker")?;
    let worker = settings.worker(args)?;
    let program = std::env::current_exe().context("finding this program, to start extractor processes")?;
    let model = ModelInfo::load(settings.model_dir.as_deref())?;
    let workspace = Workspace::open(settings).await?;
    let parquet = workspace.parquet(model.dim);
    let job_settings = |job: &ingest::catalog::JobRow| settings.worker_job(job, &args.tuning, program.clone());
    let parts = WorkerParts {
        catalog: workspace.catalog(),
        index: workspace.index().clone(),
        parquet: &parquet,
        model: &model,
        database_url: settings.database_url.as_deref().unwrap_or_default(),
        job_settings: &job_settings,
    };
    let report = run_worker(parts, &worker, cancel_on_signals(), settings.quiet).await?;
    output::worker_report(settings, &report)?;
    Ok(report.exit())
}

async fn search(settings: &Settings, args: &SearchArgs) -> Result<Exit> {
    let model = ModelInfo::load(settings.model_dir.as_deref())?;
    let index = open_store(settings).await?;
    if !index.exists().await? {
        anyhow::bail!(
            "collection {:?} does not exist in {}; run `ingest DIR` first",
            settings.collection,
            settings.data_dir.display()
        );
    }
    let mut embedder = Embedder::new(model, 1)?;
    let hits = ingest::search::search(index.as_ref(), &mut embedder, &args.query, args.limit).await?;
    output::search_hits(settings, &hits)?;
    Ok(Exit::Ok)
}

async fn status(settings: &Settings, args: &StatusArgs) -> Result<Exit> {
    let catalog = open_catalog(settings).await?;
    let jobs = match &args.job {
        Some(id) => catalog.job(id).await?.into_iter().collect(),
        None => catalog.jobs(Some(&settings.collection), 10).await?,
    };
    let failed_files: Vec<_> =
        catalog.files(&settings.collection).await?.into_iter().filter(|f| f.status() == FileStatus::Failed).collect();
    let workers = catalog.live_workers(&settings.collection).await?;
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
        let dir = ingest::workspace::parquet_dir(settings);
        anyhow::Ok(consistency::verify(&catalog, index.as_ref(), &dir, model.dim, false, None).await?.0)
    }
    .await
    .map_err(|e| format!("{e:#}"));
    output::status(settings, &output::Status { jobs, failed_files, workers, queues, health })?;
    Ok(Exit::Ok)
}

/// `ingest check`: each part in turn, one line each; [`Exit::Failed`] if any is wrong.
async fn check(settings: &Settings) -> Result<Exit> {
    let mut problems = 0;
    let mut report = |part: &str, outcome: Result<String>| {
        if outcome.is_err() {
            problems += 1;
        }
        output::check_part(part, &outcome);
    };
    let model = ModelInfo::load(settings.model_dir.as_deref());
    let model_outcome = match &model {
        Ok(info) => Embedder::new(info.clone(), 1)
            .and_then(|mut embedder| embedder.embed_one("health check"))
            .map(|vector| format!("{} makes {}-dimensional vectors", info.id, vector.len())),
        Err(error) => Err(anyhow::anyhow!("{error:#}")),
    };
    report("model", model_outcome);
    let catalog_outcome = match open_catalog(settings).await {
        Ok(catalog) => catalog.jobs(Some(&settings.collection), 1).await.map(|jobs| {
            let backend = settings.database_url.as_deref().map(ingest::redact::redact_url);
            let place = backend.unwrap_or_else(|| format!("embedded, in {}", settings.data_dir.display()));
            let last = jobs.first().map(|j| format!("last job {} {}", j.id, j.status)).unwrap_or("no jobs yet".into());
            format!("{place}, schema up to date, {last}")
        }),
        Err(error) => Err(error),
    };
    report("catalog", catalog_outcome);
    let store_outcome = async {
        let index = open_store(settings).await?;
        let place = settings.qdrant_url.as_deref().map(ingest::redact::redact_url).unwrap_or("embedded".into());
        if !index.exists().await? {
            return Ok(format!("{place}, collection {:?} not created yet", settings.collection));
        }
        if let Ok(info) = &model {
            index.ensure_collection(info.dim).await?;
        }
        Ok(format!("{place}, collection {:?} holds {} points", settings.collection, index.count(None).await?))
    }
    .await;
    report("vector store", store_outcome);
    Ok(if problems == 0 { Exit::Ok } else { Exit::Failed })
}

/// `ingest migrate`: connecting applies any pending migration.
async fn migrate(settings: &Settings) -> Result<Exit> {
    let catalog = open_catalog(settings).await?;
    let applied = catalog.applied_migrations().await?;
    output::migrate(settings, &applied);
    Ok(Exit::Ok)
}

/// `ingest restore [DIR]`: [`Exit::Ok`], or [`Exit::FilesNeedAttention`] when some parquet
/// files could not be used.
async fn restore(settings: &Settings, args: &RestoreArgs) -> Result<Exit> {
    let model = ModelInfo::load(settings.model_dir.as_deref())?;
    let workspace = Workspace::exclusive(settings).await?;
    let dir = args.dir.clone().unwrap_or_else(|| workspace.parquet_dir().to_path_buf());
    let upload = Upload { batch_size: args.upload_batch_size.max(1), parallelism: args.upload_parallelism.max(1) };
    let (catalog, index) = (workspace.catalog(), workspace.index().as_ref());
    let report = consistency::restore(catalog, index, &dir, model.dim, upload, settings.quiet).await?;
    output::restore_report(settings, &report, &dir)?;
    Ok(if report.unreadable.is_empty() { Exit::Ok } else { Exit::FilesNeedAttention })
}

/// `ingest verify [--repair]`: [`Exit::Ok`] when everything agrees (after repair),
/// [`Exit::FilesNeedAttention`] when not.
async fn verify(settings: &Settings, args: &VerifyArgs) -> Result<Exit> {
    let model = ModelInfo::load(settings.model_dir.as_deref())?;
    // A repair takes the collection's locks, as a run does, so it never judges the points of
    // a run in flight (here or on another machine) to be orphans.
    let workspace = if args.repair { Workspace::exclusive(settings).await? } else { Workspace::open(settings).await? };
    let (catalog, index, dir) = (workspace.catalog(), workspace.index(), workspace.parquet_dir());
    let upload = args.repair.then_some(Upload { batch_size: 4000, parallelism: 2 });
    let check_files = args.check_files;
    let (health, repair) = consistency::verify(catalog, index.as_ref(), dir, model.dim, check_files, upload).await?;
    let after = match repair {
        Some(_) => Some(consistency::verify(catalog, index.as_ref(), dir, model.dim, check_files, None).await?.0),
        None => None,
    };
    let clean = after.as_ref().unwrap_or(&health).is_clean();
    output::verify_report(settings, &health, repair.as_ref(), after.as_ref(), clean)?;
    Ok(if clean { Exit::Ok } else { Exit::FilesNeedAttention })
}

/// `ingest export --out DIR`: the collection's points, as stored, in one parquet file.
async fn export(settings: &Settings, args: &ExportArgs) -> Result<Exit> {
    let model = ModelInfo::load(settings.model_dir.as_deref())?;
    let index = open_store(settings).await?;
    if !index.exists().await? {
        anyhow::bail!("collection {:?} does not exist; nothing to export", settings.collection);
    }
    let points: Vec<_> = ingest::store::all_points(index.as_ref(), true).await?.into_values().collect();
    let path = ParquetCopy::at(args.out.clone(), model.dim).write_file(&settings.collection, &points)?;
    output::export(settings, &path, points.len());
    Ok(Exit::Ok)
}
