//! The `ingest` command: parses the arguments ([`cli`]), resolves the settings, runs the
//! command ([`ingest::commands`]), and hands its outcome to [`ingest::output`], which prints
//! it; the outcome also decides the [`Exit`] whose code the process exits with ([`exit`]).

mod cli;
mod exit;

use std::process::ExitCode;

use anyhow::Result;

use cli::{Cli, Command};
use exit::Exit;
use ingest::commands;
use ingest::consistency::Upload;
use ingest::output;
use ingest::settings::Settings;

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
    if let Some(Command::Extractor(args)) = &cli.command {
        return match ingest::extract::pool::serve(args.memory_limit, &args.ocr()) {
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
            let exit = Exit::of_error(&error);
            // A reader that stopped reading (`| head -1`) wanted no more: nothing to report.
            if exit != Exit::Ok {
                eprintln!("error: {error:#}");
            }
            ExitCode::from(exit.code())
        }
    }
}

/// Runs the command, prints its outcome, and tells how it ended.
async fn dispatch(cli: Cli) -> Result<Exit> {
    let settings = Settings::resolve(&cli.global.into())?;
    let settings = &settings;
    Ok(match cli.command {
        None => run(settings, cli.run).await?,
        Some(Command::Run(args)) => run(settings, *args).await?,
        Some(Command::Search(args)) => {
            let results = commands::search(settings, &args.request()?).await?;
            output::search_hits(settings, &results)?;
            Exit::Ok
        }
        Some(Command::Status(args)) => {
            let status = commands::status(settings, args.job.as_deref()).await?;
            output::status(settings, &status)?;
            Exit::Ok
        }
        Some(Command::Check) => {
            let report = commands::check(settings).await;
            for (part, outcome) in report.parts() {
                output::check_part(part, outcome)?;
            }
            if report.all_ok() {
                Exit::Ok
            } else {
                Exit::Failed
            }
        }
        Some(Command::Restore(args)) => {
            let upload = Upload { batch_size: args.upload_batch_size, parallelism: args.upload_parallelism };
            let restored = commands::restore(settings, args.dir, upload).await?;
            output::restore_report(settings, &restored)?;
            if restored.report.unreadable.is_empty() {
                Exit::Ok
            } else {
                Exit::FilesNeedAttention
            }
        }
        Some(Command::Verify(args)) => {
            let report = commands::verify(settings, args.repair, args.check_files).await?;
            output::verify_report(settings, &report)?;
            if report.is_clean() {
                Exit::Ok
            } else {
                Exit::FilesNeedAttention
            }
        }
        Some(Command::Export(args)) => {
            let exported = commands::export(settings, args.out).await?;
            output::export(settings, &exported)?;
            Exit::Ok
        }
        Some(Command::Migrate) => {
            let migrated = commands::migrate(settings).await?;
            output::migrate(settings, &migrated)?;
            match &migrated.sparse_vectors {
                Some(report) if !report.unreadable.is_empty() => Exit::FilesNeedAttention,
                _ => Exit::Ok,
            }
        }
        Some(Command::Switch(args)) => {
            let switched = commands::switch(settings, args.confirm).await?;
            output::switched(settings, &switched)?;
            if switched.switched {
                Exit::Ok
            } else {
                Exit::FilesNeedAttention
            }
        }
        Some(Command::Rollback) => {
            output::rolled_back(settings, &commands::rollback(settings).await?)?;
            Exit::Ok
        }
        Some(Command::Gc(args)) => {
            output::collected(settings, &commands::gc(settings, args.dry_run).await?, args.dry_run)?;
            Exit::Ok
        }
        Some(Command::Models) => {
            output::models(settings, &commands::models(settings).await?)?;
            Exit::Ok
        }
        Some(Command::Serve(args)) => {
            let command = args.command()?;
            let with_token = command.token_file.is_some();
            commands::serve(settings, command, |address| {
                if let Err(error) = output::serving(settings, address, with_token) {
                    eprintln!("ingest serve: {error:#}");
                }
            })
            .await?;
            Exit::Ok
        }
        Some(Command::Worker(args)) => {
            let report = commands::worker(settings, &args.into()).await?;
            output::worker_report(settings, &report)?;
            Exit::of_worker(&report)
        }
        Some(Command::Extractor(_)) => unreachable!("main serves the extractor process before any set-up"),
    })
}

/// `ingest DIR` and `ingest run DIR`.
async fn run(settings: &Settings, args: cli::RunArgs) -> Result<Exit> {
    let report = commands::run(settings, &args.into()).await?;
    output::job_report(settings, &report)?;
    Ok(Exit::of_run(&report))
}
