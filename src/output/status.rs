//! # Status
//!
//! What `ingest status` read from the catalog and the collection ([`Status`]) → the
//! generations (number, state, model, chunking, files, points, when built and made live), the latest
//! jobs, their queues and parked items, the live workers, the failed files and the sync
//! health, a few lines each; or, with `--json`, one object holding them all. Why the
//! collection's name on a Qdrant server was left naming another generation goes to stderr.

use anyhow::Result;

use super::consistency::health_lines;
use super::print_json;
use crate::commands::{GenerationStatus, Status};
use crate::settings::Settings;

/// Prints what `ingest status` found.
pub fn status(settings: &Settings, status: &Status) -> Result<()> {
    let Status { generations, generation, jobs, failed_files: failed, workers, queues, health, alias } = status;
    if let Some(alias) = alias {
        eprintln!("ingest: {alias}");
    }
    if settings.json {
        let health = match health {
            Ok(health) => serde_json::to_value(health)?,
            Err(error) => serde_json::json!({ "unavailable": error }),
        };
        let queues: Vec<_> = queues
            .iter()
            .map(|(job, depth, parked)| serde_json::json!({ "job_id": job, "depth": depth, "parked": parked }))
            .collect();
        let out = serde_json::json!({
            "generations": generations, "generation": generation, "jobs": jobs, "failed_files": failed, "health": health, "workers": workers, "queues": queues,
        });
        return print_json(&out);
    }
    if !generations.is_empty() {
        say!("generations of collection {:?}:", settings.collection)?;
    }
    for GenerationStatus { row, files, points } in generations {
        let recipe = &row.recipe;
        say!(
            "  {:>3}  {:<8}  {}  {}-d, chunks {}/{}  {files} files, {points} points  created {}{}",
            row.number,
            row.state,
            recipe.model_id,
            recipe.vector_dim,
            recipe.chunk_size,
            recipe.chunk_overlap,
            row.created_at,
            row.live_at.as_deref().map(|at| format!(", live since {at}")).unwrap_or_default()
        )?;
    }
    if let Some(number) = generation.filter(|_| generations.len() > 1) {
        say!("generation {number}:")?;
    }
    for job in jobs {
        let c = &job.counters;
        say!(
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
        )?;
        if let Some(error) = &job.error {
            say!("    error: {error}")?;
        }
    }
    for (job, depth, parked) in queues {
        say!(
            "queue of job {job}: {} pending, {} leased, {} done, {} parked",
            depth.pending,
            depth.leased,
            depth.done,
            depth.parked
        )?;
        for item in parked {
            say!("  parked {}: {}", item.path, item.reason)?;
        }
    }
    if !workers.is_empty() {
        say!("live workers on collection {:?}:", settings.collection)?;
        for worker in workers {
            say!(
                "  {} (host {}, pid {}): {} items done, last heartbeat {:.0}s ago, started {}",
                worker.id,
                worker.host,
                worker.pid,
                worker.items_done,
                worker.silent_seconds,
                worker.started_at
            )?;
        }
    }
    if !failed.is_empty() {
        say!("failed files in collection {:?}:", settings.collection)?;
        for file in failed {
            say!("  {} (tries: {}): {}", file.path, file.retry_count, file.error.as_deref().unwrap_or_default())?;
        }
    }
    match health {
        Ok(health) => health_lines("sync health", health)?,
        Err(error) => say!("sync health: unavailable ({error})")?,
    }
    Ok(())
}
