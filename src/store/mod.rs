//! # Vector store
//!
//! In: [`Point`]s (deterministic id, vector, payload) and requests by `doc_id`.
//! Out: acknowledged writes, search [`Hit`]s, and scrolls of what is stored.
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
    pub payload: PointPayload,
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
    /// Creates the collection if it is missing (cosine distance, a keyword index on
    /// `doc_id`, an integer index on `chunk_index`), or checks that the existing one has
    /// `dim` dimensions and cosine distance.
    async fn ensure_collection(&self, dim: usize) -> Result<()>;
    /// Writes points and returns once they are durable (Qdrant's `wait = true`).
    async fn upsert(&self, points: Vec<Point>) -> Result<()>;
    /// Deletes every point of these documents.
    async fn delete_documents(&self, doc_ids: &[String]) -> Result<()>;
    /// Deletes these points.
    async fn delete_points(&self, ids: &[Uuid]) -> Result<()>;
    /// Deletes the points of `doc_id` whose `chunk_index` is `keep` or more.
    async fn delete_tail(&self, doc_id: &str, keep: u32) -> Result<()>;
    /// Nearest points to `vector` by cosine similarity.
    async fn search(&self, vector: Vec<f32>, limit: usize) -> Result<Vec<Hit>>;
    /// Exact number of points, of one document or of the whole collection.
    async fn count(&self, doc_id: Option<&str>) -> Result<u64>;
    /// Exact number of points of these documents together.
    async fn count_documents(&self, doc_ids: &[String]) -> Result<u64>;
    /// Exact number of points of `doc_id` whose `chunk_index` is `from` or more: the points
    /// [`VectorIndex::delete_tail`] with `keep = from` would delete.
    async fn count_tail(&self, doc_id: &str, from: u32) -> Result<u64>;
    /// A page of points in id order, starting at `offset`.
    async fn scroll(&self, offset: Option<Uuid>, limit: usize, with_vectors: bool) -> Result<ScrollPage>;
    /// Whether the collection exists.
    async fn exists(&self) -> Result<bool>;
    /// Removes the collection and all its points.
    async fn drop_collection(&self) -> Result<()>;
    /// Called once at the end of a job: build indexes, flush.
    async fn finish(&self) -> Result<()>;
    /// How long a remote store has been unreachable, for the progress line; `None` for a
    /// store that cannot be.
    fn outage_clock(&self) -> Option<std::sync::Arc<crate::retry::OutageClock>> {
        None
    }
}

/// Upserts `points` in requests of `batch_size`, `parallelism` of them in flight, calling
/// `acknowledged` with the size of each batch the store has acknowledged.
pub async fn upsert_in_batches(
    index: &dyn VectorIndex,
    points: &[Point],
    batch_size: usize,
    parallelism: usize,
    acknowledged: impl Fn(usize),
) -> Result<()> {
    use futures::stream::{self, StreamExt, TryStreamExt};
    let acknowledged = &acknowledged;
    stream::iter(points.chunks(batch_size.max(1)).map(|batch| async move {
        index.upsert(batch.to_vec()).await?;
        acknowledged(batch.len());
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
    if !index.exists().await? {
        return Ok(points);
    }
    let mut offset = None;
    loop {
        let (page, next) = index.scroll(offset, 1000, with_vectors).await?;
        points.extend(page.into_iter().map(|p| (p.id, p)));
        match next {
            Some(next) => offset = Some(next),
            None => return Ok(points),
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
}

impl std::fmt::Debug for StoreLocation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreLocation")
            .field("data_dir", &self.data_dir)
            .field("qdrant_url", &self.qdrant_url.map(crate::redact::redact_url))
            .field("api_key", &self.api_key.map(|_| "***"))
            .field("layout", &self.layout)
            .finish()
    }
}

/// Opens `collection` on the configured backend: the Qdrant server at `qdrant_url`, or the
/// embedded engine under `data_dir`.
pub async fn open(
    location: StoreLocation<'_>,
    collection: &str,
    policy: crate::retry::RetryPolicy,
) -> Result<std::sync::Arc<dyn VectorIndex>> {
    Ok(match location.qdrant_url {
        Some(url) => std::sync::Arc::new(
            qdrant::QdrantIndex::connect(url, location.api_key, collection, policy).await?.with_layout(location.layout),
        ),
        None if !location.layout.is_default() => anyhow::bail!(
            "--shards, --replication-factor and --write-consistency-factor lay a collection out over a Qdrant \
             cluster; give --qdrant-url, or drop them for the embedded engine"
        ),
        None => std::sync::Arc::new(embedded::EmbeddedIndex::open(location.data_dir, collection)),
    })
}
