//! # Output
//!
//! What a command found or did (its outcome, from [`crate::commands`]) → the lines it prints
//! for a person (stdout, and stderr for what needs attention), or, with `--json`, the JSON it
//! prints instead; and how it ended → the process's exit code ([`Exit`]).
//!
//! One file per command whose rendering is more than a line or two: `run` (a job's report),
//! `worker`, `search`, `status`, `consistency` (`restore` and `verify`), `generations`
//! (`rollback` and `gc`), `models`; `check`,
//! `migrate` and `export` are here. `exit` holds [`Exit`].

use anyhow::Result;
use serde::Serialize;

use crate::commands::{Exported, Migrated};
use crate::settings::Settings;

mod consistency;
mod exit;
mod generations;
mod models;
mod run;
mod search;
mod status;
mod worker;

pub use consistency::{restore_report, verify_report};
pub use exit::Exit;
pub use generations::{collected, rolled_back};
pub use models::models;
pub use run::job_report;
pub use search::search_hits;
pub use status::status;
pub use worker::worker_report;

/// Prints `value` as indented JSON.
fn print_json(value: &impl Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints one line of `ingest check`: the part, and what it found or why it failed.
pub fn check_part(part: &str, outcome: &Result<String>) {
    match outcome {
        Ok(detail) => println!("ok      {part}: {detail}"),
        Err(error) => println!("FAILED  {part}: {error:#}"),
    }
}

/// Prints the migrations `ingest migrate` found applied.
pub fn migrate(settings: &Settings, migrated: &Migrated) {
    if settings.quiet {
        return;
    }
    println!("catalog schema is up to date; applied migrations: {}", migrated.applied.join(", "));
    if let Some(report) = &migrated.sparse_vectors {
        println!(
            "collection {:?}: {} points given sparse vectors from the parquet copy ({} files); {} files kept as stored",
            report.collection, report.points_restored, report.files_restored, report.files_kept
        );
        for path in &report.files_to_reembed {
            println!(
                "  lost from both parquet and the collection: {path}; returned to pending, the next run embeds it"
            );
        }
        for file in &report.unreadable {
            eprintln!("  skipped {}: {}", file.path, file.reason);
        }
    }
}

/// Prints where `ingest export` wrote the collection's points.
pub fn export(settings: &Settings, exported: &Exported) {
    let Exported { path, points } = exported;
    if settings.json {
        println!("{}", serde_json::json!({ "path": path, "points": points }));
    } else if !settings.quiet {
        println!("exported {points} points of collection {:?} to {}", settings.collection, path.display());
    }
}
