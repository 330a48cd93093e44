//! # Restore and verify reports
//!
//! What `ingest restore` did ([`Restored`]) → one summary line and the files to re-embed,
//! with the parquet files it skipped on stderr; what `ingest verify` found ([`VerifyReport`])
//! → a line of counts and the examples out of sync, before and after the repair. With
//! `--json`, each as JSON.

use anyhow::Result;

use super::print_json;
use crate::commands::{Restored, VerifyReport};
use crate::consistency::Health;
use crate::settings::Settings;

/// Prints what a restore did.
pub fn restore_report(settings: &Settings, restored: &Restored) -> Result<()> {
    let Restored { report, dir } = restored;
    if settings.json {
        print_json(report)?;
    } else if !settings.quiet {
        say!(
            "restored collection {:?}: {} files, {} points from {}; {} files kept as stored; {} orphan points deleted",
            report.collection,
            report.files_restored,
            report.points_restored,
            dir.display(),
            report.files_kept,
            report.orphan_points_deleted
        )?;
        for path in &report.files_to_reembed {
            say!("  lost from both parquet and the collection: {path}; returned to pending, the next run embeds it")?;
        }
    }
    for file in &report.unreadable {
        eprintln!("  skipped {}: {}", file.path, file.reason);
    }
    Ok(())
}

/// Prints what `ingest verify` found, what its repair did, and what it found after.
pub fn verify_report(settings: &Settings, report: &VerifyReport) -> Result<()> {
    let VerifyReport { health, repair, after_repair: after } = report;
    if settings.json {
        let clean = report.is_clean();
        let out = serde_json::json!({ "health": health, "repair": repair, "after_repair": after, "clean": clean });
        print_json(&out)?;
    } else if !settings.quiet {
        health_lines("found", health)?;
        if let (Some(repair), Some(after)) = (repair, after) {
            say!(
                "repaired: {} points re-uploaded from parquet, {} parquet rows written back from the collection, {} orphans deleted, {} files returned to pending for re-embedding",
                repair.points_reuploaded,
                repair.parquet_rows_written,
                repair.orphans_deleted,
                repair.files_to_reembed.len()
            )?;
            health_lines("after repair", after)?;
        }
    }
    Ok(())
}

/// Prints a collection's sync health, its first line starting with `label`.
pub(super) fn health_lines(label: &str, health: &Health) -> Result<()> {
    say!(
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
    )?;
    for file in &health.unreadable_parquet {
        say!("  unreadable parquet {}: {}", file.path, file.reason)?;
    }
    for mismatch in &health.counter_mismatches {
        say!("  latest job's counter {mismatch}")?;
    }
    if let Some(disk) = &health.files_on_disk {
        say!(
            "  files on disk: {} checked, {} missing, {} changed since indexed (run `ingest DIR` to bring them up to date)",
            disk.checked,
            disk.missing.len(),
            disk.changed.len()
        )?;
    }
    for path in &health.examples {
        say!("  out of sync: {path}")?;
    }
    Ok(())
}
