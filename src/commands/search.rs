//! # `ingest search`
//!
//! In: [`Settings`] and a [`SearchRequest`] (query text, mode, filters, how many hits). Out:
//! the collection's best chunks for it, as [`SearchResults`], best first. The model is
//! loaded only when the mode ranks by dense vectors: a sparse search needs none. A query is
//! embedded by the model that built the collection (the `model` its points name): without
//! `--model-dir`, the installed model of that id; a model given that is another is refused.

use anyhow::{bail, Result};

use crate::embed::Embedder;
use crate::model::{self, Installed, ModelInfo};
use crate::search::{SearchRequest, SearchResults};
use crate::settings::Settings;
use crate::store::{SearchMode, VectorIndex};
use crate::workspace::open_store;

/// Runs `request`; an error when the collection does not exist yet.
pub async fn search(settings: &Settings, request: &SearchRequest) -> Result<SearchResults> {
    let index = open_store(settings).await?;
    if !index.exists().await? {
        bail!(
            "collection {:?} does not exist in {}; run `ingest DIR` first",
            settings.collection,
            settings.data_dir.display()
        );
    }
    let mut embedder = match request.mode {
        SearchMode::Sparse => None,
        SearchMode::Hybrid | SearchMode::Dense => Some(Embedder::new(query_model(settings, index.as_ref()).await?, 1)?),
    };
    crate::search::search(index.as_ref(), embedder.as_mut(), request).await
}

/// The model to embed the query with: the one whose id the collection's points carry. An
/// empty collection takes the model given (or the default).
async fn query_model(settings: &Settings, index: &dyn VectorIndex) -> Result<ModelInfo> {
    let given = ModelInfo::load(settings.model_dir.as_deref());
    let (points, _) = index.scroll(None, 1, false).await?;
    let Some(built_by) = points.into_iter().next().map(|p| p.payload.model) else {
        return given;
    };
    let given = match given {
        Ok(model) if model.id == built_by => return Ok(model),
        Ok(model) => Some(model),
        Err(_) if settings.model_dir.is_some() => return given,
        Err(_) => None,
    };
    if settings.model_dir.is_none() {
        let installed = model::installed()?.into_iter().find_map(|entry| match entry {
            Installed::Model(model) if model.id == built_by => Some(*model),
            _ => None,
        });
        if let Some(model) = installed {
            return Ok(model);
        }
    }
    let collection = &settings.collection;
    match given {
        Some(model) => bail!(
            "collection {collection:?} was built by model {built_by}, but this search would embed the query with {}; \
             give --model-dir the directory of {built_by} (`ingest models` lists the installed ones)",
            model.id
        ),
        None => bail!(
            "collection {collection:?} was built by model {built_by}, which is not installed; give --model-dir its \
             directory, or search with --mode sparse, which needs no model"
        ),
    }
}
