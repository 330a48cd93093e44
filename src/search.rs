//! # Search
//!
//! In: a query text, the model, and a [`VectorIndex`]. Out: the top [`Hit`]s by cosine
//! similarity, and their one-line rendering (score, path, chunk index, snippet).

use anyhow::Result;

use crate::embed::Embedder;
use crate::store::{Hit, VectorIndex};

/// Embeds `query` and returns the `limit` nearest chunks.
pub async fn search(index: &dyn VectorIndex, embedder: &mut Embedder, query: &str, limit: usize) -> Result<Vec<Hit>> {
    let vector = embedder.embed_one(query)?;
    index.search(vector, limit).await
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
}
