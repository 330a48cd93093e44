//! # `ingest search`
//!
//! In: [`Settings`] and a [`SearchRequest`] (query text, mode, filters, how many hits). Out:
//! the collection's best chunks for it, as [`SearchResults`], best first. The model is
//! loaded only when the mode ranks by dense vectors: a sparse search needs none.

use anyhow::Result;

use crate::embed::Embedder;
use crate::model::ModelInfo;
use crate::search::{SearchRequest, SearchResults};
use crate::settings::Settings;
use crate::store::SearchMode;
use crate::workspace::open_store;

/// Runs `request`; an error when the collection does not exist yet.
pub async fn search(settings: &Settings, request: &SearchRequest) -> Result<SearchResults> {
    let mut embedder = match request.mode {
        SearchMode::Sparse => None,
        SearchMode::Hybrid | SearchMode::Dense => {
            Some(Embedder::new(ModelInfo::load(settings.model_dir.as_deref())?, 1)?)
        }
    };
    let index = open_store(settings).await?;
    if !index.exists().await? {
        anyhow::bail!(
            "collection {:?} does not exist in {}; run `ingest DIR` first",
            settings.collection,
            settings.data_dir.display()
        );
    }
    crate::search::search(index.as_ref(), embedder.as_mut(), request).await
}
