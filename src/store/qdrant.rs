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
//!
//! Points are written as named vectors: `""` (the unnamed default vector) holds the dense
//! one, [`SPARSE_VECTOR`] the BM25 one. A hybrid [`Query`] is one request: a prefetch per
//! vector and reciprocal-rank fusion on the server.

use anyhow::{anyhow, bail, Context, Result};
use async_trait::async_trait;
use qdrant_client::qdrant::{
    alias_operations, collections_client::CollectionsClient, point_id::PointIdOptions,
    points_selector::PointsSelectorOneOf, r#match::MatchValue, vector_output, vectors_config, vectors_output,
    AliasOperations, ChangeAliases, CollectionConfig, CollectionParams, Condition, CountPointsBuilder, CreateAlias,
    CreateCollection, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder, CreateVectorNameRequestBuilder,
    DeleteAlias, DeletePointsBuilder, Distance, FieldType, Filter, Fusion, GetPointsBuilder, Modifier, NamedVectors,
    PointId, PointStruct, PointsIdsList, PrefetchQueryBuilder, Query as QdrantQuery, QueryPointsBuilder, Range,
    RetrievedPoint, ScrollPointsBuilder, SparseVectorCreationConfigBuilder, SparseVectorParamsBuilder,
    SparseVectorsConfigBuilder, UpsertPointsBuilder, Vector, VectorInput, VectorOutput, VectorParams,
    VectorParamsBuilder, VectorsConfig, VectorsOutput,
};
use qdrant_client::{Payload, Qdrant, QdrantError};
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::{
    CollectionLayout, Hit, Point, PointFilter, PointPayload, Query, ScrollPage, StoredPoint, VectorIndex, SPARSE_VECTOR,
};
use crate::retry::{transient, OutageClock, RetryPolicy};
use crate::sparse::SparseVector;

/// The payload indexes every collection has: `doc_id` and `chunk_index` to find a file's
/// points, `ext` and `analyzer` for filters.
const PAYLOAD_INDEXES: [(&str, FieldType); 4] = [
    ("doc_id", FieldType::Keyword),
    ("chunk_index", FieldType::Integer),
    ("ext", FieldType::Keyword),
    ("analyzer", FieldType::Keyword),
];

/// A collection on a Qdrant server.
pub struct QdrantIndex {
    client: Qdrant,
    collection: String,
    /// The server's address and API key as given, for the aliases client.
    url: String,
    api_key: Option<String>,
    /// The server's address without credentials, for messages.
    address: String,
    outage_clock: Arc<OutageClock>,
    /// How a collection this index creates is laid out over the cluster, as flags gave it.
    layout: CollectionLayout,
    /// The collection whose layout one this index creates copies, before `layout`'s flags:
    /// the live generation's, for a generation built beside it.
    like: Option<String>,
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
            url: url.to_string(),
            api_key: api_key.map(str::to_string),
            address,
            outage_clock,
            layout: CollectionLayout::default(),
            like: None,
        })
    }

    /// Every alias on the server.
    async fn aliases(&self) -> Result<Vec<qdrant_client::qdrant::AliasDescription>> {
        let listed = self
            .outage_clock
            .call(|| async { self.client.list_aliases().await.map_err(|e| classify(e, "list aliases")) })
            .await?;
        Ok(listed.aliases)
    }

    /// A client of the server's collections service, on its own connection. qdrant-client
    /// sends one alias action per request; a switch needs two in one request (drop the old
    /// target, set the new one), which only the generated client sends.
    async fn aliases_client(
        &self,
    ) -> Result<
        CollectionsClient<
            tonic::service::interceptor::InterceptedService<
                tonic::transport::Channel,
                impl tonic::service::Interceptor,
            >,
        >,
    > {
        use tonic::transport::{Channel, ClientTlsConfig};
        let endpoint = Channel::from_shared(self.url.clone())
            .map_err(|e| anyhow!("--qdrant-url {} is not a valid address ({e})", self.address))?
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(5));
        let endpoint = if self.url.starts_with("https:") {
            endpoint
                .tls_config(ClientTlsConfig::new().with_native_roots())
                .context("setting up TLS for the Qdrant server")?
        } else {
            endpoint
        };
        let channel = endpoint.connect().await.map_err(|e| transient(format!("Qdrant alias switch: {e}")))?;
        let api_key = match &self.api_key {
            Some(key) => Some(
                key.parse::<tonic::metadata::MetadataValue<_>>()
                    .context("QDRANT_API_KEY is not a valid header value")?,
            ),
            None => None,
        };
        Ok(CollectionsClient::with_interceptor(channel, move |mut request: tonic::Request<()>| {
            if let Some(key) = &api_key {
                request.metadata_mut().insert("api-key", key.clone());
            }
            Ok(request)
        }))
    }

    /// The same index, creating its collection laid out as the collection `like` is (when
    /// given and it exists), with `layout`'s settings over it.
    pub fn with_layout(self, layout: CollectionLayout, like: Option<&str>) -> Self {
        Self { layout, like: like.map(str::to_string), ..self }
    }

    /// The creation of this collection with `dim`-dimensional vectors: laid out as the
    /// collection [`Self::like`] names, when it exists (shards, replication, write
    /// consistency, where vectors, payload and ids are kept, HNSW, quantization, optimizers,
    /// WAL, strict mode), then the flags of [`Self::layout`] over that, which a user gives
    /// to change the layout.
    async fn creation(&self, dim: usize) -> Result<CreateCollection> {
        let mut sparse = SparseVectorsConfigBuilder::default();
        sparse.add_named_vector_params(SPARSE_VECTOR, SparseVectorParamsBuilder::default().modifier(Modifier::Idf));
        let mut request = CreateCollectionBuilder::new(self.collection.as_str())
            .vectors_config(VectorParamsBuilder::new(dim as u64, Distance::Cosine))
            .sparse_vectors_config(sparse)
            .build();
        if let Some(template) = self.like_config().await? {
            let params = template.params.unwrap_or_default();
            if let Some(vectors_config::Config::Params(dense)) = params.vectors_config.and_then(|v| v.config) {
                let copied = VectorParams { size: dim as u64, distance: Distance::Cosine as i32, ..dense };
                request.vectors_config = Some(VectorsConfig { config: Some(vectors_config::Config::Params(copied)) });
            }
            request.shard_number = Some(params.shard_number);
            request.replication_factor = params.replication_factor;
            request.write_consistency_factor = params.write_consistency_factor;
            request.payload = params.payload;
            request.id_tracker = params.id_tracker;
            request.sharding_method = params.sharding_method;
            request.hnsw_config = template.hnsw_config;
            request.quantization_config = template.quantization_config;
            request.optimizers_config = template.optimizer_config;
            request.wal_config = template.wal_config;
            request.strict_mode_config = template.strict_mode_config;
        }
        let layout = self.layout;
        request.shard_number = layout.shards.or(request.shard_number);
        request.replication_factor = layout.replication_factor.or(request.replication_factor);
        request.write_consistency_factor = layout.write_consistency_factor.or(request.write_consistency_factor);
        Ok(request)
    }

    /// The configuration of the collection [`Self::like`] names; `None` without one, or when
    /// it does not exist (any more).
    async fn like_config(&self) -> Result<Option<CollectionConfig>> {
        let Some(like) = &self.like else {
            return Ok(None);
        };
        let info = self
            .outage_clock
            .call(|| async {
                match self.client.collection_info(like.as_str()).await {
                    Ok(info) => Ok(Some(info)),
                    Err(QdrantError::ResponseError { status }) if status.code() == tonic::Code::NotFound => Ok(None),
                    Err(e) => Err(classify(e, "collection info")),
                }
            })
            .await?;
        Ok(info.and_then(|info| info.result).and_then(|r| r.config))
    }

    fn doc_filter(doc_id: &str) -> Condition {
        keyword("doc_id", doc_id)
    }

    /// The points of any of `doc_ids`.
    fn documents_filter(doc_ids: &[String]) -> Filter {
        Filter::must([Condition::matches("doc_id", doc_ids.to_vec())])
    }

    /// The points of any of `doc_ids` whose `chunk_index` is `from` or more.
    fn tail_filter(doc_ids: &[String], from: u32) -> Filter {
        Filter::must([
            Condition::matches("doc_id", doc_ids.to_vec()),
            Condition::range("chunk_index", Range { gte: Some(from as f64), ..Default::default() }),
        ])
    }

    /// The collection's parameters, as the server reports them.
    async fn params(&self) -> Result<CollectionParams> {
        let info = self
            .outage_clock
            .call(|| async {
                self.client.collection_info(&self.collection).await.map_err(|e| classify(e, "collection info"))
            })
            .await?;
        info.result.and_then(|r| r.config).and_then(|c| c.params).with_context(|| {
            format!("Qdrant at {} reported no parameters for collection {:?}", self.address, self.collection)
        })
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
            // The client reports a refused or broken connection as an internal error; a node
            // that removes a collection's directory while its own background work still writes
            // into it answers "Directory not empty", and the next try finds the work finished.
            Code::Internal => {
                let message = status.message().to_ascii_lowercase();
                ["failed to connect", "transport", "connection", "broken pipe", "h2 protocol", "directory not empty"]
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

/// `key` equals `value` as a keyword. (`Condition::matches` with a `String` would match a
/// value holding whitespace as full text instead.)
fn keyword(key: &str, value: &str) -> Condition {
    Condition::matches(key, MatchValue::Keyword(value.to_string()))
}

/// The payload conditions of `filter`, as the server applies them; `None` when it has none.
fn point_filter(filter: &PointFilter) -> Option<Filter> {
    let mut must = Vec::new();
    if let Some(text) = &filter.path_contains {
        // Without a full-text index on `path`, Qdrant matches text as a substring.
        must.push(Condition::matches_text("path", text.clone()));
    }
    for (key, value) in &filter.equals {
        // A value reads as a keyword, and as an integer too when it is one.
        must.push(match value.parse::<i64>() {
            Ok(number) => Filter::should([keyword(key, value), Condition::matches(key.clone(), number)]).into(),
            Err(_) => keyword(key, value),
        });
    }
    if !filter.extensions.is_empty() {
        must.push(Condition::matches("ext", filter.extensions.clone()));
    }
    (!must.is_empty()).then(|| Filter::must(must))
}

/// Whether the collection declares the [`SPARSE_VECTOR`].
fn declares_sparse(params: &CollectionParams) -> bool {
    params.sparse_vectors_config.as_ref().is_some_and(|config| config.map.contains_key(SPARSE_VECTOR))
}

fn to_point_struct(point: &Point) -> Result<PointStruct> {
    let payload = Payload::try_from(serde_json::to_value(&point.payload).context("encoding payload")?)
        .context("encoding payload")?;
    let vectors = NamedVectors::default()
        .add_vector("", Vector::new_dense(point.vector.clone()))
        .add_vector(SPARSE_VECTOR, Vector::new_sparse(point.sparse.indices.clone(), point.sparse.values.clone()));
    Ok(PointStruct::new(point.id.to_string(), vectors, payload))
}

fn uuid_of(id: Option<PointId>) -> Result<Uuid> {
    match id.and_then(|id| id.point_id_options) {
        Some(PointIdOptions::Uuid(text)) => text.parse().with_context(|| format!("point id {text:?} is not a UUID")),
        Some(PointIdOptions::Num(n)) => bail!("point {n} has a numeric id; this collection was not written by ingest"),
        None => bail!("Qdrant returned a point without an id"),
    }
}

#[allow(deprecated)] // older servers answer with `data` instead of `vector`
fn dense_vector(output: VectorOutput) -> Result<Vec<f32>> {
    match output.vector {
        Some(vector_output::Vector::Dense(dense)) => Ok(dense.data),
        None if output.indices.is_none() && output.vectors_count.is_none() => Ok(output.data),
        _ => bail!("the collection's unnamed vector is not dense; ingest writes a dense one"),
    }
}

#[allow(deprecated)] // older servers answer with `data` and `indices` instead of `vector`
fn sparse_vector(output: VectorOutput) -> Result<SparseVector> {
    match (output.vector, output.indices) {
        (Some(vector_output::Vector::Sparse(sparse)), _) => {
            Ok(SparseVector { indices: sparse.indices, values: sparse.values })
        }
        (None, Some(indices)) => Ok(SparseVector { indices: indices.data, values: output.data }),
        _ => bail!("the collection's {SPARSE_VECTOR:?} vector is not sparse; ingest writes a sparse one"),
    }
}

/// A point's dense and sparse vectors as the server returns them: named (`""` and
/// [`SPARSE_VECTOR`], the sparse one absent from points written before sparse vectors), or
/// the one unnamed vector of a collection made before them; empty when not asked for.
fn vectors_of(vectors: Option<VectorsOutput>) -> Result<(Vec<f32>, SparseVector)> {
    match vectors.and_then(|v| v.vectors_options) {
        None => Ok((Vec::new(), SparseVector::default())),
        Some(vectors_output::VectorsOptions::Vector(dense)) => Ok((dense_vector(dense)?, SparseVector::default())),
        Some(vectors_output::VectorsOptions::Vectors(mut named)) => {
            let dense = named
                .vectors
                .remove("")
                .context("the collection's points have no unnamed dense vector; ingest writes one")?;
            let sparse = named.vectors.remove(SPARSE_VECTOR).map(sparse_vector).transpose()?.unwrap_or_default();
            Ok((dense_vector(dense)?, sparse))
        }
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
    let (vector, sparse) = vectors_of(vectors).with_context(|| format!("point {id}"))?;
    Ok(Point { id, vector, sparse, payload })
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
            let params = self.params().await?;
            let dense = params.vectors_config.as_ref().and_then(|v| v.config.as_ref());
            let Some(vectors_config::Config::Params(dense)) = dense else {
                bail!("collection {name:?} on {} has named vectors; ingest needs one unnamed dense vector, so use another --collection", self.address);
            };
            let distance = Distance::try_from(dense.distance).unwrap_or(Distance::UnknownDistance);
            if dense.size != dim as u64 || distance != Distance::Cosine {
                bail!(
                    "collection {name:?} on {} holds {}-dimensional {} vectors but the model makes {dim}-dimensional Cosine vectors; use another --collection or the model it was built with",
                    self.address, dense.size, distance.as_str_name()
                );
            }
            if !declares_sparse(&params) {
                // A collection made before sparse vectors. (Declaring it again, on a retry
                // whose first answer was lost, is a no-op for the server.)
                self.outage_clock
                    .call(|| async {
                        let sparse = SparseVectorCreationConfigBuilder::new().modifier(Modifier::Idf);
                        let request = CreateVectorNameRequestBuilder::new(name, SPARSE_VECTOR, sparse).wait(true);
                        match self.client.create_vector_name(request).await {
                            Ok(_) => Ok(()),
                            Err(QdrantError::ResponseError { status }) if status.code() == tonic::Code::Unimplemented => {
                                Err(anyhow!(
                                    "collection {name:?} on {} was made before sparse vectors, and this server cannot add them to it (that needs Qdrant 1.18 or later); upgrade Qdrant, or use another --collection",
                                    self.address
                                ))
                            }
                            Err(e) => Err(classify(e, "add the sparse vector")),
                        }
                    })
                    .await?;
            }
        } else {
            let request = self.creation(dim).await?;
            self.outage_clock
                .call(|| async {
                    match self.client.create_collection(request.clone()).await {
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
        for (field, kind) in PAYLOAD_INDEXES {
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
        self.outage_clock
            .call(|| async {
                // Converted for each try rather than once and copied for each: a request's
                // points are then held twice (as given and as sent), not three times.
                let structs = points.iter().map(to_point_struct).collect::<Result<Vec<_>>>()?;
                let request = UpsertPointsBuilder::new(&self.collection, structs).wait(true);
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
        let doc_id = [doc_id.to_string()];
        self.delete(Self::tail_filter(&doc_id, keep).into(), "delete stale chunks").await
    }

    async fn query(&self, query: Query) -> Result<Vec<Hit>> {
        let Query { dense, sparse, limit, candidates, filter } = query;
        let dense = dense.map(QdrantQuery::new_nearest);
        let sparse = sparse.map(|s| QdrantQuery::new_nearest(VectorInput::new_sparse(s.indices, s.values)));
        let mut request = QueryPointsBuilder::new(&self.collection).limit(limit as u64).with_payload(true);
        request = match (dense, sparse) {
            (Some(dense), Some(sparse)) => {
                let candidates = candidates.max(limit) as u64;
                request
                    .add_prefetch(PrefetchQueryBuilder::default().query(dense).limit(candidates))
                    .add_prefetch(PrefetchQueryBuilder::default().query(sparse).using(SPARSE_VECTOR).limit(candidates))
                    .query(QdrantQuery::new_fusion(Fusion::Rrf))
            }
            (Some(dense), None) => request.query(dense),
            (None, Some(sparse)) => request.query(sparse).using(SPARSE_VECTOR),
            (None, None) => bail!("a query needs a dense or a sparse vector"),
        };
        // Qdrant applies the query's filter to every prefetch too.
        if let Some(filter) = point_filter(&filter) {
            request = request.filter(filter);
        }
        let request = request.build();
        let response = self
            .outage_clock
            .call(|| async { self.client.query(request.clone()).await.map_err(|e| classify(e, "query")) })
            .await?;
        response
            .result
            .into_iter()
            .map(|p| Ok(Hit { score: p.score, point: stored_point(p.id, p.payload, None)? }))
            .collect()
    }

    async fn has_sparse_vectors(&self) -> Result<bool> {
        Ok(self.exists().await? && declares_sparse(&self.params().await?))
    }

    async fn count_without_analyzer(&self, analyzer: &str) -> Result<u64> {
        self.count_matching(Some(Filter::must_not([keyword("analyzer", analyzer)]))).await
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

    async fn count_tail(&self, doc_ids: &[String], from: u32) -> Result<u64> {
        if doc_ids.is_empty() {
            return Ok(0);
        }
        self.count_matching(Some(Self::tail_filter(doc_ids, from))).await
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

    async fn retrieve(&self, ids: &[Uuid]) -> Result<Vec<StoredPoint>> {
        let response = self
            .outage_clock
            .call(|| async {
                let ids: Vec<PointId> = ids.iter().map(|id| PointId::from(id.to_string())).collect();
                let request = GetPointsBuilder::new(&self.collection, ids).with_payload(true).with_vectors(true);
                self.client.get_points(request).await.map_err(|e| classify(e, "retrieve"))
            })
            .await?;
        response
            .result
            .into_iter()
            .map(|RetrievedPoint { id, payload, vectors, .. }| stored_point(id, payload, vectors))
            .collect()
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

    async fn serve_as(&self, alias: &str) -> Result<()> {
        let aliases = self.aliases().await?;
        let current = aliases.iter().find(|a| a.alias_name == alias);
        if current.is_some_and(|a| a.collection_name == self.collection) {
            return Ok(());
        }
        let mut actions = Vec::new();
        if current.is_some() {
            let delete = DeleteAlias { alias_name: alias.to_string() };
            actions.push(AliasOperations { action: Some(alias_operations::Action::DeleteAlias(delete)) });
        }
        let create = CreateAlias { collection_name: self.collection.clone(), alias_name: alias.to_string() };
        actions.push(AliasOperations { action: Some(alias_operations::Action::CreateAlias(create)) });
        let change = ChangeAliases { actions, timeout: None };
        self.outage_clock
            .call(|| async {
                let mut client = self.aliases_client().await?;
                client
                    .update_aliases(change.clone())
                    .await
                    .map_err(|status| classify(QdrantError::ResponseError { status }, "alias switch"))
            })
            .await?;
        Ok(())
    }

    async fn aliased_to(&self) -> Result<Option<String>> {
        let aliases = self.aliases().await?;
        Ok(aliases.into_iter().find(|a| a.alias_name == self.collection).map(|a| a.collection_name))
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
    fn a_cluster_in_flux_or_a_busy_directory_is_waited_out_and_a_bad_request_is_not() {
        for (code, message) in [
            (tonic::Code::InvalidArgument, "Bad request: Shard 0 is not active on peer 2979974762066354"),
            (tonic::Code::Internal, "Service internal error: Waiting for consensus operation commit failed"),
            (tonic::Code::Internal, "Service internal error: No active replica for shard 3"),
            (tonic::Code::FailedPrecondition, "Shard transfer in progress"),
            (tonic::Code::Internal, "Service internal error: Directory not empty (os error 39)"),
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
