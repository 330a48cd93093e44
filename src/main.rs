//! The `ingest` command: parses arguments, wires the catalog, the vector store and the
//! model together, runs the command, prints the result and picks the exit code.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};

use ingest::cli::{
    Cli, Command, ExportArgs, RestoreArgs, RunArgs, SearchArgs, Settings, StatusArgs, VerifyArgs, WorkerArgs,
};
use ingest::consistency::{self, Upload};
use ingest::embed::{Embedder, ModelInfo};
use ingest::lock::Busy;
use ingest::parquet_copy::ParquetCopy;
use ingest::pipeline::worker::{run_worker, wait_for_queued_job, WorkerParts, WorkerReport};
use ingest::pipeline::{run_job, FailedFile, JobReport};
use ingest::workspace::{open_catalog, open_store, Workspace};

/// Files listed by name, per kind, in a run's summary; `--json` has them all.
const LISTED_AT_MOST: usize = 20;

/// Exit code when another run holds the collection.
const EXIT_BUSY: u8 = 3;

fn main() -> ExitCode {
    ingest::embed::return_freed_memory_promptly();
    ingest::extract::install_quiet_parser_panics();
    let cli = match Cli::try_parse_args_and_env() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { 1 } else { 0 };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    // An extractor process serves its parent over stdin and stdout, before any runtime,
    // catalog or store exists.
    if let Some(Command::ExtractWorker(args)) = &cli.command {
        return match ingest::extract::pool::serve(args.memory_limit) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: extractor process: {error:#}");
                ExitCode::from(1)
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(if error.downcast_ref::<Busy>().is_some() { EXIT_BUSY } else { 1 })
        }
    }
}

async fn dispatch(cli: Cli) -> Result<u8> {
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
/// finish. A second signal ends the process at once (exit 130); the catalog's rows say where
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
        std::process::exit(130);
    });
    cancel
}

async fn run(settings: &Settings, args: &RunArgs) -> Result<u8> {
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
    let report = run_job(&job, catalog, lock, index, &parquet, embedder, cancel.clone(), settings.quiet).await?;
    let report = match args.workers {
        Some(local) if !job.dry_run && report.status == "queued" => {
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
    print_report(settings, &report)?;
    Ok(report.exit_code().clamp(0, 255) as u8)
}

/// `ingest worker`: works on queued jobs until stopped (or, with --once, until none is left).
async fn worker(settings: &Settings, args: &WorkerArgs) -> Result<u8> {
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
    print_worker_report(settings, &report)?;
    Ok(report.exit_code().clamp(0, 255) as u8)
}

fn print_worker_report(settings: &Settings, report: &WorkerReport) -> Result<()> {
    if settings.json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    if !settings.quiet {
        for job in &report.jobs {
            println!(
                "worker {} on job {}: {} embedded, {} deleted, {} failed, {} lost to other workers; {} chunks ({} from the cache)",
                report.worker,
                job.job_id,
                job.added + job.updated,
                job.deleted,
                job.failed.len(),
                job.lost_leases.len(),
                job.chunks,
                job.cache_hits
            );
        }
        for job in &report.ended_jobs {
            println!("worker {} ended job {job}", report.worker);
        }
    }
    if let Some(error) = &report.error {
        eprintln!("error: worker {} stopped: {error}", report.worker);
    }
    Ok(())
}

fn print_report(settings: &Settings, report: &JobReport) -> Result<()> {
    if settings.json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    if let Some(plan) = &report.plan {
        if !settings.quiet {
            println!("dry run over collection {:?}; nothing was changed", report.collection);
            // Refused deletes are listed as what they are: files not found, which a run would keep.
            let delete = if report.refused_deletes.is_some() { "keep (not found)" } else { "delete" };
            for (label, paths) in [("add", &plan.add), ("update", &plan.update), (delete, &plan.delete)] {
                for path in paths {
                    println!("  would {label:<6} {path}");
                }
            }
            println!(
                "  {} to add, {} to update, {} unchanged, {} to delete, {} failing, {} not retried, {} not checked",
                report.added,
                report.updated,
                report.unchanged,
                plan.delete.len(),
                report.failed.len(),
                report.not_retried.len(),
                report.not_checked.len()
            );
            if let Some(refused) = &report.refused_deletes {
                println!("  a run would delete nothing: {}", refused.message());
            }
        }
    } else if !settings.quiet {
        println!(
            "job {} {} in {:.1}s (collection {:?})",
            report.job_id, report.status, report.elapsed_seconds, report.collection
        );
        println!(
            "  files: {} seen, {} added, {} updated, {} unchanged, {} deleted, {} no text, {} failed, {} not checked; skipped: {} not text, {} by the extension filter",
            report.files_seen,
            report.added,
            report.updated,
            report.unchanged,
            report.deleted,
            report.no_text.len(),
            report.failed.len(),
            report.not_checked.len(),
            report.not_text.len(),
            report.filtered_out,
        );
        for file in &report.no_text {
            println!("  no text: {}: {}", file.path, file.reason);
        }
        for line in listing(&report.not_text, "  skipped: ", "  ", " skipped as not text") {
            println!("{line}");
        }
        match &report.queue {
            Some(queue) => println!(
                "  queued {} work items: {} done, {} parked, {} open; the job's files hold {} points",
                report.queued,
                queue.depth.done,
                queue.depth.parked,
                queue.depth.open(),
                report.points
            ),
            None if report.status == "queued" => println!(
                "  queued {} work items for `ingest worker` processes; `ingest status` follows them",
                report.queued
            ),
            None => println!(
                "  chunks embedded: {}, reused from the embedding cache: {}, points written: {} ({:.1} chunks/s)",
                report.chunks, report.cache_hits, report.points, report.chunks_per_second
            ),
        }
        if let Some(verified) = &report.verified {
            let verdict = if verified.agree { "agree with the collection" } else { "DISAGREE with the collection" };
            println!(
                "  checked: the {} files this job touched {verdict}; {} points stored, {} expected ({:.2}s)",
                verified.files, verified.collection_points, verified.catalog_points, verified.seconds
            );
        }
    }
    for problem in &report.scan_problems {
        eprintln!("  skipped {}: {}", problem.path, problem.reason);
    }
    if !settings.quiet {
        for note in &report.scan_notes {
            eprintln!("  note: {}: {}", note.path, note.reason);
        }
    }
    if !report.failed.is_empty() {
        eprintln!("  failed files:");
        for failed in &report.failed {
            eprintln!("    {}: {}", failed.path, failed.reason);
        }
    }
    if !report.not_checked.is_empty() {
        eprintln!("  not checked, kept as indexed (make them readable, then run again):");
        for line in listing(&report.not_checked, "    ", "    ", "") {
            eprintln!("{line}");
        }
    }
    if let Some(verified) = report.verified.as_ref().filter(|v| !v.agree) {
        eprintln!("  the job's check found the catalog and the collection apart; run `ingest verify --repair`:");
        for disagreement in &verified.disagreements {
            eprintln!("    {disagreement}");
        }
    }
    if !report.not_retried.is_empty() && !settings.quiet {
        eprintln!("  not retried (edit the file, or pass --full):");
        for file in &report.not_retried {
            eprintln!("    {}: {}", file.path, file.reason);
        }
    }
    for parked in report.queue.iter().flat_map(|q| &q.parked) {
        eprintln!("  parked {}: {}", parked.path, parked.reason);
    }
    if let Some(error) = &report.error {
        eprintln!("error: the job stopped: {error}");
    }
    Ok(())
}

/// Summary lines for `files`: the first [`LISTED_AT_MOST`] as `{prefix}path: reason`, then,
/// when there are more, `{indent}... and N more{what} (all of them are in --json)`.
fn listing(files: &[FailedFile], prefix: &str, indent: &str, what: &str) -> Vec<String> {
    let mut lines: Vec<String> =
        files.iter().take(LISTED_AT_MOST).map(|file| format!("{prefix}{}: {}", file.path, file.reason)).collect();
    if files.len() > LISTED_AT_MOST {
        let rest = files.len() - LISTED_AT_MOST;
        lines.push(format!("{indent}... and {rest} more{what} (all of them are in --json)"));
    }
    lines
}

async fn search(settings: &Settings, args: &SearchArgs) -> Result<u8> {
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
    if settings.json {
        let rows: Vec<_> = hits
            .iter()
            .map(|h| {
                let mut row = serde_json::json!({
                    "score": h.score, "path": h.point.payload.path, "chunk_index": h.point.payload.chunk_index,
                    "doc_id": h.point.payload.doc_id, "content": h.point.payload.content,
                });
                // The origin fields the chunk has: page, page_end, sheet, slide, heading, title.
                if let (Some(row), Ok(serde_json::Value::Object(origin))) =
                    (row.as_object_mut(), serde_json::to_value(&h.point.payload.origin))
                {
                    row.extend(origin);
                }
                row
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for hit in &hits {
            let place = ingest::search::place(&hit.point.payload.origin);
            println!(
                "{:.3}  {}{}{}  #{}\n       {}",
                hit.score,
                hit.point.payload.path,
                if place.is_empty() { "" } else { " " },
                place,
                hit.point.payload.chunk_index,
                ingest::search::snippet(&hit.point.payload.content, 160)
            );
        }
    }
    Ok(0)
}

async fn status(settings: &Settings, args: &StatusArgs) -> Result<u8> {
    let catalog = open_catalog(settings).await?;
    let jobs = match &args.job {
        Some(id) => catalog.job(id).await?.into_iter().collect(),
        None => catalog.jobs(Some(&settings.collection), 10).await?,
    };
    let failed: Vec<_> =
        catalog.files(&settings.collection).await?.into_iter().filter(|f| f.status == "failed").collect();
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
    if settings.json {
        let health = match &health {
            Ok(health) => serde_json::to_value(health)?,
            Err(error) => serde_json::json!({ "unavailable": error }),
        };
        let queues: Vec<_> = queues
            .iter()
            .map(|(job, depth, parked)| serde_json::json!({ "job_id": job, "depth": depth, "parked": parked }))
            .collect();
        let out = serde_json::json!({
            "jobs": jobs, "failed_files": failed, "health": health, "workers": workers, "queues": queues,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(0);
    }
    for job in &jobs {
        let c = &job.counters;
        println!(
            "{}  {:<10} {}  files {} (embedded {}, unchanged {}, deleted {}, failed {})  {}",
            job.created_at,
            job.status,
            job.id,
            c.total_files,
            c.processed_files,
            c.skipped_files,
            c.deleted_files,
            c.failed_files,
            job.directory_path
        );
        if let Some(error) = &job.error {
            println!("    error: {error}");
        }
    }
    for (job, depth, parked) in &queues {
        println!(
            "queue of job {job}: {} pending, {} leased, {} done, {} parked",
            depth.pending, depth.leased, depth.done, depth.parked
        );
        for item in parked {
            println!("  parked {}: {}", item.path, item.reason);
        }
    }
    if !workers.is_empty() {
        println!("live workers on collection {:?}:", settings.collection);
        for worker in &workers {
            println!(
                "  {} (host {}, pid {}): {} items done, last heartbeat {:.0}s ago, started {}",
                worker.id, worker.host, worker.pid, worker.items_done, worker.silent_seconds, worker.started_at
            );
        }
    }
    if !failed.is_empty() {
        println!("failed files in collection {:?}:", settings.collection);
        for file in failed {
            println!("  {} (tries: {}): {}", file.path, file.retry_count, file.error.unwrap_or_default());
        }
    }
    match &health {
        Ok(health) => print_health("sync health", health),
        Err(error) => println!("sync health: unavailable ({error})"),
    }
    Ok(0)
}

/// `ingest check`: each part in turn, one line each; exit 1 if any is wrong.
async fn check(settings: &Settings) -> Result<u8> {
    let mut problems = 0;
    let mut report = |part: &str, outcome: Result<String>| match outcome {
        Ok(detail) => println!("ok      {part}: {detail}"),
        Err(error) => {
            problems += 1;
            println!("FAILED  {part}: {error:#}");
        }
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
            let backend = settings.database_url.as_deref().map(ingest::catalog::redact_url);
            let place = backend.unwrap_or_else(|| format!("embedded, in {}", settings.data_dir.display()));
            let last = jobs.first().map(|j| format!("last job {} {}", j.id, j.status)).unwrap_or("no jobs yet".into());
            format!("{place}, schema up to date, {last}")
        }),
        Err(error) => Err(error),
    };
    report("catalog", catalog_outcome);
    let store_outcome = async {
        let index = open_store(settings).await?;
        let place = settings.qdrant_url.as_deref().map(ingest::catalog::redact_url).unwrap_or("embedded".into());
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
    Ok(if problems == 0 { 0 } else { 1 })
}

/// `ingest migrate`: connecting applies any pending migration.
async fn migrate(settings: &Settings) -> Result<u8> {
    let catalog = open_catalog(settings).await?;
    let applied = catalog.applied_migrations().await?;
    if !settings.quiet {
        println!("catalog schema is up to date; applied migrations: {}", applied.join(", "));
    }
    Ok(0)
}

/// `ingest restore [DIR]`: exit 0, or 2 when some parquet files could not be used.
async fn restore(settings: &Settings, args: &RestoreArgs) -> Result<u8> {
    let model = ModelInfo::load(settings.model_dir.as_deref())?;
    let workspace = Workspace::exclusive(settings).await?;
    let dir = args.dir.clone().unwrap_or_else(|| workspace.parquet_dir().to_path_buf());
    let upload = Upload { batch_size: args.upload_batch_size.max(1), parallelism: args.upload_parallelism.max(1) };
    let (catalog, index) = (workspace.catalog(), workspace.index().as_ref());
    let report = consistency::restore(catalog, index, &dir, model.dim, upload, settings.quiet).await?;
    if settings.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if !settings.quiet {
        println!(
            "restored collection {:?}: {} files, {} points from {}; {} files kept as stored; {} orphan points deleted",
            report.collection,
            report.files_restored,
            report.points_restored,
            dir.display(),
            report.files_kept,
            report.orphan_points_deleted
        );
        for path in &report.files_to_reembed {
            println!(
                "  lost from both parquet and the collection: {path}; returned to pending, the next run embeds it"
            );
        }
    }
    for file in &report.unreadable {
        eprintln!("  skipped {}: {}", file.path, file.reason);
    }
    Ok(if report.unreadable.is_empty() { 0 } else { 2 })
}

/// `ingest verify [--repair]`: exit 0 when everything agrees (after repair), 2 when not.
async fn verify(settings: &Settings, args: &VerifyArgs) -> Result<u8> {
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
    if settings.json {
        let out = serde_json::json!({ "health": health, "repair": repair, "after_repair": after, "clean": clean });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if !settings.quiet {
        print_health("found", &health);
        if let (Some(repair), Some(after)) = (&repair, &after) {
            println!(
                "repaired: {} points re-uploaded from parquet, {} parquet rows written back from the collection, {} orphans deleted, {} files returned to pending for re-embedding",
                repair.points_reuploaded,
                repair.parquet_rows_written,
                repair.orphans_deleted,
                repair.files_to_reembed.len()
            );
            print_health("after repair", after);
        }
    }
    Ok(if clean { 0 } else { 2 })
}

fn print_health(label: &str, health: &consistency::Health) {
    println!(
        "{label}: collection {:?}: {} completed files, {} synced ({:.1}%); points: {} expected, {} stored, {} missing, {} orphaned, {} stale; {} parquet rows missing",
        health.collection,
        health.completed_files,
        health.synced_files,
        health.synced_percent,
        health.expected_points,
        health.stored_points,
        health.missing_points,
        health.orphan_points,
        health.stale_points,
        health.missing_parquet_rows
    );
    for file in &health.unreadable_parquet {
        println!("  unreadable parquet {}: {}", file.path, file.reason);
    }
    for mismatch in &health.counter_mismatches {
        println!("  latest job's counter {mismatch}");
    }
    if let Some(disk) = &health.files_on_disk {
        println!(
            "  files on disk: {} checked, {} missing, {} changed since indexed (run `ingest DIR` to bring them up to date)",
            disk.checked,
            disk.missing.len(),
            disk.changed.len()
        );
    }
    for path in &health.examples {
        println!("  out of sync: {path}");
    }
}

/// `ingest export --out DIR`: the collection's points, as stored, in one parquet file.
async fn export(settings: &Settings, args: &ExportArgs) -> Result<u8> {
    let model = ModelInfo::load(settings.model_dir.as_deref())?;
    let index = open_store(settings).await?;
    if !index.exists().await? {
        anyhow::bail!("collection {:?} does not exist; nothing to export", settings.collection);
    }
    let points: Vec<_> = ingest::store::all_points(index.as_ref(), true).await?.into_values().collect();
    let path = ParquetCopy::at(args.out.clone(), model.dim).write_file(&settings.collection, &points)?;
    if settings.json {
        println!("{}", serde_json::json!({ "path": path, "points": points.len() }));
    } else if !settings.quiet {
        println!("exported {} points of collection {:?} to {}", points.len(), settings.collection, path.display());
    }
    Ok(0)
}
