//! # Qdrant server store
//!
//! In: the same calls as any [`VectorIndex`]. Out: the same effects on a collection of a
//! Qdrant server, reached over gRPC with `qdrant-client` (`--qdrant-url`, `QDRANT_API_KEY`).
//!
//! Every write waits for the server's acknowledgement (`wait = true`). Every call goes
//! through an [`OutageClock`]: unavailable servers, timeouts, dropped connections and rate
//! limits are retried with backoff and jitter until the outage limit; any other answer
//! (a bad request, a dimension mismatch) fails at once. Only what a real Qdrant server
//! supports is used.

use anyhow::{anyhow, bail, Context, Result};
use async_trait::async_trait;
use qdrant_client::qdrant::{
    point_id::PointIdOptions, points_selector::PointsSelectorOneOf, vector_output, vectors_config, vectors_output,
    Condition, CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder, DeletePointsBuilder,
    Distance, FieldType, Filter, PointId, PointStruct, PointsIdsList, QueryPointsBuilder, Range, RetrievedPoint,
    ScrollPointsBuilder, UpsertPointsBuilder, VectorParamsBuilder, VectorsOutput,
};
use qdrant_client::{Payload, Qdrant, QdrantError};
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::{CollectionLayout, Hit, Point, PointPayload, ScrollPage, StoredPoint, VectorIndex};
use crate::retry::{transient, OutageClock, RetryPolicy};

/// A collection on a Qdrant server.
pub struct QdrantIndex {
    client: Qdrant,
    collection: String,
    /// The server's address without credentials, for messages.
    address: String,
    outage_clock: Arc<OutageClock>,
    /// How a collection this index creates is laid out over the cluster.
    layout: CollectionLayout,
}

impl QdrantIndex {
    /// Connects to the server at `url` and checks that it answers. The API key goes only
    /// into request headers, never into messages. A `url` with user-info, parameters or a
    /// fragment is refused: the gRPC client would ignore them, and its errors quote the URL.
    pub async fn connect(url: &str, api_key: Option<&str>, collection: &str, policy: RetryPolicy) -> Result<Self> {
        let address = crate::redact::redact_url(url);
        if url.contains(['@', '?', '#']) {
            bail!(
                "--qdrant-url {address} must be the server's address alone, e.g. http://HOST:6334, without user, \
                 password or parameters; give the API key in QDRANT_API_KEY"
            );
        }
        let client = Qdrant::from_url(url)
            .api_key(api_key.map(str::to_string))
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(5))
            .skip_compatibility_check()
            .build()
            .map_err(|e| {
                anyhow!("--qdrant-url {address:?} is not a valid Qdrant address ({e}); use http://HOST:6334")
            })?;
        // Nothing listening fails at once (most likely a wrong address); a server that answers
        // but refuses is waited out, for at most half a minute at start-up.
        let startup = RetryPolicy { outage_limit: policy.outage_limit.min(Duration::from_secs(30)), ..policy };
        OutageClock::new("Qdrant", startup)
            .call(|| async {
                match client.health_check().await {
                    Ok(_) => Ok(()),
                    Err(e) if status_text(&e).to_ascii_lowercase().contains("failed to connect") => {
                        Err(anyhow!("{}", status_text(&e)))
                    }
                    Err(e) => Err(classify(e, "health check")),
                }
            })
            .await
            .map_err(|e| {
                anyhow!(
                    "cannot reach Qdrant at {address} ({}); check that the server is running and that --qdrant-url points at its gRPC port (usually 6334)",
                    e.root_cause()
                )
            })?;
        let outage_clock = Arc::new(OutageClock::new("Qdrant", policy));
        Ok(Self {
            client,
            collection: collection.to_string(),
            address,
            outage_clock,
            layout: CollectionLayout::default(),
        })
    }

    /// The same index, creating its collection laid out as `layout` says.
    pub fn with_layout(self, layout: CollectionLayout) -> Self {
        Self { layout, ..self }
    }

    fn doc_filter(doc_id: &str) -> Condition {
        Condition::matches("doc_id", doc_id.to_string())
    }

    /// The points of any of `doc_ids`.
    fn documents_filter(doc_ids: &[String]) -> Filter {
        Filter::must([Condition::matches("doc_id", doc_ids.to_vec())])
    }

    /// The points of `doc_id` whose `chunk_index` is `from` or more.
    fn tail_filter(doc_id: &str, from: u32) -> Filter {
        Filter::must([
            Self::doc_filter(doc_id),
            Condition::range("chunk_index", Range { gte: Some(from as f64), ..Default::default() }),
        ])
    }

    /// Exact number of points matching `filter` (all points without one); 0 before the
    /// collection exists.
    async fn count_matching(&self, filter: Option<Filter>) -> Result<u64> {
        if !self.exists().await? {
            return Ok(0);
        }
        let response = self
            .outage_clock
            .call(|| async {
                let mut request = CountPointsBuilder::new(&self.collection).exact(true);
                if let Some(filter) = filter.clone() {
                    request = request.filter(filter);
                }
                self.client.count(request).await.map_err(|e| classify(e, "count"))
            })
            .await?;
        Ok(response.result.map(|r| r.count).unwrap_or(0))
    }

    /// Deletes the selected points and waits for the server's acknowledgement.
    async fn delete(&self, selector: PointsSelectorOneOf, doing: &str) -> Result<()> {
        self.outage_clock
            .call(|| async {
                let request = DeletePointsBuilder::new(&self.collection).points(selector.clone()).wait(true);
                self.client.delete_points(request).await.map_err(|e| classify(e, doing))
            })
            .await?;
        Ok(())
    }
}

/// A Qdrant error's message, without the metadata the client's `Display` adds.
fn status_text(error: &QdrantError) -> String {
    match error {
        QdrantError::ResponseError { status } | QdrantError::ResourceExhaustedError { status, .. } => {
            format!("{:?}: {}", status.code(), status.message())
        }
        other => other.to_string(),
    }
}

/// What a cluster says while it elects a leader, moves or re-creates a shard, or has too
/// few live replicas for the write consistency factor: it passes, so it is waited out like
/// an outage. (Qdrant answers these as internal errors or bad requests, by wording alone.)
const CLUSTER_IN_FLUX: &[&str] = &[
    "is not active",
    "no active replica",
    "active replicas",
    "consensus",
    "no leader",
    "shard transfer",
    "resharding",
    "write consistency",
];

fn cluster_in_flux(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    CLUSTER_IN_FLUX.iter().any(|sign| message.contains(sign))
}

/// Maps a client error to an `anyhow` error, marking those worth retrying as transient.
fn classify(error: QdrantError, doing: &str) -> anyhow::Error {
    use tonic::Code;
    let retry = match &error {
        QdrantError::ResourceExhaustedError { .. } | QdrantError::Io(_) => true,
        QdrantError::ResponseError { status } => match status.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::Aborted | Code::Cancelled | Code::Unknown => true,
            // The client reports a refused or broken connection as an internal error.
            Code::Internal => {
                let message = status.message().to_ascii_lowercase();
                ["failed to connect", "transport", "connection", "broken pipe", "h2 protocol"]
                    .iter()
                    .any(|sign| message.contains(sign))
                    || cluster_in_flux(&message)
            }
            _ => cluster_in_flux(status.message()),
        },
        _ => false,
    };
    let text = format!("Qdrant {doing}: {}", status_text(&error));
    if retry {
        transient(text)
    } else {
        anyhow!(text)
    }
}

fn to_point_struct(point: &Point) -> Result<PointStruct> {
    let payload = Payload::try_from(serde_json::to_value(&point.payload).context("encoding payload")?)
        .context("encoding payload")?;
    Ok(PointStruct::new(point.id.to_string(), point.vector.clone(), payload))
}

fn uuid_of(id: Option<PointId>) -> Result<Uuid> {
    match id.and_then(|id| id.point_id_options) {
        Some(PointIdOptions::Uuid(text)) => text.parse().with_context(|| format!("point id {text:?} is not a UUID")),
        Some(PointIdOptions::Num(n)) => bail!("point {n} has a numeric id; this collection was not written by ingest"),
        None => bail!("Qdrant returned a point without an id"),
    }
}

#[allow(deprecated)] // older servers answer with `data` instead of `vector`
fn dense_vector(vectors: Option<VectorsOutput>) -> Result<Vec<f32>> {
    let Some(options) = vectors.and_then(|v| v.vectors_options) else { return Ok(Vec::new()) };
    let vectors_output::VectorsOptions::Vector(output) = options else {
        bail!("the collection has named vectors; ingest writes one unnamed dense vector")
    };
    match output.vector {
        Some(vector_output::Vector::Dense(dense)) => Ok(dense.data),
        Some(_) => bail!("the collection holds sparse or multi vectors"),
        None => Ok(output.data),
    }
}

fn stored_point(
    id: Option<PointId>,
    payload: std::collections::HashMap<String, qdrant_client::qdrant::Value>,
    vectors: Option<VectorsOutput>,
) -> Result<StoredPoint> {
    let id = uuid_of(id)?;
    let payload: PointPayload =
        Payload::from(payload).deserialize().with_context(|| format!("point {id} has an unexpected payload"))?;
    Ok(Point { id, vector: dense_vector(vectors)?, payload })
}

#[async_trait]
impl VectorIndex for QdrantIndex {
    fn collection(&self) -> &str {
        &self.collection
    }

    fn outage_clock(&self) -> Option<Arc<OutageClock>> {
        Some(self.outage_clock.clone())
    }

    async fn ensure_collection(&self, dim: usize) -> Result<()> {
        let name = self.collection.as_str();
        let exists = self
            .outage_clock
            .call(|| async { self.client.collection_exists(name).await.map_err(|e| classify(e, "collection check")) })
            .await?;
        if exists {
            let info = self
                .outage_clock
                .call(|| async { self.client.collection_info(name).await.map_err(|e| classify(e, "collection info")) })
                .await?;
            let params = info
                .result
                .and_then(|r| r.config)
                .and_then(|c| c.params)
                .and_then(|p| p.vectors_config)
                .and_then(|v| v.config);
            let Some(vectors_config::Config::Params(params)) = params else {
                bail!("collection {name:?} on {} has named vectors; ingest needs one unnamed dense vector, so use another --collection", self.address);
            };
            let distance = Distance::try_from(params.distance).unwrap_or(Distance::UnknownDistance);
            if params.size != dim as u64 || distance != Distance::Cosine {
                bail!(
                    "collection {name:?} on {} holds {}-dimensional {} vectors but the model makes {dim}-dimensional Cosine vectors; use another --collection or the model it was built with",
                    self.address, params.size, distance.as_str_name()
                );
            }
        } else {
            self.outage_clock
                .call(|| async {
                    let mut request = CreateCollectionBuilder::new(name)
                        .vectors_config(VectorParamsBuilder::new(dim as u64, Distance::Cosine));
                    let layout = self.layout;
                    if let Some(shards) = layout.shards {
                        request = request.shard_number(shards);
                    }
                    if let Some(replication) = layout.replication_factor {
                        request = request.replication_factor(replication);
                    }
                    if let Some(consistency) = layout.write_consistency_factor {
                        request = request.write_consistency_factor(consistency);
                    }
                    match self.client.create_collection(request).await {
                        Ok(_) => Ok(()),
                        // Created by an earlier try whose answer was lost.
                        Err(QdrantError::ResponseError { status }) if status.code() == tonic::Code::AlreadyExists => {
                            Ok(())
                        }
                        Err(e) => Err(classify(e, "create collection")),
                    }
                })
                .await?;
        }
        for (field, kind) in [("doc_id", FieldType::Keyword), ("chunk_index", FieldType::Integer)] {
            self.outage_clock
                .call(|| async {
                    let request = CreateFieldIndexCollectionBuilder::new(name, field, kind).wait(true);
                    self.client.create_field_index(request).await.map_err(|e| classify(e, "create payload index"))
                })
                .await?;
        }
        Ok(())
    }

    async fn upsert(&self, points: Vec<Point>) -> Result<()> {
        let points = points.iter().map(to_point_struct).collect::<Result<Vec<_>>>()?;
        self.outage_clock
            .call(|| async {
                let request = UpsertPointsBuilder::new(&self.collection, points.clone()).wait(true);
                self.client.upsert_points(request).await.map_err(|e| classify(e, "upsert"))
            })
            .await?;
        Ok(())
    }

    async fn delete_documents(&self, doc_ids: &[String]) -> Result<()> {
        if doc_ids.is_empty() {
            return Ok(());
        }
        self.delete(Self::documents_filter(doc_ids).into(), "delete documents").await
    }

    async fn delete_points(&self, ids: &[Uuid]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let list = PointsIdsList { ids: ids.iter().map(|id| PointId::from(id.to_string())).collect() };
        self.delete(list.into(), "delete points").await
    }

    async fn delete_tail(&self, doc_id: &str, keep: u32) -> Result<()> {
        self.delete(Self::tail_filter(doc_id, keep).into(), "delete stale chunks").await
    }

    async fn search(&self, vector: Vec<f32>, limit: usize) -> Result<Vec<Hit>> {
        let response = self
            .outage_clock
            .call(|| async {
                let request = QueryPointsBuilder::new(&self.collection)
                    .query(vector.clone())
                    .limit(limit as u64)
                    .with_payload(true);
                self.client.query(request).await.map_err(|e| classify(e, "query"))
            })
            .await?;
        response
            .result
            .into_iter()
            .map(|p| Ok(Hit { score: p.score, point: stored_point(p.id, p.payload, None)? }))
            .collect()
    }

    async fn count(&self, doc_id: Option<&str>) -> Result<u64> {
        self.count_matching(doc_id.map(|d| Filter::must([Self::doc_filter(d)]))).await
    }

    async fn count_documents(&self, doc_ids: &[String]) -> Result<u64> {
        if doc_ids.is_empty() {
            return Ok(0);
        }
        self.count_matching(Some(Self::documents_filter(doc_ids))).await
    }

    async fn count_tail(&self, doc_id: &str, from: u32) -> Result<u64> {
        self.count_matching(Some(Self::tail_filter(doc_id, from))).await
    }

    async fn scroll(&self, offset: Option<Uuid>, limit: usize, with_vectors: bool) -> Result<ScrollPage> {
        let response = self
            .outage_clock
            .call(|| async {
                let mut request = ScrollPointsBuilder::new(&self.collection)
                    .limit(limit as u32)
                    .with_payload(true)
                    .with_vectors(with_vectors);
                if let Some(offset) = offset {
                    request = request.offset(PointId::from(offset.to_string()));
                }
                self.client.scroll(request).await.map_err(|e| classify(e, "scroll"))
            })
            .await?;
        let points = response
            .result
            .into_iter()
            .map(|RetrievedPoint { id, payload, vectors, .. }| stored_point(id, payload, vectors))
            .collect::<Result<Vec<_>>>()?;
        let next = match response.next_page_offset {
            Some(id) => Some(uuid_of(Some(id))?),
            None => None,
        };
        Ok((points, next))
    }

    async fn exists(&self) -> Result<bool> {
        self.outage_clock
            .call(|| async {
                self.client.collection_exists(&self.collection).await.map_err(|e| classify(e, "collection check"))
            })
            .await
    }

    async fn drop_collection(&self) -> Result<()> {
        self.outage_clock
            .call(|| async {
                self.client.delete_collection(&self.collection).await.map_err(|e| classify(e, "delete collection"))
            })
            .await?;
        Ok(())
    }

    async fn finish(&self) -> Result<()> {
        // The server builds its indexes in the background; every write was already acknowledged.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(code: tonic::Code, message: &str) -> QdrantError {
        QdrantError::ResponseError { status: tonic::Status::new(code, message) }
    }

    fn is_retried(error: QdrantError) -> bool {
        classify(error, "upsert").chain().any(|cause| cause.downcast_ref::<crate::retry::Transient>().is_some())
    }

    #[test]
    fn a_cluster_in_flux_is_waited_out_and_a_bad_request_is_not() {
        for (code, message) in [
            (tonic::Code::InvalidArgument, "Bad request: Shard 0 is not active on peer 2979974762066354"),
            (tonic::Code::Internal, "Service internal error: Waiting for consensus operation commit failed"),
            (tonic::Code::Internal, "Service internal error: No active replica for shard 3"),
            (tonic::Code::FailedPrecondition, "Shard transfer in progress"),
            (tonic::Code::Unavailable, "anything at all"),
        ] {
            assert!(is_retried(answer(code, message)), "{code:?}: {message}");
        }
        for (code, message) in [
            (tonic::Code::InvalidArgument, "Wrong input: Vector dimension error: expected dim: 384, got 3"),
            (tonic::Code::NotFound, "Collection `documents` doesn't exist!"),
        ] {
            assert!(!is_retried(answer(code, message)), "{code:?}: {message}");
        }
    }
}
