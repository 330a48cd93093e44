//! # Run reports
//!
//! A [`JobReport`] (`ingest DIR`, `ingest run`) → its summary on stdout, and on stderr the
//! files that need attention and why; or, with `--json`, the report as JSON.

use anyhow::Result;

use super::print_json;
use crate::pipeline::{FailedFile, JobReport, RunStatus};
use crate::settings::Settings;

/// Files listed by name, per kind, in a run's summary; `--json` has them all.
const LISTED_AT_MOST: usize = 20;

/// Prints a job's report.
pub fn job_report(settings: &Settings, report: &JobReport) -> Result<()> {
    if settings.json {
        return print_json(report);
    }
    if let Some(plan) = &report.plan {
        if !settings.quiet {
            say!("dry run over collection {:?}; nothing was changed", report.collection)?;
            // Refused deletes are listed as what they are: files not found, which a run would keep.
            let delete = if report.refused_deletes.is_some() { "keep (not found)" } else { "delete" };
            for (label, paths) in [("add", &plan.add), ("update", &plan.update), (delete, &plan.delete)] {
                for path in paths {
                    say!("  would {label:<6} {path}")?;
                }
            }
            say!(
                "  {} to add, {} to update, {} unchanged, {} to delete, {} failing, {} not retried, {} not checked",
                report.added,
                report.updated,
                report.unchanged,
                plan.delete.len(),
                report.failed.len(),
                report.not_retried.len(),
                report.not_checked.len()
            )?;
            if let Some(refused) = &report.refused_deletes {
                say!("  a run would delete nothing: {}", refused.message())?;
            }
        }
    } else if !settings.quiet {
        say!(
            "job {} {} in {:.1}s (collection {:?})",
            report.job_id,
            report.status,
            report.elapsed_seconds,
            report.collection
        )?;
        say!(
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
        )?;
        for file in &report.no_text {
            say!("  no text: {}: {}", file.path, file.reason)?;
        }
        if report.ocr_pages > 0 {
            say!("  OCR: {} pages read in {:.1}s", report.ocr_pages, report.stage_seconds.ocr)?;
        }
        if let Some(unread) = &report.ocr_unread {
            say!("  OCR: {} files have scanned pages left unread: {}", unread.files, unread.reason)?;
        }
        for line in listing(&report.not_text, "  skipped: ", "  ", " skipped as not text") {
            say!("{line}")?;
        }
        match &report.queue {
            Some(queue) => say!(
                "  queued {} work items: {} done, {} parked, {} open; the job's files hold {} points",
                report.queued,
                queue.depth.done,
                queue.depth.parked,
                queue.depth.open(),
                report.points
            )?,
            None if report.status == RunStatus::Queued => say!(
                "  queued {} work items for `ingest worker` processes; `ingest status` follows them",
                report.queued
            )?,
            None => say!(
                "  chunks embedded: {}, reused from the embedding cache: {}, points written: {} ({:.1} chunks/s)",
                report.chunks,
                report.cache_hits,
                report.points,
                report.chunks_per_second
            )?,
        }
        if let Some(built) = &report.generation {
            let chunking = format!("chunks {}/{}", built.chunk_size, built.chunk_overlap);
            say!("  generation {}: built by {} ({chunking}) beside the live generation", built.number, built.model)?;
            match (built.catch_up_passes, built.caught_up_files) {
                (0, _) => {}
                (_, 0) => say!("  caught up: no file changed during the build")?,
                (passes, files) => say!(
                    "  caught up: {files} files changed during the build, in {passes} more runs over the directory"
                )?,
            }
            if let Some(moved) = &built.moved {
                say!("  {}", moved.summary())?;
            }
            match (&built.waiting, built.replaced) {
                (None, Some(replaced)) => say!(
                    "  now live: collection {:?} serves generation {} in place of generation {replaced} (`ingest rollback` \
                     serves {replaced} again, `ingest gc` deletes it)",
                    settings.collection, built.number
                )?,
                (None, None) => say!("  now live: collection {:?} serves generation {}", settings.collection, built.number)?,
                (Some(_), _) => {}
            }
        }
        if let Some(verified) = &report.verified {
            let verdict = if verified.agree { "agree with the collection" } else { "DISAGREE with the collection" };
            say!(
                "  checked: the {} files this job touched {verdict}; {} points stored, {} expected ({:.2}s)",
                verified.files,
                verified.collection_points,
                verified.catalog_points,
                verified.seconds
            )?;
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
    if let Some((number, waiting)) = report.generation.as_ref().and_then(|g| Some((g.number, g.waiting.as_ref()?))) {
        eprintln!("  generation {number} is not live yet, and the live generation is untouched: {waiting}");
    }
    if let Some(built) = report.generation.as_ref().filter(|g| !g.missing.is_empty()) {
        for line in listing(&built.missing.by_file(), "    lacks ", "    ", " files") {
            eprintln!("{line}");
        }
    }
    Ok(())
}

/// Summary lines for `files`: the first [`LISTED_AT_MOST`] as `{prefix}path: reason`, then,
/// when there are more, `{indent}... and N more{what} (all of them are in --json)`.
pub(super) fn listing(files: &[FailedFile], prefix: &str, indent: &str, what: &str) -> Vec<String> {
    let mut lines: Vec<String> =
        files.iter().take(LISTED_AT_MOST).map(|file| format!("{prefix}{}: {}", file.path, file.reason)).collect();
    if files.len() > LISTED_AT_MOST {
        let rest = files.len() - LISTED_AT_MOST;
        lines.push(format!("{indent}... and {rest} more{what} (all of them are in --json)"));
    }
    lines
}
