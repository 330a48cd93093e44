//! # Embedding cache
//!
//! In: chunk content hashes (sha256 of the chunk text) and the model id (name and model
//! file hash). Out: the vectors that model already made for those chunks, and a place to
//! keep new ones. Rows live in the catalog's `embedding_cache` table, so the cache follows
//! the catalog (embedded or PostgreSQL). A vector depends only on the text and the model,
//! so a hit is exactly what the model would return again.

use std::collections::HashMap;

use anyhow::Result;

use crate::catalog::Catalog;

/// The cache as the embed stage (a plain thread) uses it.
pub struct EmbeddingCache {
    catalog: Catalog,
    model: String,
    runtime: tokio::runtime::Handle,
}

impl EmbeddingCache {
    pub fn new(catalog: Catalog, model: &str, runtime: tokio::runtime::Handle) -> Self {
        Self { catalog, model: model.to_string(), runtime }
    }

    /// The known vectors among `hashes`.
    pub fn lookup(&self, hashes: &[&str]) -> Result<HashMap<String, Vec<f32>>> {
        self.runtime.block_on(self.catalog.cached_vectors(&self.model, hashes))
    }

    /// Keeps freshly embedded vectors.
    pub fn store(&self, vectors: &[(&str, &[f32])]) -> Result<()> {
        self.runtime.block_on(self.catalog.cache_vectors(&self.model, vectors))
    }
}

/// A vector as little-endian `f32` bytes.
pub fn encode(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The inverse of [`encode`].
pub fn decode(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn vectors_round_trip_exactly() {
        let vector = vec![0.1f32, -2.5, f32::MIN_POSITIVE, 3.0e7];
        assert_eq!(super::decode(&super::encode(&vector)), vector);
    }
}
