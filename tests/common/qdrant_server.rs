//! A Qdrant gRPC server for tests, with real Qdrant code as its engine.
//!
//! The wire protocol is qdrant-client's own generated server traits; the engine is
//! `qdrant-edge` (Qdrant's segment, WAL and index code), one shard per collection, on disk
//! under a temporary directory. It implements the calls `ingest` makes (health check,
//! collection exists/create/get/delete with an unnamed dense vector and sparse vectors,
//! adding a sparse vector to a collection, upsert of unnamed or named dense and sparse
//! vectors, delete by filter or ids, count, scroll, retrieval by ids, queries by nearest dense or sparse
//! vector and reciprocal-rank fusion of prefetches, payload index creation, collection
//! aliases: changing them atomically, listing them, and every call taking an alias in place of
//! its collection's name) and the filter shapes real Qdrant accepts for keyword, integer,
//! range, full-text and match-any conditions, `must`, `should`, `must_not` and nested
//! filters. Everything else answers `unimplemented`, one method at a time below.
//!
//! It doubles as a fault injector: refuse the next N calls, stall every call, die in the
//! middle of an upsert after applying half of it, stop and restart on the same port.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qdrant_client::qdrant::{
    self as grpc, collections_server::CollectionsServer, points_server::PointsServer, qdrant_server::QdrantServer,
};
use qdrant_edge::external::serde_json as edge_json;
use qdrant_edge::{
    AnyVariants, Condition, CountRequest, CreateIndex, CreateVectorName, Distance, EdgeConfigBuilder, EdgeShard,
    EdgeSparseVectorParamsBuilder, EdgeVectorParamsBuilder, FieldCondition, FieldIndexOperations, Filter, Fusion,
    Match, Modifier, NamedQuery, PayloadFieldSchema, PayloadSchemaType, PointId, PointInsertOperations,
    PointOperations, PointStruct, Prefetch, QueryEnum, QueryRequest, Range, Record, ScoringQuery, ScrollRequest,
    SparseVector, SparseVectorConfig, UpdateOperation, ValueVariants, VectorInternal, VectorNameConfig,
    VectorNameOperations, VectorStructInternal, WithPayloadInterface, WithVector,
};
use tonic::{Request, Response, Status};

type Reply<T> = Result<Response<T>, Status>;

/// A collection's cluster layout as asked: shards, replication factor, write consistency factor.
pub type Layout = (Option<u32>, Option<u32>, Option<u32>);

/// Faults to inject, shared by all handlers.
#[derive(Default)]
struct Faults {
    /// Calls still to refuse with `UNAVAILABLE`.
    refuse: AtomicU64,
    /// Milliseconds every call waits before running.
    delay_ms: AtomicU64,
    /// Die during the next upsert, after applying its first half; restart after this many ms.
    crash_next_upsert: Mutex<Option<u64>>,
}

struct Engine {
    dir: PathBuf,
    shards: Mutex<HashMap<String, Arc<EdgeShard>>>,
    /// Alias to collection, as saved in [`ALIASES_FILE`]. Taken before `shards` when both are held.
    aliases: Mutex<BTreeMap<String, String>>,
    faults: Faults,
    /// Calls served, for tests that check retries happened.
    calls: AtomicU64,
    upserts: AtomicU64,
    /// The shards, replication and write consistency factors of the last collection created.
    created_layout: Mutex<Option<Layout>>,
    writes: Mutex<()>,
    /// Tells the control thread to kill the server (and maybe restart it).
    control: Mutex<std::sync::mpsc::Sender<Control>>,
}

enum Control {
    Crash { restart_after: Option<Duration> },
}

/// The file in the engine's directory that keeps the aliases across restarts.
const ALIASES_FILE: &str = "aliases.json";

impl Engine {
    /// Forgets what is open and reads the aliases back from disk, as a restarted server does.
    fn reopen(&self) {
        self.shards.lock().unwrap().clear();
        *self.aliases.lock().unwrap() = load_aliases(&self.dir);
    }
}

fn load_aliases(dir: &Path) -> BTreeMap<String, String> {
    match std::fs::read(dir.join(ALIASES_FILE)) {
        Ok(json) => serde_json::from_slice(&json).expect("the test server's aliases file"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => panic!("reading the test server's aliases: {e}"),
    }
}

/// Saves the aliases whole: written aside, then renamed over the old file.
fn save_aliases(dir: &Path, aliases: &BTreeMap<String, String>) -> Result<(), Status> {
    let aside = dir.join(format!("{ALIASES_FILE}.tmp"));
    std::fs::write(&aside, serde_json::to_vec(aliases).map_err(internal)?).map_err(internal)?;
    std::fs::rename(&aside, dir.join(ALIASES_FILE)).map_err(internal)
}

/// A running test server.
pub struct TestQdrant {
    engine: Arc<Engine>,
    addr: SocketAddr,
    running: Arc<Mutex<Option<tokio::runtime::Runtime>>>,
    _temp: tempfile::TempDir,
}

impl TestQdrant {
    pub fn start() -> Self {
        let temp = tempfile::tempdir().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let (control_tx, control_rx) = std::sync::mpsc::channel();
        let engine = Arc::new(Engine {
            dir: temp.path().to_path_buf(),
            shards: Mutex::new(HashMap::new()),
            aliases: Mutex::new(load_aliases(temp.path())),
            faults: Faults::default(),
            calls: AtomicU64::new(0),
            upserts: AtomicU64::new(0),
            created_layout: Mutex::new(None),
            writes: Mutex::new(()),
            control: Mutex::new(control_tx),
        });
        let server = Self { engine, addr, running: Arc::new(Mutex::new(None)), _temp: temp };
        server.serve();
        let (engine, running) = (server.engine.clone(), server.running.clone());
        std::thread::spawn(move || {
            while let Ok(Control::Crash { restart_after }) = control_rx.recv() {
                if let Some(runtime) = running.lock().unwrap().take() {
                    runtime.shutdown_background();
                }
                engine.reopen();
                if let Some(wait) = restart_after {
                    std::thread::sleep(wait);
                    *running.lock().unwrap() = Some(spawn_server(engine.clone(), addr));
                }
            }
        });
        server
    }

    fn serve(&self) {
        *self.running.lock().unwrap() = Some(spawn_server(self.engine.clone(), self.addr));
    }

    /// The URL to pass as `--qdrant-url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Kills the server: open connections drop, new ones are refused.
    pub fn stop(&self) {
        if let Some(runtime) = self.running.lock().unwrap().take() {
            runtime.shutdown_background();
        }
        // Let the port close before anyone reconnects.
        std::thread::sleep(Duration::from_millis(100));
    }

    /// Starts a stopped server again on the same port, with the same data.
    pub fn restart(&self) {
        self.stop();
        self.engine.reopen();
        self.serve();
    }

    pub fn refuse_next(&self, calls: u64) {
        self.engine.faults.refuse.store(calls, Ordering::SeqCst);
    }

    pub fn delay_every_call(&self, delay: Duration) {
        self.engine.faults.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// The next upsert applies half its points, then the server dies and comes back after `down_for`.
    pub fn crash_during_next_upsert(&self, down_for: Duration) {
        *self.engine.faults.crash_next_upsert.lock().unwrap() = Some(down_for.as_millis() as u64);
    }

    pub fn calls(&self) -> u64 {
        self.engine.calls.load(Ordering::SeqCst)
    }

    pub fn upserts(&self) -> u64 {
        self.engine.upserts.load(Ordering::SeqCst)
    }

    /// The shards, replication factor and write consistency factor the last collection was
    /// created with, as asked (the server itself runs one shard on one node).
    pub fn created_layout(&self) -> Option<Layout> {
        *self.engine.created_layout.lock().unwrap()
    }

    /// The aliases, as (alias, collection) pairs sorted by alias.
    pub fn aliases(&self) -> Vec<(String, String)> {
        self.engine.aliases.lock().unwrap().iter().map(|(a, c)| (a.clone(), c.clone())).collect()
    }

    pub fn is_running(&self) -> bool {
        self.running.lock().unwrap().is_some()
    }
}

impl Drop for TestQdrant {
    fn drop(&mut self) {
        if let Some(runtime) = self.running.lock().unwrap().take() {
            runtime.shutdown_background();
        }
    }
}

fn spawn_server(engine: Arc<Engine>, addr: SocketAddr) -> tokio::runtime::Runtime {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let service = Service(engine);
    let ready = Arc::new(AtomicBool::new(false));
    let flag = ready.clone();
    runtime.spawn(async move {
        let listener = loop {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => break listener,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        flag.store(true, Ordering::SeqCst);
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let max = 256 * 1024 * 1024;
        tonic::transport::Server::builder()
            .add_service(QdrantServer::new(service.clone()))
            .add_service(CollectionsServer::new(service.clone()).max_decoding_message_size(max))
            .add_service(PointsServer::new(service).max_decoding_message_size(max).max_encoding_message_size(max))
            .serve_with_incoming(incoming)
            .await
            .ok();
    });
    while !ready.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(10));
    }
    runtime
}

#[derive(Clone)]
struct Service(Arc<Engine>);

impl Service {
    /// Applies the injected faults common to every call.
    async fn enter(&self) -> Result<(), Status> {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        let delay = self.0.faults.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let refuse = &self.0.faults.refuse;
        if refuse.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(Status::unavailable("test server: refusing this call as asked"));
        }
        Ok(())
    }

    /// Applies an operation durably, one writer at a time (the engine's flush needs its WAL free).
    fn apply(&self, shard: &EdgeShard, operation: UpdateOperation) -> Result<(), Status> {
        let _turn = self.0.writes.lock().unwrap();
        shard.update(operation).map_err(internal)?;
        shard.flush();
        Ok(())
    }

    /// The collection a name stands for: the one an alias points to, else the name itself.
    fn resolve(&self, name: &str) -> String {
        self.0.aliases.lock().unwrap().get(name).cloned().unwrap_or_else(|| name.to_string())
    }

    /// Whether a collection (not an alias) of this name exists on disk.
    fn is_collection(&self, collection: &str) -> bool {
        self.0.dir.join(collection).join("edge_config.json").is_file()
    }

    /// The aliases sorted by name, all of them or those of one collection.
    fn alias_list(&self, of: Option<&str>) -> Vec<grpc::AliasDescription> {
        let aliases = self.0.aliases.lock().unwrap();
        aliases
            .iter()
            .filter(|(_, collection)| of.is_none_or(|name| name == collection.as_str()))
            .map(|(alias, collection)| grpc::AliasDescription {
                alias_name: alias.clone(),
                collection_name: collection.clone(),
            })
            .collect()
    }

    /// The shard of a collection, named directly or by an alias.
    fn shard(&self, name: &str) -> Result<Arc<EdgeShard>, Status> {
        let collection = self.resolve(name);
        let mut shards = self.0.shards.lock().unwrap();
        if let Some(shard) = shards.get(&collection) {
            return Ok(shard.clone());
        }
        if !self.is_collection(&collection) {
            return Err(Status::not_found(format!("Collection `{collection}` doesn't exist!")));
        }
        let shard = Arc::new(EdgeShard::load(&self.0.dir.join(&collection), None).map_err(internal)?);
        shards.insert(collection, shard.clone());
        Ok(shard)
    }
}

fn internal(error: impl std::fmt::Display) -> Status {
    Status::internal(error.to_string())
}

fn unsupported(what: &str) -> Status {
    Status::unimplemented(format!("the test Qdrant server does not support {what}"))
}

fn edge_id(id: Option<grpc::PointId>) -> Result<PointId, Status> {
    use grpc::point_id::PointIdOptions;
    match id.and_then(|i| i.point_id_options) {
        Some(PointIdOptions::Uuid(text)) => {
            Ok(PointId::Uuid(text.parse().map_err(|_| Status::invalid_argument(format!("bad UUID {text}")))?))
        }
        Some(PointIdOptions::Num(n)) => Ok(PointId::NumId(n)),
        None => Err(Status::invalid_argument("point without id")),
    }
}

fn grpc_id(id: PointId) -> grpc::PointId {
    match id {
        PointId::Uuid(uuid) => grpc::PointId::from(uuid.to_string()),
        PointId::NumId(n) => grpc::PointId::from(n),
    }
}

/// A vector as the engine takes it: dense or sparse, in the current wire form or the
/// deprecated one (`data`, with `indices` for a sparse vector).
#[allow(deprecated)]
fn edge_vector(vector: grpc::Vector) -> Result<VectorInternal, Status> {
    match vector.vector {
        Some(grpc::vector::Vector::Dense(d)) => Ok(VectorInternal::Dense(d.data)),
        Some(grpc::vector::Vector::Sparse(s)) => sparse(s.indices, s.values),
        Some(_) => Err(unsupported("multi, document, image or object vectors")),
        None if vector.vectors_count.is_some() => Err(unsupported("multi vectors")),
        None => match vector.indices {
            Some(indices) => sparse(indices.data, vector.data),
            None => Ok(VectorInternal::Dense(vector.data)),
        },
    }
}

/// A sparse vector, refused as Qdrant refuses it: indices unique, one value for each.
fn sparse(indices: Vec<u32>, values: Vec<f32>) -> Result<VectorInternal, Status> {
    SparseVector::new(indices, values)
        .map(VectorInternal::Sparse)
        .map_err(|e| Status::invalid_argument(format!("Validation error: sparse vector: {e}")))
}

/// The engine's modifier for a gRPC one.
fn edge_modifier(modifier: Option<i32>) -> Result<Option<Modifier>, Status> {
    modifier
        .map(|m| match grpc::Modifier::try_from(m) {
            Ok(grpc::Modifier::None) => Ok(Modifier::None),
            Ok(grpc::Modifier::Idf) => Ok(Modifier::Idf),
            Err(_) => Err(Status::invalid_argument(format!("unknown sparse vector modifier {m}"))),
        })
        .transpose()
}

fn to_edge_json(payload: HashMap<String, grpc::Value>) -> Result<edge_json::Value, Status> {
    let json = serde_json::Value::from(qdrant_client::Payload::from(payload));
    edge_json::to_value(&json).map_err(internal)
}

fn to_grpc_payload(payload: Option<qdrant_edge::Payload>) -> Result<HashMap<String, grpc::Value>, Status> {
    let Some(payload) = payload else { return Ok(HashMap::new()) };
    let json: serde_json::Value =
        serde_json::to_value(edge_json::Value::Object(payload.0.into_iter().collect())).map_err(internal)?;
    Ok(qdrant_client::Payload::try_from(json).map_err(internal)?.into())
}

fn vector_output(vector: VectorInternal) -> Result<grpc::VectorOutput, Status> {
    use grpc::vector_output::Vector;
    let vector = match vector {
        VectorInternal::Dense(data) => Vector::Dense(grpc::DenseVector { data }),
        VectorInternal::Sparse(s) => Vector::Sparse(grpc::SparseVector { indices: s.indices, values: s.values }),
        VectorInternal::MultiDense(_) => return Err(unsupported("multi vectors")),
    };
    #[allow(deprecated)]
    Ok(grpc::VectorOutput { vector: Some(vector), ..Default::default() })
}

/// A point's vectors as Qdrant answers them: its one unnamed vector alone, or all of them by name.
/// A stored point as scroll and get answer it.
fn retrieved_point(
    id: PointId,
    payload: Option<qdrant_edge::Payload>,
    vector: Option<VectorStructInternal>,
) -> Result<grpc::RetrievedPoint, Status> {
    Ok(grpc::RetrievedPoint {
        id: Some(grpc_id(id)),
        payload: to_grpc_payload(payload)?,
        vectors: vectors_output(vector)?,
        ..Default::default()
    })
}

fn vectors_output(vector: Option<VectorStructInternal>) -> Result<Option<grpc::VectorsOutput>, Status> {
    use grpc::vectors_output::VectorsOptions;
    let options = match vector {
        None => return Ok(None),
        Some(VectorStructInternal::Single(v)) => VectorsOptions::Vector(vector_output(VectorInternal::Dense(v))?),
        Some(VectorStructInternal::Named(named)) => VectorsOptions::Vectors(grpc::NamedVectorsOutput {
            vectors: named.into_iter().map(|(name, v)| Ok((name, vector_output(v)?))).collect::<Result<_, Status>>()?,
        }),
        Some(VectorStructInternal::MultiDense(_)) => return Err(unsupported("multi vectors")),
    };
    Ok(Some(grpc::VectorsOutput { vectors_options: Some(options) }))
}

fn key(name: &str) -> Result<qdrant_edge::JsonPath, Status> {
    name.parse().map_err(|_| Status::invalid_argument(format!("bad payload key {name}")))
}

fn condition(condition: grpc::Condition) -> Result<Condition, Status> {
    use grpc::condition::ConditionOneOf;
    use grpc::r#match::MatchValue;
    match condition.condition_one_of {
        Some(ConditionOneOf::Field(field)) => {
            let key = key(&field.key)?;
            if let Some(m) = field.r#match {
                let m = match m.match_value {
                    Some(MatchValue::Keyword(k)) => Match::new_value(ValueVariants::String(k)),
                    Some(MatchValue::Integer(i)) => Match::new_value(ValueVariants::Integer(i)),
                    // Without a full-text index, the engine matches text as a substring.
                    Some(MatchValue::Text(t)) => Match::new_text(&t),
                    Some(MatchValue::Keywords(k)) => {
                        Match::new_any(AnyVariants::Strings(k.strings.into_iter().collect()))
                    }
                    Some(MatchValue::Integers(i)) => {
                        Match::new_any(AnyVariants::Integers(i.integers.into_iter().collect()))
                    }
                    _ => return Err(unsupported("this match condition")),
                };
                return Ok(Condition::Field(FieldCondition::new_match(key, m)));
            }
            if let Some(r) = field.range {
                let range = Range {
                    lt: r.lt.map(Into::into),
                    gt: r.gt.map(Into::into),
                    gte: r.gte.map(Into::into),
                    lte: r.lte.map(Into::into),
                };
                return Ok(Condition::Field(FieldCondition::new_range(key, range)));
            }
            Err(unsupported("this field condition"))
        }
        Some(ConditionOneOf::Filter(inner)) => Ok(Condition::Filter(filter(inner)?)),
        _ => Err(unsupported("this condition")),
    }
}

fn filter(filter: grpc::Filter) -> Result<Filter, Status> {
    if filter.min_should.is_some() {
        return Err(unsupported("min_should"));
    }
    let list = |conditions: Vec<grpc::Condition>| -> Result<Option<Vec<Condition>>, Status> {
        if conditions.is_empty() {
            return Ok(None);
        }
        conditions.into_iter().map(condition).collect::<Result<Vec<_>, _>>().map(Some)
    };
    Ok(Filter {
        should: list(filter.should)?,
        must: list(filter.must)?,
        must_not: list(filter.must_not)?,
        ..Default::default()
    })
}

/// Qdrant's `k` for `Fusion::Rrf` (its `DEFAULT_RRF_K`).
const RRF_K: usize = 2;

/// How a query or prefetch scores points: nearest to a dense or sparse vector (`using` names
/// it), or reciprocal-rank fusion of the prefetches.
fn scoring_query(query: grpc::Query, using: Option<String>) -> Result<ScoringQuery, Status> {
    use grpc::query::Variant;
    match query.variant {
        Some(Variant::Nearest(input)) => {
            let vector = match input.variant {
                Some(grpc::vector_input::Variant::Dense(d)) => VectorInternal::Dense(d.data),
                Some(grpc::vector_input::Variant::Sparse(s)) => sparse(s.indices, s.values)?,
                _ => return Err(unsupported("this query vector")),
            };
            Ok(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery { query: vector, using })))
        }
        Some(Variant::Fusion(fusion)) if fusion == grpc::Fusion::Rrf as i32 => {
            if using.is_some() {
                return Err(Status::invalid_argument("`using` is only allowed with a vector query"));
            }
            Ok(ScoringQuery::Fusion(Fusion::Rrf { k: RRF_K, weights: None }))
        }
        _ => Err(unsupported("queries other than nearest vector and RRF fusion")),
    }
}

fn prefetch(prefetch: grpc::PrefetchQuery) -> Result<Prefetch, Status> {
    let grpc::PrefetchQuery {
        prefetch: inner,
        query,
        using,
        filter: conditions,
        params,
        score_threshold,
        limit,
        lookup_from,
    } = prefetch;
    if params.is_some() || lookup_from.is_some() {
        return Err(unsupported("search params or lookups in prefetches"));
    }
    Ok(Prefetch {
        prefetches: inner.into_iter().map(self::prefetch).collect::<Result<_, _>>()?,
        query: query.map(|q| scoring_query(q, using)).transpose()?,
        limit: limit.unwrap_or(10) as usize,
        params: None,
        filter: conditions.map(filter).transpose()?,
        score_threshold: score_threshold.map(Into::into),
    })
}

fn done() -> grpc::PointsOperationResponse {
    grpc::PointsOperationResponse {
        result: Some(grpc::UpdateResult { operation_id: Some(0), status: grpc::UpdateStatus::Completed as i32 }),
        ..Default::default()
    }
}

fn with_payload(selector: Option<grpc::WithPayloadSelector>) -> Result<bool, Status> {
    use grpc::with_payload_selector::SelectorOptions;
    match selector.and_then(|s| s.selector_options) {
        None => Ok(false),
        Some(SelectorOptions::Enable(on)) => Ok(on),
        Some(_) => Err(unsupported("payload field selection")),
    }
}

fn with_vectors(selector: Option<grpc::WithVectorsSelector>) -> Result<bool, Status> {
    use grpc::with_vectors_selector::SelectorOptions;
    match selector.and_then(|s| s.selector_options) {
        None => Ok(false),
        Some(SelectorOptions::Enable(on)) => Ok(on),
        Some(_) => Err(unsupported("named vector selection")),
    }
}

#[tonic::async_trait]
impl grpc::qdrant_server::Qdrant for Service {
    async fn health_check(&self, _request: Request<grpc::HealthCheckRequest>) -> Reply<grpc::HealthCheckReply> {
        self.enter().await?;
        Ok(Response::new(grpc::HealthCheckReply {
            title: "ingest test server (qdrant-edge engine)".into(),
            // The first version that adds a vector to an existing collection (`create_vector_name`).
            version: "1.18.0".into(),
            commit: None,
        }))
    }
}

#[tonic::async_trait]
impl grpc::collections_server::Collections for Service {
    async fn collection_exists(
        &self,
        request: Request<grpc::CollectionExistsRequest>,
    ) -> Reply<grpc::CollectionExistsResponse> {
        self.enter().await?;
        // As Qdrant answers: an alias exists when its collection does.
        let exists = self.is_collection(&self.resolve(&request.into_inner().collection_name));
        Ok(Response::new(grpc::CollectionExistsResponse { result: Some(grpc::CollectionExists { exists }), time: 0.0 }))
    }

    async fn create(&self, request: Request<grpc::CreateCollection>) -> Reply<grpc::CollectionOperationResponse> {
        self.enter().await?;
        let request = request.into_inner();
        // One shard on one node: a cluster layout is recorded, for tests to check what was asked.
        *self.0.created_layout.lock().unwrap() =
            Some((request.shard_number, request.replication_factor, request.write_consistency_factor));
        let name = &request.collection_name;
        // Held to the end, so no alias of this name appears meanwhile.
        let aliases = self.0.aliases.lock().unwrap();
        if self.is_collection(name) {
            return Err(Status::already_exists(format!("Collection `{name}` already exists!")));
        }
        if aliases.contains_key(name) {
            return Err(Status::invalid_argument(format!(
                "Can't create collection with name {name}. Alias with the same name already exists"
            )));
        }
        let path = self.0.dir.join(name);
        let Some(grpc::vectors_config::Config::Params(params)) = request.vectors_config.and_then(|v| v.config) else {
            return Err(unsupported("collections without one unnamed dense vector"));
        };
        let distance = match grpc::Distance::try_from(params.distance) {
            Ok(grpc::Distance::Cosine) => Distance::Cosine,
            Ok(grpc::Distance::Dot) => Distance::Dot,
            Ok(grpc::Distance::Euclid) => Distance::Euclid,
            _ => return Err(unsupported("this distance")),
        };
        let mut config =
            EdgeConfigBuilder::new().vector("", EdgeVectorParamsBuilder::new(params.size as usize, distance).build());
        for (name, params) in request.sparse_vectors_config.map(|c| c.map).unwrap_or_default() {
            if params.index.is_some() {
                return Err(unsupported("sparse index settings"));
            }
            let mut sparse = EdgeSparseVectorParamsBuilder::new();
            if let Some(modifier) = edge_modifier(params.modifier)? {
                sparse = sparse.modifier(modifier);
            }
            config = config.sparse_vector(name, sparse.build());
        }
        std::fs::create_dir_all(&path).map_err(internal)?;
        let shard = EdgeShard::new(&path, config.build()).map_err(internal)?;
        self.0.shards.lock().unwrap().insert(request.collection_name, Arc::new(shard));
        drop(aliases);
        Ok(Response::new(grpc::CollectionOperationResponse { result: true, time: 0.0 }))
    }

    async fn get(&self, request: Request<grpc::GetCollectionInfoRequest>) -> Reply<grpc::GetCollectionInfoResponse> {
        self.enter().await?;
        let name = request.into_inner().collection_name;
        let shard = self.shard(&name)?;
        let config = shard.config();
        let params = config.vectors.get("").ok_or_else(|| unsupported("named vectors"))?;
        let distance = match params.distance {
            Distance::Cosine => grpc::Distance::Cosine,
            Distance::Dot => grpc::Distance::Dot,
            Distance::Euclid => grpc::Distance::Euclid,
            Distance::Manhattan => grpc::Distance::Manhattan,
        };
        let points = shard.count(CountRequest { filter: None, exact: true }).map_err(internal)? as u64;
        let vector_params =
            grpc::VectorParams { size: params.size as u64, distance: distance as i32, ..Default::default() };
        let sparse_vectors_config = (!config.sparse_vectors.is_empty()).then(|| grpc::SparseVectorConfig {
            map: config
                .sparse_vectors
                .iter()
                .map(|(name, sparse)| {
                    let modifier = sparse.modifier.map(|m| match m {
                        Modifier::None => grpc::Modifier::None as i32,
                        Modifier::Idf => grpc::Modifier::Idf as i32,
                    });
                    (name.clone(), grpc::SparseVectorParams { index: None, modifier })
                })
                .collect(),
        });
        let info = grpc::CollectionInfo {
            status: grpc::CollectionStatus::Green as i32,
            points_count: Some(points),
            config: Some(grpc::CollectionConfig {
                params: Some(grpc::CollectionParams {
                    vectors_config: Some(grpc::VectorsConfig {
                        config: Some(grpc::vectors_config::Config::Params(vector_params)),
                    }),
                    sparse_vectors_config,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        Ok(Response::new(grpc::GetCollectionInfoResponse { result: Some(info), time: 0.0 }))
    }

    async fn delete(&self, request: Request<grpc::DeleteCollection>) -> Reply<grpc::CollectionOperationResponse> {
        self.enter().await?;
        // As Qdrant does: the name is not resolved (an alias's name deletes nothing), and the
        // collection's aliases go with it.
        let name = request.into_inner().collection_name;
        let mut aliases = self.0.aliases.lock().unwrap();
        if aliases.values().any(|collection| *collection == name) {
            let mut kept = aliases.clone();
            kept.retain(|_, collection| *collection != name);
            save_aliases(&self.0.dir, &kept)?;
            *aliases = kept;
        }
        self.0.shards.lock().unwrap().remove(&name);
        drop(aliases);
        let path = self.0.dir.join(&name);
        let existed = path.exists();
        if existed {
            std::fs::remove_dir_all(&path).map_err(internal)?;
        }
        Ok(Response::new(grpc::CollectionOperationResponse { result: existed, time: 0.0 }))
    }

    async fn list(&self, _request: Request<grpc::ListCollectionsRequest>) -> Reply<grpc::ListCollectionsResponse> {
        Err(unsupported("list"))
    }

    async fn update(&self, _request: Request<grpc::UpdateCollection>) -> Reply<grpc::CollectionOperationResponse> {
        Err(unsupported("update"))
    }

    /// All the actions or none: they apply in order to a copy of the aliases, which replaces
    /// them only if every one succeeds.
    async fn update_aliases(&self, request: Request<grpc::ChangeAliases>) -> Reply<grpc::CollectionOperationResponse> {
        use grpc::alias_operations::Action;
        self.enter().await?;
        let actions = request.into_inner().actions;
        let mut aliases = self.0.aliases.lock().unwrap();
        let mut changed = aliases.clone();
        for action in actions {
            match action.action {
                // As Qdrant does: the target is a collection, not an alias; an alias already
                // there is moved to it.
                Some(Action::CreateAlias(grpc::CreateAlias { collection_name, alias_name })) => {
                    if !self.is_collection(&collection_name) {
                        return Err(Status::not_found(format!("Collection `{collection_name}` doesn't exist!")));
                    }
                    if self.is_collection(&alias_name) {
                        return Err(Status::invalid_argument(format!("Collection `{alias_name}` already exists!")));
                    }
                    changed.insert(alias_name, collection_name);
                }
                // As Qdrant does: deleting an alias that is not there succeeds.
                Some(Action::DeleteAlias(grpc::DeleteAlias { alias_name })) => {
                    changed.remove(&alias_name);
                }
                Some(Action::RenameAlias(grpc::RenameAlias { old_alias_name, new_alias_name })) => {
                    let collection = changed
                        .remove(&old_alias_name)
                        .ok_or_else(|| Status::not_found(format!("Alias {old_alias_name} does not exists!")))?;
                    changed.insert(new_alias_name, collection);
                }
                None => return Err(Status::invalid_argument("Malformed AliasOperation type")),
            }
        }
        save_aliases(&self.0.dir, &changed)?;
        *aliases = changed;
        Ok(Response::new(grpc::CollectionOperationResponse { result: true, time: 0.0 }))
    }

    /// The aliases of a collection named directly (as Qdrant does, an alias's name lists none).
    async fn list_collection_aliases(
        &self,
        request: Request<grpc::ListCollectionAliasesRequest>,
    ) -> Reply<grpc::ListAliasesResponse> {
        self.enter().await?;
        let name = request.into_inner().collection_name;
        Ok(Response::new(grpc::ListAliasesResponse { aliases: self.alias_list(Some(&name)), time: 0.0 }))
    }

    async fn list_aliases(&self, _request: Request<grpc::ListAliasesRequest>) -> Reply<grpc::ListAliasesResponse> {
        self.enter().await?;
        Ok(Response::new(grpc::ListAliasesResponse { aliases: self.alias_list(None), time: 0.0 }))
    }

    async fn collection_cluster_info(
        &self,
        _request: Request<grpc::CollectionClusterInfoRequest>,
    ) -> Reply<grpc::CollectionClusterInfoResponse> {
        Err(unsupported("collection_cluster_info"))
    }

    async fn update_collection_cluster_setup(
        &self,
        _request: Request<grpc::UpdateCollectionClusterSetupRequest>,
    ) -> Reply<grpc::UpdateCollectionClusterSetupResponse> {
        Err(unsupported("update_collection_cluster_setup"))
    }

    async fn create_shard_key(
        &self,
        _request: Request<grpc::CreateShardKeyRequest>,
    ) -> Reply<grpc::CreateShardKeyResponse> {
        Err(unsupported("create_shard_key"))
    }

    async fn delete_shard_key(
        &self,
        _request: Request<grpc::DeleteShardKeyRequest>,
    ) -> Reply<grpc::DeleteShardKeyResponse> {
        Err(unsupported("delete_shard_key"))
    }

    async fn list_shard_keys(
        &self,
        _request: Request<grpc::ListShardKeysRequest>,
    ) -> Reply<grpc::ListShardKeysResponse> {
        Err(unsupported("list_shard_keys"))
    }
}

#[tonic::async_trait]
impl grpc::points_server::Points for Service {
    async fn upsert(&self, request: Request<grpc::UpsertPoints>) -> Reply<grpc::PointsOperationResponse> {
        self.enter().await?;
        let request = request.into_inner();
        let shard = self.shard(&request.collection_name)?;
        let mut points = Vec::with_capacity(request.points.len());
        for point in request.points {
            let id = edge_id(point.id)?;
            let vectors = match point.vectors.and_then(|v| v.vectors_options) {
                Some(grpc::vectors::VectorsOptions::Vector(v)) => match edge_vector(v)? {
                    VectorInternal::Dense(dense) => VectorStructInternal::Single(dense),
                    _ => return Err(unsupported("an unnamed vector that is not dense")),
                },
                Some(grpc::vectors::VectorsOptions::Vectors(named)) => VectorStructInternal::Named(
                    named
                        .vectors
                        .into_iter()
                        .map(|(name, v)| Ok((name, edge_vector(v)?)))
                        .collect::<Result<_, Status>>()?,
                ),
                None => return Err(Status::invalid_argument("point without vectors")),
            };
            let struct_ = PointStruct::new(id, vectors, to_edge_json(point.payload)?);
            points.push(struct_.into());
        }
        let crash = self.0.faults.crash_next_upsert.lock().unwrap().take();
        if let Some(down_ms) = crash {
            // Apply the first half, then die without answering: the client sees the connection drop.
            let half: Vec<_> = points.drain(..points.len() / 2).collect();
            let upsert = PointOperations::UpsertPoints(PointInsertOperations::PointsList(half));
            self.apply(&shard, UpdateOperation::PointOperation(upsert))?;
            let restart_after = Some(Duration::from_millis(down_ms));
            self.0.control.lock().unwrap().send(Control::Crash { restart_after }).unwrap();
            std::future::pending::<()>().await;
        }
        let upsert = PointOperations::UpsertPoints(PointInsertOperations::PointsList(points));
        self.apply(&shard, UpdateOperation::PointOperation(upsert))?;
        self.0.upserts.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(done()))
    }

    async fn delete(&self, request: Request<grpc::DeletePoints>) -> Reply<grpc::PointsOperationResponse> {
        use grpc::points_selector::PointsSelectorOneOf;
        self.enter().await?;
        let request = request.into_inner();
        let shard = self.shard(&request.collection_name)?;
        let operation = match request.points.and_then(|p| p.points_selector_one_of) {
            Some(PointsSelectorOneOf::Filter(f)) => PointOperations::DeletePointsByFilter(filter(f)?),
            Some(PointsSelectorOneOf::Points(list)) => PointOperations::DeletePoints {
                ids: list.ids.into_iter().map(|id| edge_id(Some(id))).collect::<Result<_, _>>()?,
            },
            None => return Err(Status::invalid_argument("no points selector")),
        };
        self.apply(&shard, UpdateOperation::PointOperation(operation))?;
        Ok(Response::new(done()))
    }

    async fn count(&self, request: Request<grpc::CountPoints>) -> Reply<grpc::CountResponse> {
        self.enter().await?;
        let request = request.into_inner();
        let shard = self.shard(&request.collection_name)?;
        let filter = request.filter.map(filter).transpose()?;
        let count = shard.count(CountRequest { filter, exact: true }).map_err(internal)? as u64;
        Ok(Response::new(grpc::CountResponse { result: Some(grpc::CountResult { count }), ..Default::default() }))
    }

    async fn scroll(&self, request: Request<grpc::ScrollPoints>) -> Reply<grpc::ScrollResponse> {
        self.enter().await?;
        let request = request.into_inner();
        if request.order_by.is_some() {
            return Err(unsupported("order_by"));
        }
        let shard = self.shard(&request.collection_name)?;
        let scroll = ScrollRequest {
            offset: request.offset.map(|id| edge_id(Some(id))).transpose()?,
            limit: Some(request.limit.unwrap_or(10) as usize),
            filter: request.filter.map(filter).transpose()?,
            with_payload: Some(WithPayloadInterface::Bool(with_payload(request.with_payload)?)),
            with_vector: WithVector::Bool(with_vectors(request.with_vectors)?),
            order_by: None,
        };
        let (records, next) = shard.scroll(scroll).map_err(internal)?;
        let result = records
            .into_iter()
            .map(|Record { id, payload, vector, .. }| retrieved_point(id, payload, vector))
            .collect::<Result<Vec<_>, Status>>()?;
        Ok(Response::new(grpc::ScrollResponse { next_page_offset: next.map(grpc_id), result, ..Default::default() }))
    }

    async fn query(&self, request: Request<grpc::QueryPoints>) -> Reply<grpc::QueryResponse> {
        self.enter().await?;
        let request = request.into_inner();
        if request.offset.unwrap_or(0) != 0 || request.lookup_from.is_some() {
            return Err(unsupported("offsets or lookups in queries"));
        }
        let shard = self.shard(&request.collection_name)?;
        let query = QueryRequest {
            prefetches: request.prefetch.into_iter().map(prefetch).collect::<Result<_, _>>()?,
            query: request.query.map(|q| scoring_query(q, request.using)).transpose()?,
            filter: request.filter.map(filter).transpose()?,
            score_threshold: request.score_threshold.map(Into::into),
            limit: request.limit.unwrap_or(10) as usize,
            offset: 0,
            params: None,
            with_vector: WithVector::Bool(with_vectors(request.with_vectors)?),
            with_payload: WithPayloadInterface::Bool(with_payload(request.with_payload)?),
        };
        let scored = shard.query(query).map_err(internal)?;
        let result = scored
            .into_iter()
            .map(|p| {
                Ok(grpc::ScoredPoint {
                    id: Some(grpc_id(p.id)),
                    payload: to_grpc_payload(p.payload)?,
                    score: p.score,
                    version: p.version,
                    vectors: vectors_output(p.vector)?,
                    ..Default::default()
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        Ok(Response::new(grpc::QueryResponse { result, ..Default::default() }))
    }

    async fn create_field_index(
        &self,
        request: Request<grpc::CreateFieldIndexCollection>,
    ) -> Reply<grpc::PointsOperationResponse> {
        self.enter().await?;
        let request = request.into_inner();
        let shard = self.shard(&request.collection_name)?;
        let kind = match request.field_type.map(grpc::FieldType::try_from) {
            Some(Ok(grpc::FieldType::Keyword)) => PayloadSchemaType::Keyword,
            Some(Ok(grpc::FieldType::Integer)) => PayloadSchemaType::Integer,
            _ => return Err(unsupported("this payload index type")),
        };
        let create = CreateIndex {
            field_name: key(&request.field_name)?,
            field_schema: Some(PayloadFieldSchema::FieldType(kind)),
        };
        self.apply(&shard, UpdateOperation::FieldIndexOperation(FieldIndexOperations::CreateIndex(create)))?;
        Ok(Response::new(done()))
    }

    async fn get(&self, request: Request<grpc::GetPoints>) -> Reply<grpc::GetResponse> {
        self.enter().await?;
        let request = request.into_inner();
        let shard = self.shard(&request.collection_name)?;
        let ids = request.ids.into_iter().map(|id| edge_id(Some(id))).collect::<Result<Vec<_>, Status>>()?;
        let records = shard
            .retrieve(
                &ids,
                Some(WithPayloadInterface::Bool(with_payload(request.with_payload)?)),
                Some(WithVector::Bool(with_vectors(request.with_vectors)?)),
            )
            .map_err(internal)?;
        let result = records
            .into_iter()
            .map(|record| retrieved_point(record.id, record.payload, record.vector))
            .collect::<Result<Vec<_>, Status>>()?;
        Ok(Response::new(grpc::GetResponse { result, ..Default::default() }))
    }

    async fn update_vectors(
        &self,
        _request: Request<grpc::UpdatePointVectors>,
    ) -> Reply<grpc::PointsOperationResponse> {
        Err(unsupported("update_vectors"))
    }

    async fn delete_vectors(
        &self,
        _request: Request<grpc::DeletePointVectors>,
    ) -> Reply<grpc::PointsOperationResponse> {
        Err(unsupported("delete_vectors"))
    }

    async fn set_payload(&self, _request: Request<grpc::SetPayloadPoints>) -> Reply<grpc::PointsOperationResponse> {
        Err(unsupported("set_payload"))
    }

    async fn overwrite_payload(
        &self,
        _request: Request<grpc::SetPayloadPoints>,
    ) -> Reply<grpc::PointsOperationResponse> {
        Err(unsupported("overwrite_payload"))
    }

    async fn delete_payload(
        &self,
        _request: Request<grpc::DeletePayloadPoints>,
    ) -> Reply<grpc::PointsOperationResponse> {
        Err(unsupported("delete_payload"))
    }

    async fn clear_payload(&self, _request: Request<grpc::ClearPayloadPoints>) -> Reply<grpc::PointsOperationResponse> {
        Err(unsupported("clear_payload"))
    }

    async fn delete_field_index(
        &self,
        _request: Request<grpc::DeleteFieldIndexCollection>,
    ) -> Reply<grpc::PointsOperationResponse> {
        Err(unsupported("delete_field_index"))
    }

    async fn create_vector_name(
        &self,
        request: Request<grpc::CreateVectorNameRequest>,
    ) -> Reply<grpc::PointsOperationResponse> {
        self.enter().await?;
        let request = request.into_inner();
        let shard = self.shard(&request.collection_name)?;
        let Some(grpc::create_vector_name_request::VectorConfig::SparseConfig(config)) = request.vector_config else {
            return Err(unsupported("adding vectors other than sparse ones"));
        };
        if config.datatype.is_some() {
            return Err(unsupported("sparse vector datatypes"));
        }
        let modifier = edge_modifier(config.modifier)?;
        let name = request.vector_name;
        // As Qdrant answers: the same vector again changes nothing; a different one under a
        // name in use is refused.
        {
            let existing = shard.config();
            if existing.vectors.contains_key(&name) {
                return Err(Status::invalid_argument(format!("Vector `{name}` already exists as a dense vector")));
            }
            if let Some(sparse) = existing.sparse_vectors.get(&name) {
                if sparse.modifier != modifier {
                    return Err(Status::invalid_argument(format!(
                        "Sparse vector `{name}` already exists with a different configuration"
                    )));
                }
                return Ok(Response::new(done()));
            }
        }
        let create = CreateVectorName {
            vector_name: name,
            config: VectorNameConfig::sparse(SparseVectorConfig { modifier, datatype: None }),
        };
        self.apply(&shard, UpdateOperation::VectorNameOperation(VectorNameOperations::CreateVectorName(create)))?;
        Ok(Response::new(done()))
    }

    async fn delete_vector_name(
        &self,
        _request: Request<grpc::DeleteVectorNameRequest>,
    ) -> Reply<grpc::PointsOperationResponse> {
        Err(unsupported("delete_vector_name"))
    }

    async fn search(&self, _request: Request<grpc::SearchPoints>) -> Reply<grpc::SearchResponse> {
        Err(unsupported("search"))
    }

    async fn search_batch(&self, _request: Request<grpc::SearchBatchPoints>) -> Reply<grpc::SearchBatchResponse> {
        Err(unsupported("search_batch"))
    }

    async fn search_groups(&self, _request: Request<grpc::SearchPointGroups>) -> Reply<grpc::SearchGroupsResponse> {
        Err(unsupported("search_groups"))
    }

    async fn recommend(&self, _request: Request<grpc::RecommendPoints>) -> Reply<grpc::RecommendResponse> {
        Err(unsupported("recommend"))
    }

    async fn recommend_batch(
        &self,
        _request: Request<grpc::RecommendBatchPoints>,
    ) -> Reply<grpc::RecommendBatchResponse> {
        Err(unsupported("recommend_batch"))
    }

    async fn recommend_groups(
        &self,
        _request: Request<grpc::RecommendPointGroups>,
    ) -> Reply<grpc::RecommendGroupsResponse> {
        Err(unsupported("recommend_groups"))
    }

    async fn discover(&self, _request: Request<grpc::DiscoverPoints>) -> Reply<grpc::DiscoverResponse> {
        Err(unsupported("discover"))
    }

    async fn discover_batch(&self, _request: Request<grpc::DiscoverBatchPoints>) -> Reply<grpc::DiscoverBatchResponse> {
        Err(unsupported("discover_batch"))
    }

    async fn update_batch(&self, _request: Request<grpc::UpdateBatchPoints>) -> Reply<grpc::UpdateBatchResponse> {
        Err(unsupported("update_batch"))
    }

    async fn query_batch(&self, _request: Request<grpc::QueryBatchPoints>) -> Reply<grpc::QueryBatchResponse> {
        Err(unsupported("query_batch"))
    }

    async fn query_groups(&self, _request: Request<grpc::QueryPointGroups>) -> Reply<grpc::QueryGroupsResponse> {
        Err(unsupported("query_groups"))
    }

    async fn facet(&self, _request: Request<grpc::FacetCounts>) -> Reply<grpc::FacetResponse> {
        Err(unsupported("facet"))
    }

    async fn search_matrix_pairs(
        &self,
        _request: Request<grpc::SearchMatrixPoints>,
    ) -> Reply<grpc::SearchMatrixPairsResponse> {
        Err(unsupported("search_matrix_pairs"))
    }

    async fn search_matrix_offsets(
        &self,
        _request: Request<grpc::SearchMatrixPoints>,
    ) -> Reply<grpc::SearchMatrixOffsetsResponse> {
        Err(unsupported("search_matrix_offsets"))
    }
}
