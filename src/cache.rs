//! # Embedding cache
//!
//! In: chunk content hashes (sha256 of the chunk text) and the model id (name and model
//! file hash). Out: the vectors that model already made for those chunks, and a place to
//! keep new ones. Rows live in the catalog's `embedding_cache` table, so the cache follows
//! the catalog (embedded or PostgreSQL). A vector depends only on the text and the model,
//! so a hit is exactly what the model would return again.
//!
//! The rows and their vector codec belong to the catalog; this is the embed stage's
//! blocking handle on them.

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
