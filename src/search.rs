//! # Search
//!
//! In: a query text, the model, and a [`VectorIndex`]. Out: the top [`Hit`]s by cosine
//! similarity, and their rendering (score, path, where in the file, chunk index, snippet).

use anyhow::Result;

use crate::embed::Embedder;
use crate::extract::Origin;
use crate::store::{Hit, VectorIndex};

/// Embeds `query` and returns the `limit` nearest chunks.
pub async fn search(index: &dyn VectorIndex, embedder: &mut Embedder, query: &str, limit: usize) -> Result<Vec<Hit>> {
    let vector = embedder.embed_one(query)?;
    index.search(vector, limit).await
}

/// Where in its file a chunk is, as a reader cites it: `p.12` (`pp.12-13` across pages),
/// `slide 3`, `sheet Budget`, then `› heading` when it has one; empty when it has none.
pub fn place(origin: &Origin) -> String {
    let mut parts = Vec::new();
    match (origin.page, origin.page_end) {
        (Some(page), Some(end)) if end > page => parts.push(format!("pp.{page}-{end}")),
        (Some(page), _) => parts.push(format!("p.{page}")),
        _ => {}
    }
    if let Some(slide) = origin.slide {
        parts.push(format!("slide {slide}"));
    }
    if let Some(sheet) = &origin.sheet {
        parts.push(format!("sheet {sheet}"));
    }
    if let Some(heading) = &origin.heading {
        parts.push(format!("› {}", snippet(heading, 60)));
    }
    parts.join(" ")
}

/// The first `max_chars` characters of `text` on one line.
pub fn snippet(text: &str, max_chars: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max_chars {
        return flat;
    }
    let cut: String = flat.chars().take(max_chars).collect();
    format!("{}…", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_one_line_and_bounded() {
        assert_eq!(snippet("a\n\nb   c", 10), "a b c");
        assert_eq!(snippet("abcdef ghij", 6), "abcdef…");
    }

    #[test]
    fn places_read_as_citations() {
        let at = |origin: Origin| place(&origin);
        assert_eq!(at(Origin::default()), "");
        assert_eq!(at(Origin { page: Some(12), page_end: Some(12), ..Origin::default() }), "p.12");
        assert_eq!(at(Origin { page: Some(12), page_end: Some(13), ..Origin::default() }), "pp.12-13");
        assert_eq!(at(Origin { slide: Some(3), title: Some("Deck".into()), ..Origin::default() }), "slide 3");
        assert_eq!(
            at(Origin { sheet: Some("Budget".into()), heading: Some("Rent".into()), ..Origin::default() }),
            "sheet Budget › Rent"
        );
    }
}
