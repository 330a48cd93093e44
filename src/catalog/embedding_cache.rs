//! # Embedding cache rows
//!
//! In: a model id and chunk content hashes, or freshly embedded vectors keyed by them. Out:
//! the `embedding_cache` rows holding those vectors as little-endian `f32` bytes, and the
//! vectors read back from them.

use std::collections::HashMap;

use anyhow::{Context, Result};
use sqlx::Row;

use super::{now, Catalog};

impl Catalog {
    /// The cached vectors of `model` among these chunk content hashes.
    pub async fn cached_vectors(&self, model: &str, hashes: &[&str]) -> Result<HashMap<String, Vec<f32>>> {
        let mut found = HashMap::new();
        for group in hashes.chunks(500) {
            let placeholders: Vec<String> = (0..group.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT content_hash, vector FROM embedding_cache WHERE model = $1 AND content_hash IN ({})",
                placeholders.join(", ")
            );
            let rows = self
                .retrying(|| async {
                    let mut query = sqlx::query(&sql).bind(model);
                    for hash in group {
                        query = query.bind(*hash);
                    }
                    query.fetch_all(&self.pool).await.context("reading the embedding cache")
                })
                .await?;
            for row in rows {
                let bytes: Vec<u8> = row.try_get("vector")?;
                found.insert(row.try_get("content_hash")?, decode(&bytes));
            }
        }
        Ok(found)
    }

    /// Adds vectors of `model` to the cache; existing entries are kept.
    pub async fn cache_vectors(&self, model: &str, vectors: &[(&str, &[f32])]) -> Result<()> {
        let at = now();
        self.retrying(|| async {
            let mut tx = self.pool.begin().await.context("starting a catalog transaction")?;
            for (hash, vector) in vectors {
                sqlx::query(
                    "INSERT INTO embedding_cache (model, content_hash, vector, created_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (model, content_hash) DO NOTHING",
                )
                .bind(model)
                .bind(*hash)
                .bind(encode(vector))
                .bind(&at)
                .execute(&mut *tx)
                .await
                .context("writing the embedding cache")?;
            }
            tx.commit().await.context("committing the embedding cache")?;
            Ok(())
        })
        .await
    }
}

/// A vector as little-endian `f32` bytes.
fn encode(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The inverse of [`encode`].
fn decode(bytes: &[u8]) -> Vec<f32> {
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
