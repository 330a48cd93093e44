//! # Rollback and gc
//!
//! What `ingest rollback` did ([`RolledBack`]) → one line naming the generation served now
//! and the one it replaced; what `ingest gc` deleted, or would ([`Collected`]) → a line per
//! generation. With `--json`, the same as JSON.

use anyhow::Result;

use super::print_json;
use crate::generations::{Collected, RolledBack};
use crate::settings::Settings;

/// Prints what `ingest rollback` did.
pub fn rolled_back(settings: &Settings, rolled_back: &RolledBack) -> Result<()> {
    if settings.json {
        return print_json(rolled_back);
    }
    if !settings.quiet {
        let RolledBack { collection, live, model, was_live } = rolled_back;
        let replaced = was_live.map(|n| format!(" in place of generation {n}")).unwrap_or_default();
        println!("collection {collection:?} serves generation {live} ({model}) again{replaced}");
    }
    Ok(())
}

/// Prints what `ingest gc` deleted, or with `dry_run` would delete.
pub fn collected(settings: &Settings, collected: &[Collected], dry_run: bool) -> Result<()> {
    if settings.json {
        return print_json(&serde_json::json!({ "dry_run": dry_run, "generations": collected }));
    }
    if settings.quiet {
        return Ok(());
    }
    let verb = if dry_run { "would delete" } else { "deleted" };
    if collected.is_empty() {
        println!("collection {:?} has no previous generation to delete", settings.collection);
    }
    for Collected { number, model, store_collection, files, points } in collected {
        println!(
            "{verb} generation {number} ({model}): collection {store_collection:?}, {files} files, {points} points"
        );
    }
    Ok(())
}
