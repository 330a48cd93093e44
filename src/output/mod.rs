//! # Output
//!
//! What a command found or did (its outcome, from [`crate::commands`]) → the lines it prints
//! for a person (stdout, and stderr for what needs attention), or, with `--json`, the JSON it
//! prints instead; and how it ended → the process's exit code ([`Exit`]).
//!
//! One file per command whose rendering is more than a line or two: `run` (a job's report),
//! `worker`, `search`, `status`, `consistency` (`restore` and `verify`), `generations`
//! (`switch`, `rollback` and `gc`), `models`; `check`,
//! `migrate`, `export` and where `serve` listens are here.
//!
//! Every line goes out through `say!`: a reader that closes standard output early
//! (`ingest status | head -1`) ends the command with [`StdoutClosed`], quietly, as `ls | head`
//! does, instead of a panic.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

use crate::commands::{Exported, Migrated};
use crate::settings::Settings;

/// Standard output's reader closed it before the command had printed everything
/// (`ingest search … | head -1`). The `ingest` binary ends quietly and successfully on it,
/// as a Unix tool does; a server's dropped connection is another error and never this one.
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed by its reader")]
pub struct StdoutClosed;

/// Writes one line to standard output, as `println!` would, but returns its failure:
/// [`StdoutClosed`] when the reader has gone, an error with context otherwise.
macro_rules! say {
    () => {
        $crate::output::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Writes `text` to standard output (`say!` gives it its line).
fn write_stdout(text: std::fmt::Arguments) -> Result<()> {
    std::io::stdout().lock().write_fmt(text).map_err(|error| match error.kind() {
        std::io::ErrorKind::BrokenPipe => StdoutClosed.into(),
        _ => anyhow::Error::new(error).context("writing to standard output"),
    })
}

mod consistency;
mod generations;
mod models;
mod run;
mod search;
mod status;
mod worker;

pub use consistency::{restore_report, verify_report};
pub use generations::{collected, rolled_back, switched};
pub use models::models;
pub use run::job_report;
pub use search::search_hits;
pub use status::status;
pub use worker::worker_report;

/// Prints `value` as indented JSON.
fn print_json(value: &impl Serialize) -> Result<()> {
    say!("{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}

/// Prints one line of `ingest check`: the part, and what it found or why it failed.
pub fn check_part(part: &str, outcome: &Result<String>) -> Result<()> {
    match outcome {
        Ok(detail) => say!("ok      {part}: {detail}")?,
        Err(error) => say!("FAILED  {part}: {error:#}")?,
    }
    Ok(())
}

/// Prints the migrations `ingest migrate` found applied.
pub fn migrate(settings: &Settings, migrated: &Migrated) -> Result<()> {
    if settings.quiet {
        return Ok(());
    }
    say!("catalog schema is up to date; applied migrations: {}", migrated.applied.join(", "))?;
    if let Some(moved) = &migrated.moved {
        say!("{}", moved.summary())?;
    }
    if let Some(report) = &migrated.sparse_vectors {
        say!(
            "collection {:?}: {} points given sparse vectors from the parquet copy ({} files); {} files kept as stored",
            report.collection,
            report.points_restored,
            report.files_restored,
            report.files_kept
        )?;
        for path in &report.files_to_reembed {
            say!("  lost from both parquet and the collection: {path}; returned to pending, the next run embeds it")?;
        }
        for file in &report.unreadable {
            eprintln!("  skipped {}: {}", file.path, file.reason);
        }
    }
    Ok(())
}

/// Prints where `ingest export` wrote the collection's points.
pub fn export(settings: &Settings, exported: &Exported) -> Result<()> {
    let Exported { path, points } = exported;
    if settings.json {
        say!("{}", serde_json::json!({ "path": path, "points": points }))?;
    } else if !settings.quiet {
        say!("exported {points} points of collection {:?} to {}", settings.collection, path.display())?;
    }
    Ok(())
}

/// Says where `ingest serve` listens, once it does: on stderr, so that standard output stays
/// free; with `--json`, one JSON line on stdout that a supervising program can read.
pub fn serving(settings: &Settings, address: std::net::SocketAddr, with_token: bool) -> Result<()> {
    if settings.json {
        say!("{}", serde_json::json!({ "listening": format!("http://{address}"), "collection": settings.collection }))?;
    } else if !settings.quiet {
        eprintln!(
            "ingest serve: listening on http://{address} (collection {:?}{}); stop with Ctrl-C",
            settings.collection,
            if with_token { ", token required" } else { "" }
        );
    }
    if !address.ip().is_loopback() && !with_token {
        eprintln!(
            "ingest serve: warning: {} is reachable from other machines and no --token-file is set: anyone who reaches it can search",
            address.ip()
        );
    }
    Ok(())
}
