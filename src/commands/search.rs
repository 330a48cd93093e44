//! # `ingest search`
//!
//! In: [`Settings`] and a [`SearchRequest`] (query text, mode, filters, how many hits). Out:
//! the best chunks of the live generation (or of `--generation N`) for it, as
//! [`SearchResults`], best first. The model is loaded only when the mode ranks by dense
//! vectors: a sparse search needs none. A query is embedded by the model that built the
//! generation, as the catalog records it: without `--model-dir`, the installed model of that
//! id; a model given that is another is refused. A catalog that knows no generation of the
//! collection (a Qdrant collection searched without its PostgreSQL catalog) leaves the
//! collection's name to the store, and the model to the `model` its points name. On a Qdrant
//! server the collection's name is checked first, and set right when it names another
//! generation than the live one ([`crate::generations::name::check_alias`]).

use anyhow::{bail, Result};

use crate::embed::Embedder;
use crate::search::{self, SearchRequest, SearchResults};
use crate::settings::{in_range, Settings};
use crate::store::SearchMode;
use crate::workspace::Workspace;

/// Runs `request`; an error when the collection does not exist yet.
pub async fn search(settings: &Settings, request: &SearchRequest) -> Result<SearchResults> {
    in_range("limit (-k)", request.limit, search::LIMITS)?;
    let workspace = Workspace::open(settings).await?;
    let alias = crate::generations::name::check_alias(&workspace).await?;
    let index = workspace.index();
    if !index.exists().await? {
        bail!(
            "collection {:?} does not exist in {}; run `ingest DIR` first",
            settings.collection,
            settings.data_dir.display()
        );
    }
    let mut embedder = match request.mode {
        SearchMode::Sparse => None,
        SearchMode::Hybrid | SearchMode::Dense => {
            let built_by = match workspace.generation() {
                Some(generation) => Some(generation.recipe.model_id.clone()),
                None => index.scroll(None, 1, false).await?.0.into_iter().next().map(|p| p.payload.model),
            };
            Some(Embedder::new(crate::search::query_model(settings, built_by)?, 1)?)
        }
    };
    let model = embedder.as_mut().map(|embedder| embedder as &mut dyn crate::search::QueryModel);
    let mut results = crate::search::search(index.as_ref(), model, request).await?;
    if let Some(alias) = alias {
        results.note = Some(results.note.map_or(alias.clone(), |note| format!("{note}; {alias}")));
    }
    Ok(results)
}
