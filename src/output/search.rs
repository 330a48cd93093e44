//! # Search results
//!
//! The [`Hit`]s of `ingest search` → two lines each (score, path, where in the file, chunk
//! index; then a snippet), or, with `--json`, one object per hit with its payload and origin.

use anyhow::Result;

use super::print_json;
use crate::cli::Settings;
use crate::store::Hit;

/// Prints a search's hits, best first.
pub fn search_hits(settings: &Settings, hits: &[Hit]) -> Result<()> {
    if settings.json {
        let rows: Vec<_> = hits
            .iter()
            .map(|h| {
                let mut row = serde_json::json!({
                    "score": h.score, "path": h.point.payload.path, "chunk_index": h.point.payload.chunk_index,
                    "doc_id": h.point.payload.doc_id, "content": h.point.payload.content,
                });
                // The origin fields the chunk has: page, page_end, sheet, slide, heading, title.
                if let (Some(row), Ok(serde_json::Value::Object(origin))) =
                    (row.as_object_mut(), serde_json::to_value(&h.point.payload.origin))
                {
                    row.extend(origin);
                }
                row
            })
            .collect();
        print_json(&rows)?;
    } else {
        for hit in hits {
            let place = crate::search::place(&hit.point.payload.origin);
            println!(
                "{:.3}  {}{}{}  #{}\n       {}",
                hit.score,
                hit.point.payload.path,
                if place.is_empty() { "" } else { " " },
                place,
                hit.point.payload.chunk_index,
                crate::search::snippet(&hit.point.payload.content, 160)
            );
        }
    }
    Ok(())
}
