//! # Vector store
//!
//! In: [`Point`]s (deterministic id, dense vector, BM25 sparse vector, payload) and
//! requests by `doc_id`. Out: acknowledged writes, [`Hit`]s of a dense, sparse or fused
//! [`Query`], and scrolls of what is stored.
//!
//! Every point carries two vectors: the model's dense vector, unnamed (Qdrant's default
//! vector, as collections made before sparse vectors had it), and a sparse vector named
//! [`SPARSE_VECTOR`] whose weights are BM25 term frequencies; the collection declares it
//! with Qdrant's `Idf` modifier, so the inverse document frequency comes from the
//! collection itself at query time.
//!
//! [`VectorIndex`] is the narrow interface the pipeline talks to, bound to one collection.
//! [`embedded::EmbeddedIndex`] runs Qdrant's own engine in-process (the default, no
//! server); [`qdrant::QdrantIndex`] talks to a Qdrant server over gRPC. Nothing outside
//! this module knows which backend it talks to.

pub mod embedded;
pub mod qdrant;

use anyhow::Result;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::sparse::SparseVector;

/// The payload stored with every point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointPayload {
    pub path: String,
    pub doc_id: String,
    pub chunk_index: u32,
    pub content: String,
    pub content_hash: String,
    pub job_id: String,
    pub model: String,
    pub created_at: String,
    /// The analyzer that made the point's sparse vector ([`crate::sparse::ANALYZER_VERSION`]);
    /// absent on points written before sparse vectors, which a backfill gives them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analyzer: Option<String>,
    /// The file's extension, lowercase and without its dot ([`extension_of`]), for `--ext`;
    /// absent when the file has none, and on points written before it was recorded, until
    /// a backfill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext: Option<String>,
    /// Where the chunk came from: `page`, `page_end`, `sheet`, `slide`, `heading` and
    /// `title` as top-level payload fields, each present only when set.
    #[serde(flatten)]
    pub origin: crate::extract::Origin,
}

/// One chunk's point.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub id: Uuid,
    pub vector: Vec<f32>,
    /// The chunk's BM25 term weights; empty when the chunk has no terms (and, read back,
    /// unless vectors are asked for).
    pub sparse: SparseVector,
    pub payload: PointPayload,
}

/// A path's extension as the payload's `ext` holds it: lowercase, without the dot.
pub fn extension_of(path: &str) -> Option<String> {
    std::path::Path::new(path).extension().map(|ext| ext.to_string_lossy().to_lowercase())
}

/// The name of the sparse vector beside the unnamed dense one.
pub const SPARSE_VECTOR: &str = "bm25";

/// Which vectors a [`Query`] ranks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Both, fused by reciprocal rank.
    #[default]
    Hybrid,
    /// The model's vectors only.
    Dense,
    /// BM25 term weights only.
    Sparse,
}

impl SearchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SearchMode::Hybrid => "hybrid",
            SearchMode::Dense => "dense",
            SearchMode::Sparse => "sparse",
        }
    }
}

/// Conditions on a point's payload, applied by the store while it ranks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PointFilter {
    /// Points whose `path` contains this text (a directory, given with its trailing `/`).
    pub path_contains: Option<String>,
    /// Points whose payload `key` equals `value` as a keyword, for every pair.
    pub equals: Vec<(String, String)>,
    /// Points whose `ext` is any of these (lowercase, without the dot); any point when empty.
    pub extensions: Vec<String>,
}

impl PointFilter {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A ranking request. With both vectors, each ranks `candidates` points and the two lists
/// are fused by reciprocal rank (Qdrant's prefetch and `Fusion::Rrf`); with one, points are
/// ranked by it alone.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub dense: Option<Vec<f32>>,
    pub sparse: Option<SparseVector>,
    pub limit: usize,
    /// How many points each side ranks before fusion.
    pub candidates: usize,
    pub filter: PointFilter,
}

/// A point as read back from the store; `vector` is empty unless asked for.
pub type StoredPoint = Point;

/// One search result.
#[derive(Debug, Clone)]
pub struct Hit {
    pub score: f32,
    pub point: StoredPoint,
}

/// A page of a scroll and the id to continue from.
pub type ScrollPage = (Vec<StoredPoint>, Option<Uuid>);

/// A vector collection, as the pipeline sees it.
#[async_trait]
pub trait VectorIndex: Send + Sync {
    /// The collection's name.
    fn collection(&self) -> &str;
    /// Creates the collection if it is missing (cosine distance, the [`SPARSE_VECTOR`] with
    /// the `Idf` modifier, keyword indexes on `doc_id`, `ext` and `analyzer`, an integer
    /// index on `chunk_index`), or checks that the existing one has `dim` dimensions and
    /// cosine distance, and declares the sparse vector and the indexes it lacks.
    async fn ensure_collection(&self, dim: usize) -> Result<()>;
    /// Writes points and returns once they are durable (Qdrant's `wait = true`).
    async fn upsert(&self, points: Vec<Point>) -> Result<()>;
    /// Deletes every point of these documents.
    async fn delete_documents(&self, doc_ids: &[String]) -> Result<()>;
    /// Deletes these points.
    async fn delete_points(&self, ids: &[Uuid]) -> Result<()>;
    /// Deletes the points of `doc_id` whose `chunk_index` is `keep` or more.
    async fn delete_tail(&self, doc_id: &str, keep: u32) -> Result<()>;
    /// The best points for `query`: nearest by cosine similarity, by BM25 score, or both fused.
    async fn query(&self, query: Query) -> Result<Vec<Hit>>;
    /// Whether the collection declares the [`SPARSE_VECTOR`]; collections made before
    /// sparse vectors do not until [`VectorIndex::ensure_collection`] adds it.
    async fn has_sparse_vectors(&self) -> Result<bool>;
    /// Exact number of points whose sparse vector was not made by `analyzer` (payload
    /// `analyzer`): the points a backfill must rewrite.
    async fn count_without_analyzer(&self, analyzer: &str) -> Result<u64>;
    /// Exact number of points, of one document or of the whole collection.
    async fn count(&self, doc_id: Option<&str>) -> Result<u64>;
    /// Exact number of points of these documents together.
    async fn count_documents(&self, doc_ids: &[String]) -> Result<u64>;
    /// Exact number of points of these documents whose `chunk_index` is `from` or more: for
    /// one document, the points [`VectorIndex::delete_tail`] with `keep = from` would delete.
    async fn count_tail(&self, doc_ids: &[String], from: u32) -> Result<u64>;
    /// The points with these ids that the collection holds, with their vectors, in the order
    /// asked; absent ids are left out.
    async fn retrieve(&self, ids: &[Uuid]) -> Result<Vec<StoredPoint>>;
    /// A page of points in id order, starting at `offset`.
    async fn scroll(&self, offset: Option<Uuid>, limit: usize, with_vectors: bool) -> Result<ScrollPage>;
    /// Whether the collection exists.
    async fn exists(&self) -> Result<bool>;
    /// Removes the collection and all its points.
    async fn drop_collection(&self) -> Result<()>;
    /// Makes `alias` name this collection for every client of the store at once: on a Qdrant
    /// server, one `update_aliases` call that drops the alias's old target and sets the new
    /// one together. The embedded engine has no aliases and does nothing: there, the
    /// catalog's pointer to the live generation is the switch.
    async fn serve_as(&self, alias: &str) -> Result<()>;
    /// When this collection's name is an alias, the collection it names; `None` when it is a
    /// collection's own name or names nothing (and always in the embedded engine).
    async fn aliased_to(&self) -> Result<Option<String>>;
    /// Called once at the end of a job: build indexes, flush.
    async fn finish(&self) -> Result<()>;
    /// Called every moment by a long-lived reader (the search service): an embedded
    /// collection opened by [`open_reader`] lets go of its files to a process that asks for
    /// them, and takes them back when that process has ended. A server needs nothing.
    async fn let_go_if_asked(&self) -> Result<()> {
        Ok(())
    }
    /// How long a remote store has been unreachable, for the progress line; `None` for a
    /// store that cannot be.
    fn outage_clock(&self) -> Option<std::sync::Arc<crate::retry::OutageClock>> {
        None
    }
}

/// Upserts `points` in requests of `batch_size`, `parallelism` of them in flight, calling
/// `acknowledged` with the size of each batch the store has acknowledged. Each batch is
/// moved out of `points` as its request starts and dropped when it is acknowledged, so the
/// points are never held twice.
pub async fn upsert_in_batches(
    index: &dyn VectorIndex,
    points: Vec<Point>,
    batch_size: usize,
    parallelism: usize,
    acknowledged: impl Fn(usize),
) -> Result<()> {
    use futures::stream::{self, StreamExt, TryStreamExt};
    let acknowledged = &acknowledged;
    let mut remaining = points.into_iter();
    let batches = std::iter::from_fn(move || {
        let batch: Vec<Point> = remaining.by_ref().take(batch_size.max(1)).collect();
        (!batch.is_empty()).then_some(batch)
    });
    stream::iter(batches.map(|batch| async move {
        let size = batch.len();
        index.upsert(batch).await?;
        acknowledged(size);
        anyhow::Ok(())
    }))
    .buffer_unordered(parallelism.max(1))
    .try_collect::<Vec<()>>()
    .await?;
    Ok(())
}

/// Most documents named in one delete-by-filter request.
pub const DOCUMENTS_PER_DELETE: usize = 500;

/// Deletes every point of these documents, [`DOCUMENTS_PER_DELETE`] documents a request.
pub async fn delete_documents_in_batches(index: &dyn VectorIndex, doc_ids: &[String]) -> Result<()> {
    for batch in doc_ids.chunks(DOCUMENTS_PER_DELETE) {
        index.delete_documents(batch).await?;
    }
    Ok(())
}

/// Every point of the collection, by id, read in pages.
pub async fn all_points(
    index: &dyn VectorIndex,
    with_vectors: bool,
) -> Result<std::collections::BTreeMap<Uuid, Point>> {
    let mut points = std::collections::BTreeMap::new();
    for_each_page(index, with_vectors, async |page| {
        points.extend(page.into_iter().map(|p| (p.id, p)));
        Ok(())
    })
    .await?;
    Ok(points)
}

/// Reads the collection a page of 1000 points at a time, in id order, handing each page to
/// `each`; nothing when the collection does not exist.
pub async fn for_each_page(
    index: &dyn VectorIndex,
    with_vectors: bool,
    mut each: impl AsyncFnMut(Vec<Point>) -> Result<()>,
) -> Result<()> {
    if !index.exists().await? {
        return Ok(());
    }
    let mut offset = None;
    loop {
        let (page, next) = index.scroll(offset, 1000, with_vectors).await?;
        each(page).await?;
        match next {
            Some(next) => offset = Some(next),
            None => return Ok(()),
        }
    }
}

/// The first difference between two collections, compared point for point (ids, dense and
/// sparse vectors, payloads) a page at a time in id order, or `None` when they hold the same
/// points; memory holds one page of each.
pub async fn first_difference(a: &dyn VectorIndex, b: &dyn VectorIndex) -> Result<Option<String>> {
    const PAGE: usize = 1000;
    let (mut offset, mut compared) = (None, 0u64);
    loop {
        let ((left, next_left), (right, next_right)) =
            (a.scroll(offset, PAGE, true).await?, b.scroll(offset, PAGE, true).await?);
        for pair in left.iter().zip(&right) {
            if pair.0 != pair.1 {
                let (l, r) = pair;
                let what = if l.id != r.id { "a point's id" } else { "the vectors or payload of a point" };
                return Ok(Some(format!(
                    "{what} differs after {compared} equal points ({} in {:?}, {} in {:?})",
                    l.id,
                    a.collection(),
                    r.id,
                    b.collection()
                )));
            }
            compared += 1;
        }
        if left.len() != right.len() || next_left != next_right {
            return Ok(Some(format!(
                "{:?} and {:?} hold different numbers of points (they part after {compared} equal points)",
                a.collection(),
                b.collection()
            )));
        }
        match next_left {
            Some(next) => offset = Some(next),
            None => return Ok(None),
        }
    }
}

/// How a collection created on a Qdrant server is spread over a cluster; `None` leaves a
/// setting to the server's default (one shard, one copy, on a single node).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CollectionLayout {
    pub shards: Option<u32>,
    pub replication_factor: Option<u32>,
    /// Replicas that must acknowledge a write before the server answers it (`wait = true`).
    pub write_consistency_factor: Option<u32>,
}

impl CollectionLayout {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Where the vectors live. `Debug` shows the URL redacted and never the API key.
#[derive(Clone, Copy)]
pub struct StoreLocation<'a> {
    /// The data directory, home of the embedded engine.
    pub data_dir: &'a std::path::Path,
    /// A Qdrant server's gRPC address; `None` for the embedded engine.
    pub qdrant_url: Option<&'a str>,
    pub api_key: Option<&'a str>,
    /// For a collection created on the server.
    pub layout: CollectionLayout,
    /// A collection whose layout a collection created here copies, `layout` over it: the
    /// live generation's, for a generation built beside it, so that a model switch keeps the
    /// cluster's shards, replicas and storage settings without repeating their flags.
    pub like: Option<&'a str>,
}

impl std::fmt::Debug for StoreLocation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreLocation")
            .field("data_dir", &self.data_dir)
            .field("qdrant_url", &self.qdrant_url.map(crate::redact::redact_url))
            .field("api_key", &self.api_key.map(|_| "***"))
            .field("layout", &self.layout)
            .field("like", &self.like)
            .finish()
    }
}

impl StoreLocation<'_> {
    /// Whether the vectors can live here as asked: a cluster layout needs a Qdrant server.
    pub fn check(&self) -> Result<()> {
        if self.qdrant_url.is_none() && !self.layout.is_default() {
            anyhow::bail!(
                "--shards, --replication-factor and --write-consistency-factor lay a collection out over a Qdrant \
                 cluster; give --qdrant-url, or drop them for the embedded engine"
            );
        }
        Ok(())
    }
}

/// [`open`], for a long-lived process that only reads the collection: on the embedded
/// engine, which one process at a time may hold, it lets go of the collection to any process
/// that asks for it ([`VectorIndex::let_go_if_asked`]), reading a copy until that one ends.
pub async fn open_reader(
    location: StoreLocation<'_>,
    collection: &str,
    policy: crate::retry::RetryPolicy,
) -> Result<std::sync::Arc<dyn VectorIndex>> {
    match location.qdrant_url {
        Some(_) => open(location, collection, policy).await,
        None => Ok(std::sync::Arc::new(embedded::EmbeddedIndex::open_reader(location.data_dir, collection))),
    }
}

/// Opens `collection` on the configured backend: the Qdrant server at `qdrant_url`, or the
/// embedded engine under `data_dir`.
pub async fn open(
    location: StoreLocation<'_>,
    collection: &str,
    policy: crate::retry::RetryPolicy,
) -> Result<std::sync::Arc<dyn VectorIndex>> {
    location.check()?;
    Ok(match location.qdrant_url {
        Some(url) => std::sync::Arc::new(
            qdrant::QdrantIndex::connect(url, location.api_key, collection, policy)
                .await?
                .with_layout(location.layout, location.like),
        ),
        None => std::sync::Arc::new(embedded::EmbeddedIndex::open(location.data_dir, collection)),
    })
}
