//! # Switch, rollback and gc
//!
//! What `ingest switch` found and did ([`Switched`]) → a line saying which generation is
//! served, and each file it lacks of the live one; what `ingest rollback` did
//! ([`RolledBack`]) → one line naming the generation served now
//! and the one it replaced; what `ingest gc` deleted, or would ([`Collected`]) → a line per
//! generation. With `--json`, the same as JSON.

use anyhow::Result;

use super::print_json;
use crate::generations::{Collected, RolledBack, Switched};
use crate::settings::Settings;

/// Prints what `ingest switch` found and did. The files the switched-to generation lacks
/// go to stderr with the outcome when they kept the switch from happening.
pub fn switched(settings: &Settings, switched: &Switched) -> Result<()> {
    if settings.json {
        return print_json(switched);
    }
    let Switched { collection, generation, model, switched, replaced, missing, moved } = switched;
    if let Some(moved) = moved.as_ref().filter(|_| !settings.quiet) {
        say!("{}", moved.summary())?;
    }
    if *switched {
        if !settings.quiet {
            let replaced = replaced.map(|n| format!(" in place of generation {n}")).unwrap_or_default();
            say!("collection {collection:?} serves generation {generation} ({model}){replaced}")?;
            if !missing.is_empty() {
                say!("  out of search now, as confirmed: generation {generation} {}", missing.summary())?;
            }
        }
        return Ok(());
    }
    eprintln!("not switched: generation {generation} {}", missing.summary());
    for line in super::run::listing(&missing.by_file(), "  lacks ", "  ", " files") {
        eprintln!("{line}");
    }
    eprintln!(
        "index them with this model (`ingest DIR --model-dir …`), or switch without them: ingest switch --generation \
         {generation} --confirm"
    );
    Ok(())
}

/// Prints what `ingest rollback` did.
pub fn rolled_back(settings: &Settings, rolled_back: &RolledBack) -> Result<()> {
    if settings.json {
        return print_json(rolled_back);
    }
    if !settings.quiet {
        let RolledBack { collection, live, model, was_live } = rolled_back;
        let replaced = was_live.map(|n| format!(" in place of generation {n}")).unwrap_or_default();
        say!("collection {collection:?} serves generation {live} ({model}) again{replaced}")?;
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
        say!("collection {:?} has no previous generation to delete", settings.collection)?;
    }
    for Collected { number, model, store_collection, files, points } in collected {
        say!("{verb} generation {number} ({model}): collection {store_collection:?}, {files} files, {points} points")?;
    }
    Ok(())
}
