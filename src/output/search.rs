//! # Search results
//!
//! The [`SearchResults`] of `ingest search` → two lines each (score, path, where in the
//! file, chunk index; then a snippet), or, with `--json`, one object per hit with its payload
//! and origin (and, with `--ranks`, where each side alone ranked it). A note on the mode (a
//! collection without sparse vectors yet, searched dense only) goes to stderr, once.

use anyhow::Result;

use super::print_json;
use crate::search::SearchResults;
use crate::settings::Settings;

/// Prints a search's hits, best first.
pub fn search_hits(settings: &Settings, results: &SearchResults) -> Result<()> {
    if let Some(note) = &results.note {
        eprintln!("ingest: {note}");
    }
    if settings.json {
        let rows: Vec<_> =
            results.hits.iter().map(|ranked| crate::search::hit_json(ranked, results.with_ranks)).collect();
        print_json(&rows)?;
    } else {
        for hit in results.hits.iter().map(|ranked| &ranked.hit) {
            let place = crate::search::place(&hit.point.payload.origin);
            say!(
                "{:.3}  {}{}{}  #{}\n       {}",
                hit.score,
                hit.point.payload.path,
                if place.is_empty() { "" } else { " " },
                place,
                hit.point.payload.chunk_index,
                crate::search::snippet(&hit.point.payload.content, 160)
            )?;
        }
    }
    Ok(())
}
