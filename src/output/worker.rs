//! # Worker reports
//!
//! A [`WorkerReport`] (`ingest worker`) → one line per job it worked on and per job it
//! ended, and its error on stderr; or, with `--json`, the report as JSON.

use anyhow::Result;

use super::print_json;
use crate::pipeline::worker::WorkerReport;
use crate::settings::Settings;

/// Prints a worker's report.
pub fn worker_report(settings: &Settings, report: &WorkerReport) -> Result<()> {
    if settings.json {
        return print_json(report);
    }
    if !settings.quiet {
        for job in &report.jobs {
            say!(
                "worker {} on job {}: {} embedded, {} deleted, {} failed, {} lost to other workers; {} chunks ({} from the cache)",
                report.worker,
                job.job_id,
                job.added + job.updated,
                job.deleted,
                job.failed.len(),
                job.lost_leases.len(),
                job.chunks,
                job.cache_hits
            )?;
        }
        for job in &report.ended_jobs {
            say!("worker {} ended job {job}", report.worker)?;
        }
    }
    if let Some(error) = &report.error {
        eprintln!("error: worker {} stopped: {error}", report.worker);
    }
    Ok(())
}
