//! # Search
//!
//! In: a [`SearchRequest`] (query text, mode, filters), the model when the mode needs it,
//! and a [`VectorIndex`]. Out: [`SearchResults`]: the top [`Hit`]s by cosine similarity, by
//! BM25, or both fused by reciprocal rank, with a note when the collection cannot serve the
//! mode asked for; and their rendering (where in the file, a snippet).
//!
//! Hybrid search asks the store for both rankings and their fusion in one query (Qdrant's
//! prefetch and `Fusion::Rrf`), so filters apply inside the store, on both sides. A
//! collection whose points have no sparse vectors yet is searched dense only, and says so.

use anyhow::{bail, Result};
use async_trait::async_trait;

use crate::embed::Embedder;
use crate::extract::Origin;
use crate::model::{self, ModelInfo};
use crate::settings::Settings;
use crate::sparse::{Analyzer, ANALYZER_VERSION};
use crate::store::{Hit, PointFilter, Query, SearchMode, VectorIndex};

/// The hits one search may ask for (`-k`).
pub const LIMITS: std::ops::RangeInclusive<usize> = 1..=1000;

/// What to search for.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    pub query: String,
    /// Hits to return, within [`LIMITS`].
    pub limit: usize,
    pub mode: SearchMode,
    pub filter: PointFilter,
    /// Also rank every hit on each side alone, for [`RankedHit::dense_rank`] and
    /// [`RankedHit::sparse_rank`].
    pub with_ranks: bool,
}

/// A hit, and where each side alone ranked it (1-based, among [`candidates`] points) when asked.
#[derive(Debug, Clone)]
pub struct RankedHit {
    pub hit: Hit,
    pub dense_rank: Option<usize>,
    pub sparse_rank: Option<usize>,
}

/// The answer to a [`SearchRequest`].
#[derive(Debug, Clone)]
pub struct SearchResults {
    /// The mode the hits were ranked by: the one asked for, or dense when the collection
    /// cannot serve it.
    pub mode: SearchMode,
    /// Why the mode differs from the one asked for, or why there are no sparse hits.
    pub note: Option<String>,
    pub hits: Vec<RankedHit>,
    /// Whether the hits carry each side's rank.
    pub with_ranks: bool,
}

/// Why a collection cannot be searched by its sparse vectors: `None` when every point has
/// this build's.
pub async fn sparse_gap(index: &dyn VectorIndex) -> Result<Option<String>> {
    if !index.has_sparse_vectors().await? {
        return Ok(Some(format!(
            "collection {:?} has no sparse vectors yet; run `ingest migrate` to add them from the parquet copy",
            index.collection()
        )));
    }
    let lacking = index.count_without_analyzer(ANALYZER_VERSION).await?;
    if lacking > 0 {
        return Ok(Some(format!(
            "{lacking} of {} points of collection {:?} have no sparse vector of this version yet; run `ingest migrate` to add them from the parquet copy",
            index.count(None).await?,
            index.collection()
        )));
    }
    Ok(None)
}

/// The text `--path-prefix DIR` matches at the start of a point's path: `DIR` made absolute,
/// with a trailing `/` when it is a directory, so `/docs/a` does not take in `/docs/ab`.
pub fn path_prefix(dir: &std::path::Path) -> Result<String> {
    let absolute = std::path::absolute(dir)
        .map_err(|e| anyhow::anyhow!("--path-prefix {}: {e}", dir.display()))?
        .to_string_lossy()
        .into_owned();
    Ok(if dir.is_dir() && !absolute.ends_with('/') { format!("{absolute}/") } else { absolute })
}

/// The model to embed the query with: the one that built the collection (`built_by`). A
/// collection whose model is unknown (an empty one) takes the model given (or the default).
pub fn query_model(settings: &Settings, built_by: Option<String>) -> Result<ModelInfo> {
    let given = ModelInfo::load(settings.model_dir.as_deref());
    let Some(built_by) = built_by else {
        return given;
    };
    let given = match given {
        Ok(model) if model.id == built_by => return Ok(model),
        Ok(model) => Some(model),
        Err(_) if settings.model_dir.is_some() => return given,
        Err(_) => None,
    };
    if settings.model_dir.is_none() {
        if let Some(model) = model::installed_with_id(&built_by)? {
            return Ok(model);
        }
    }
    let collection = &settings.collection;
    // Without --model-dir, the default model was only a guess: say what is missing.
    match given.filter(|_| settings.model_dir.is_some()) {
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

/// How many points each side ranks before fusion: enough that a point ranked well by one
/// side alone still reaches the fused top `limit`.
pub fn candidates(limit: usize) -> usize {
    (limit * 5).max(50)
}

/// Where a search's query vector comes from: a model loaded by this process, or one shared
/// by the requests of a service.
#[async_trait]
pub trait QueryModel: Send {
    /// The query's dense vector, with the model's query prefix.
    async fn embed_query(&mut self, query: &str) -> Result<Vec<f32>>;
}

#[async_trait]
impl QueryModel for Embedder {
    async fn embed_query(&mut self, query: &str) -> Result<Vec<f32>> {
        Embedder::embed_query(self, query)
    }
}

/// Runs `request` on `index`. `model` embeds the query for the dense side; a sparse search
/// needs none.
pub async fn search(
    index: &dyn VectorIndex,
    model: Option<&mut dyn QueryModel>,
    request: &SearchRequest,
) -> Result<SearchResults> {
    let gap = match request.mode {
        SearchMode::Dense => None,
        SearchMode::Hybrid | SearchMode::Sparse => sparse_gap(index).await?,
    };
    search_knowing_gap(index, model, request, gap).await
}

/// [`search`], told already what [`sparse_gap`] says of `index`.
pub async fn search_knowing_gap(
    index: &dyn VectorIndex,
    model: Option<&mut dyn QueryModel>,
    request: &SearchRequest,
    sparse_gap: Option<String>,
) -> Result<SearchResults> {
    let mut mode = request.mode;
    let mut note = None;
    if mode != SearchMode::Dense {
        if let Some(gap) = sparse_gap {
            if mode == SearchMode::Sparse {
                bail!("{gap}; until then, search with --mode dense");
            }
            (mode, note) = (SearchMode::Dense, Some(format!("{gap}; searching dense vectors only")));
        }
    }
    let sparse = Analyzer::english().query(&request.query);
    if sparse.is_empty() && mode != SearchMode::Dense {
        let reason = "the query has no terms for BM25 (only stop words or punctuation)";
        if mode == SearchMode::Sparse {
            return Ok(SearchResults {
                mode,
                note: Some(reason.to_string()),
                hits: Vec::new(),
                with_ranks: request.with_ranks,
            });
        }
        (mode, note) = (SearchMode::Dense, Some(format!("{reason}; searching dense vectors only")));
    }
    let dense = match (mode, model) {
        (SearchMode::Sparse, _) => None,
        (_, Some(model)) => Some(model.embed_query(&request.query).await?),
        (_, None) => bail!("a {} search needs the model; give --model-dir", mode.as_str()),
    };
    let query = |dense: Option<Vec<f32>>, sparse, limit| Query {
        dense,
        sparse,
        limit,
        candidates: candidates(request.limit),
        filter: request.filter.clone(),
    };
    let (dense_side, sparse_side) = match mode {
        SearchMode::Hybrid => (dense.clone(), Some(sparse.clone())),
        SearchMode::Dense => (dense.clone(), None),
        SearchMode::Sparse => (None, Some(sparse.clone())),
    };
    let hits = index.query(query(dense_side, sparse_side, request.limit)).await?;
    // Each side alone, over the candidates the fusion drew from, to show where it ranked a hit.
    let (dense_ranking, sparse_ranking) = if request.with_ranks {
        let limit = candidates(request.limit);
        let dense_ranking = match dense {
            Some(vector) => Some(index.query(query(Some(vector), None, limit)).await?),
            None => None,
        };
        let sparse_ranking = match mode {
            SearchMode::Dense => None,
            _ => Some(index.query(query(None, Some(sparse), limit)).await?),
        };
        (dense_ranking, sparse_ranking)
    } else {
        (None, None)
    };
    let rank_in = |ranking: &Option<Vec<Hit>>, hit: &Hit| {
        ranking.as_ref().and_then(|r| r.iter().position(|h| h.point.id == hit.point.id).map(|p| p + 1))
    };
    let hits = hits
        .into_iter()
        .map(|hit| RankedHit {
            dense_rank: rank_in(&dense_ranking, &hit),
            sparse_rank: rank_in(&sparse_ranking, &hit),
            hit,
        })
        .collect();
    Ok(SearchResults { mode, note, hits, with_ranks: request.with_ranks })
}

/// A hit as `--json` and the search service give it: score, path, chunk index, document
/// id, model and content, its `place` as a reader cites it, the origin fields it has (page,
/// page_end, sheet, slide, heading, title), and with `with_ranks` where each side alone
/// ranked it.
pub fn hit_json(ranked: &RankedHit, with_ranks: bool) -> serde_json::Value {
    let point = &ranked.hit.point;
    let mut row = serde_json::json!({
        "score": ranked.hit.score, "path": point.payload.path, "chunk_index": point.payload.chunk_index,
        "doc_id": point.payload.doc_id, "model": point.payload.model, "content": point.payload.content,
        "place": place(&point.payload.origin),
    });
    if let (Some(row), true) = (row.as_object_mut(), with_ranks) {
        row.insert("dense_rank".into(), ranked.dense_rank.into());
        row.insert("sparse_rank".into(), ranked.sparse_rank.into());
    }
    if let (Some(row), Ok(serde_json::Value::Object(origin))) =
        (row.as_object_mut(), serde_json::to_value(&point.payload.origin))
    {
        row.extend(origin);
    }
    row
}

/// Where in its file a chunk is, as a reader cites it: `p.12` (`pp.12-13` across pages),
/// `slide 3`, `sheet Budget`, then `› heading` when it has one, and `(OCR)` when OCR read
/// its text; empty when it has none.
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
    if origin.ocr {
        parts.push("(OCR)".to_string());
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
        assert_eq!(at(Origin { page: Some(2), page_end: Some(2), ocr: true, ..Origin::default() }), "p.2 (OCR)");
        assert_eq!(at(Origin { slide: Some(3), title: Some("Deck".into()), ..Origin::default() }), "slide 3");
        assert_eq!(
            at(Origin { sheet: Some("Budget".into()), heading: Some("Rent".into()), ..Origin::default() }),
            "sheet Budget › Rent"
        );
    }
}
