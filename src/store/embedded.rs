//! # Embedded vector store
//!
//! In: the same calls as any [`VectorIndex`]. Out: points stored by `qdrant-edge`, Qdrant's
//! in-process engine (the server's segment, WAL and HNSW code), under
//! `<data dir>/qdrant/<collection>/`. No server, no network.
//!
//! The engine's calls are blocking; they run on tokio's blocking pool. The collection is
//! loaded on first use, not when the index is opened: loading reads every segment (0.13 s
//! at 20,000 points, growing with the collection), which a re-run with nothing to change
//! never needs.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use async_trait::async_trait;
use qdrant_edge::external::serde_json as edge_json;
use qdrant_edge::{
    AnyVariants, Condition, CountRequest, CreateIndex, CreateVectorName, Distance, EdgeConfig, EdgeConfigBuilder,
    EdgeOptimizersConfig, EdgeShard, EdgeSparseVectorParamsBuilder, EdgeVectorParamsBuilder, FieldCondition,
    FieldIndexOperations, Filter, Fusion, JsonPath, Match, Modifier, NamedQuery, Payload, PayloadFieldSchema,
    PayloadSchemaType, PointId, PointInsertOperations, PointOperations, PointStruct, Prefetch, QueryEnum, QueryRequest,
    Range, Record, ScoringQuery, ScrollRequest, SparseVectorConfig, UpdateOperation, ValueVariants, Vector,
    VectorInternal, VectorNameConfig, VectorNameOperations, VectorStructInternal, Vectors, WalOptions,
    WithPayloadInterface, WithVector,
};
use tokio::sync::RwLock;
use uuid::Uuid;

use super::{Hit, Point, PointFilter, PointPayload, Query, ScrollPage, StoredPoint, VectorIndex, SPARSE_VECTOR};
use crate::sparse::SparseVector;

/// A collection in the embedded engine.
pub struct EmbeddedIndex {
    collection: String,
    path: PathBuf,
    /// The loaded shard; `None` until the collection is first used, or while it does not
    /// exist. Writers take the lock shared: the engine serialises its own updates; only
    /// load, create and drop take it exclusively.
    shard: RwLock<Option<Arc<EdgeShard>>>,
    /// Serialises writes: the engine's `flush` panics if another update holds its WAL.
    writes: Arc<std::sync::Mutex<()>>,
    /// Whether points changed since the collection was opened: [`VectorIndex::finish`]
    /// builds the index only then. (Every write is flushed as it is applied, so a process
    /// that died before `finish` lost no points; its segments are optimised by the next run
    /// that changes something.)
    changed: AtomicBool,
    /// Set for a long-lived reader (a search service): it never asks a writer to let go of
    /// the collection, and lets go of it when a writer asks ([`VectorIndex::let_go_if_asked`]),
    /// reading a copy meanwhile.
    reader: Option<ReaderCopy>,
}

/// The copy a reader reads while a writer holds the collection: its directory, or `None`
/// while the reader reads the collection itself.
#[derive(Default)]
struct ReaderCopy {
    copy: std::sync::Mutex<Option<PathBuf>>,
}

impl EmbeddedIndex {
    /// Opens (without creating, and without loading yet) `collection` under `data_dir`.
    pub fn open(data_dir: &Path, collection: &str) -> Self {
        Self {
            collection: collection.to_string(),
            path: data_dir.join("qdrant").join(collection),
            shard: RwLock::new(None),
            writes: Arc::new(std::sync::Mutex::new(())),
            changed: AtomicBool::new(false),
            reader: None,
        }
    }

    /// Opens `collection` for a long-lived process that only reads it: it lets go of the
    /// collection to any process that asks for it, reading a copy until that process ends.
    /// Copies that readers killed before they could remove them are removed.
    pub fn open_reader(data_dir: &Path, collection: &str) -> Self {
        let index = Self { reader: Some(ReaderCopy::default()), ..Self::open(data_dir, collection) };
        let prefix = format!(".{collection}.copy-");
        if let Ok(entries) = std::fs::read_dir(data_dir.join("qdrant")) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let owner = name.strip_prefix(&prefix).and_then(|pid| pid.parse::<u32>().ok());
                // SAFETY: signal 0 sends nothing; it only asks whether the process exists.
                if owner.is_some_and(|pid| unsafe { libc::kill(pid as libc::pid_t, 0) } != 0) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        index
    }

    /// Whether the collection exists on disk (loaded or not).
    fn exists_on_disk(&self) -> bool {
        self.path.join("edge_config.json").is_file()
    }

    /// The shard, loaded on first use.
    async fn shard(&self) -> Result<Arc<EdgeShard>> {
        if let Some(shard) = self.shard.read().await.as_ref() {
            return Ok(shard.clone());
        }
        let mut guard = self.shard.write().await;
        if let Some(shard) = guard.as_ref() {
            return Ok(shard.clone());
        }
        if !self.exists_on_disk() {
            bail!(
                "collection {:?} does not exist yet; run `ingest DIR --collection {}` first",
                self.collection,
                self.collection
            );
        }
        // Another process holding the collection (a search service, which reads it) is
        // asked to let go of it, and waited for.
        let asked_until = Instant::now() + HELD_WAIT;
        let shard = loop {
            let path = self.path.clone();
            let loaded = tokio::task::spawn_blocking(move || EdgeShard::load(&path, None))
                .await
                .context("embedded store task failed")?;
            match loaded {
                Ok(shard) => break shard,
                Err(error) if error.to_string().contains("WouldBlock") && self.reader.is_some() => bail!(
                    "the embedded collection at {} is being written by another ingest process; it can be read again \
                     when that process ends",
                    self.path.display()
                ),
                Err(error) if error.to_string().contains("WouldBlock") => self.wait_for_holder(asked_until).await?,
                Err(error) => bail!("cannot open the embedded collection at {}: {error}", self.path.display()),
            }
        };
        if shard.config().optimizers != optimizers() {
            shard.set_optimizers_config(optimizers()).map_err(edge_error)?;
        }
        let shard = Arc::new(shard);
        *guard = Some(shard.clone());
        Ok(shard)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&EdgeShard) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let shard = self.shard().await?;
        tokio::task::spawn_blocking(move || work(&shard)).await.context("embedded store task failed")?
    }
}

impl EmbeddedIndex {
    /// Takes the lock the engine keeps on the collection's write-ahead log while it has the
    /// collection loaded, asking the process that holds it to let go, as a load does; `None`
    /// when the collection has no log.
    async fn hold_write_ahead_log(&self) -> Result<Option<std::fs::File>> {
        let wal = self.path.join("wal");
        let asked_until = Instant::now() + HELD_WAIT;
        loop {
            let log = match std::fs::File::open(&wal) {
                Ok(log) => log,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(error) => return Err(error).with_context(|| format!("opening {}", wal.display())),
            };
            if log.try_lock().is_ok() {
                return Ok(Some(log));
            }
            self.wait_for_holder(asked_until).await?;
        }
    }

    /// A reader's turn ([`VectorIndex::let_go_if_asked`]): while it reads the collection and
    /// another process asks for it, copy the collection, read the copy, and let go; while it
    /// reads a copy and no living process asks any more, read the collection again (once it
    /// loads) and remove the copy.
    async fn take_turns(&self, reader: &ReaderCopy) -> Result<()> {
        let wanted = wanted_by_another(&self.path).is_some();
        let copy = reader.copy.lock().map_err(|_| anyhow!("a reader's copy lock was poisoned"))?.clone();
        match (wanted, copy) {
            (true, None) => {
                // Nothing loaded, nothing held.
                let Some(own) = self.shard.read().await.clone() else {
                    return Ok(());
                };
                // Reads go on from the collection while it is copied: nothing writes it meanwhile.
                let copy = self.path.with_file_name(format!(".{}.copy-{}", self.collection, std::process::id()));
                let (from, to) = (self.path.clone(), copy.clone());
                let copied = tokio::task::spawn_blocking(move || {
                    let _ = std::fs::remove_dir_all(&to);
                    copy_dir(&from, &to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
                    EdgeShard::load(&to, None).map_err(edge_error)
                })
                .await
                .context("embedded store task failed")??;
                *self.shard.write().await = Some(Arc::new(copied));
                *reader.copy.lock().map_err(|_| anyhow!("a reader's copy lock was poisoned"))? = Some(copy);
                // The collection is let go of once the reads still holding it end.
                drop(own);
            }
            (false, Some(copy)) => {
                let path = self.path.clone();
                let loaded = tokio::task::spawn_blocking(move || EdgeShard::load(&path, None))
                    .await
                    .context("embedded store task failed")?;
                // Still held (a writer that has not asked): the copy serves until it lets go.
                let Ok(own) = loaded else {
                    return Ok(());
                };
                let read_before = self.shard.write().await.replace(Arc::new(own));
                *reader.copy.lock().map_err(|_| anyhow!("a reader's copy lock was poisoned"))? = None;
                // The copy goes once the reads still on it have ended and it is closed: the
                // engine writes its files as it closes.
                tokio::task::spawn_blocking(move || {
                    let mut last = read_before;
                    while let Some(shard) = last {
                        match Arc::try_unwrap(shard) {
                            Ok(closing) => {
                                drop(closing);
                                last = None;
                            }
                            Err(shared) => {
                                last = Some(shared);
                                std::thread::sleep(HELD_RETRY);
                            }
                        }
                    }
                    let _ = std::fs::remove_dir_all(&copy);
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// Asks the process holding the collection to let go of it, and waits a moment before
    /// the next try; an error once `asked_until` has passed.
    async fn wait_for_holder(&self, asked_until: Instant) -> Result<()> {
        if Instant::now() >= asked_until {
            bail!(
                "the embedded collection at {} is in use by another ingest process, which did not let go of it \
                 within {} s; wait for it to finish, or stop it",
                self.path.display(),
                HELD_WAIT.as_secs()
            );
        }
        ask_to_let_go(&self.path);
        tokio::time::sleep(HELD_RETRY).await;
        Ok(())
    }

    /// Like [`Self::blocking`], one writer at a time.
    async fn writing<T: Send + 'static>(
        &self,
        work: impl FnOnce(&EdgeShard) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let writes = self.writes.clone();
        self.blocking(move |shard| {
            let _turn = writes.lock().map_err(|_| anyhow!("an earlier write to the embedded engine panicked"))?;
            work(shard)
        })
        .await
    }

    /// Exact number of points matching `filter` (all points without one); 0 before the
    /// collection exists.
    async fn count_matching(&self, filter: Option<Filter>) -> Result<u64> {
        if !self.exists().await? {
            return Ok(0);
        }
        self.blocking(move |shard| Ok(shard.count(CountRequest { filter, exact: true }).map_err(edge_error)? as u64))
            .await
    }

    /// Applies a point operation and flushes it to disk, one writer at a time.
    async fn apply(&self, operation: PointOperations) -> Result<()> {
        self.changed.store(true, Ordering::SeqCst);
        let path = self.path.clone();
        self.writing(move |shard| {
            shard.update(UpdateOperation::PointOperation(operation)).map_err(edge_error)?;
            shard.flush();
            release_stored_pages(&path);
            Ok(())
        })
        .await
    }
}

/// Asks the kernel to take back the resident pages of the collection's vector and payload
/// files, which the engine maps into this process. Without this an ingest keeps every vector
/// it wrote resident (1.5 KB a point: 150 MiB at 100,000 points) although nothing reads them
/// until a search. The engine maps these files shared and flushes every write as it is
/// applied, so their pages are clean copies of the files: the kernel drops them at no cost,
/// and a later read faults them back in. `MADV_PAGEOUT` never changes what memory holds, so a
/// range that was unmapped or reused since `/proc/self/maps` was read comes to no harm; where
/// the kernel does not take the hint, nothing changes.
fn release_stored_pages(collection_dir: &Path) {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else { return };
    for line in maps.lines() {
        // "start-end perms offset device inode      path"; the path may hold spaces.
        let fields: Vec<&str> = line.splitn(6, ' ').collect();
        let [range, perms, _, _, _, path] = fields[..] else { continue };
        let path = Path::new(path.trim_start());
        let stored =
            ["vector_storage", "payload_storage"].iter().any(|part| path.components().any(|c| c.as_os_str() == *part));
        if !perms.ends_with('s') || !stored || !path.starts_with(collection_dir) {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else { continue };
        let (Ok(start), Ok(end)) = (usize::from_str_radix(start, 16), usize::from_str_radix(end, 16)) else { continue };
        // SAFETY: advice only; MADV_PAGEOUT leaves the range's contents as they are.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT) };
    }
}

/// Copies the directory `from` to `to`, which must not exist, with everything under it.
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// How long a process waits for an embedded collection that another holds.
const HELD_WAIT: Duration = Duration::from_secs(60);

/// How often it tries again meanwhile.
const HELD_RETRY: Duration = Duration::from_millis(100);

/// The file beside the collection `collection_dir` in which a process that waits for it
/// writes its process id: `<collection>.wanted`.
fn wanted_file(collection_dir: &Path) -> PathBuf {
    let name = collection_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    collection_dir.with_file_name(format!("{name}.wanted"))
}

/// Tells whoever holds the collection `collection_dir` that this process waits for it
/// (see [`wanted_by_another`]). Best effort: a process that cannot write the file waits all
/// the same.
fn ask_to_let_go(collection_dir: &Path) {
    let _ = std::fs::write(wanted_file(collection_dir), std::process::id().to_string());
}

/// The id of another living process waiting for the collection `collection_dir`; `None`
/// when none is (a file left by a process that has ended is removed).
pub(super) fn wanted_by_another(collection_dir: &Path) -> Option<u32> {
    let file = wanted_file(collection_dir);
    let pid: u32 = std::fs::read_to_string(&file).ok()?.trim().parse().ok()?;
    // SAFETY: signal 0 sends nothing; it only asks whether the process exists.
    let alive = pid != std::process::id() && unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
    if !alive {
        let _ = std::fs::remove_file(&file);
    }
    alive.then_some(pid)
}

/// How the engine optimises the collection: it merges segments and drops deleted points, but
/// builds no HNSW index, so search is exact, over every vector. Building the index is what
/// made an embedded job's end slow and heavy: at 100,000 points it took minutes and over
/// 400 MiB more memory, for searches that take milliseconds without it (docs/performance.md has the
/// figures). Collections that need an index belong on a Qdrant server.
fn optimizers() -> EdgeOptimizersConfig {
    EdgeOptimizersConfig { indexing_threshold: Some(0), ..EdgeOptimizersConfig::default() }
}

/// The write-ahead log's segment size. Every write is flushed as it is applied, so the log
/// never holds more than the batch in flight; the engine's 32 MiB default only kept that
/// much of a mapped file resident. A larger batch grows its segment to fit.
const WAL_SEGMENT_BYTES: usize = 4 << 20;

fn wal_options() -> WalOptions {
    WalOptions { segment_capacity: WAL_SEGMENT_BYTES, ..WalOptions::default() }
}

fn edge_error(error: qdrant_edge::OperationError) -> anyhow::Error {
    anyhow!("embedded Qdrant: {error}")
}

/// The payload indexes every collection has: `doc_id` and `chunk_index` to find a file's
/// points, `ext` and `analyzer` for filters.
const PAYLOAD_INDEXES: [(&str, PayloadSchemaType); 4] = [
    ("doc_id", PayloadSchemaType::Keyword),
    ("chunk_index", PayloadSchemaType::Integer),
    ("ext", PayloadSchemaType::Keyword),
    ("analyzer", PayloadSchemaType::Keyword),
];

fn create_payload_indexes(shard: &EdgeShard) -> Result<()> {
    for (name, kind) in PAYLOAD_INDEXES {
        shard
            .update(UpdateOperation::FieldIndexOperation(FieldIndexOperations::CreateIndex(CreateIndex {
                field_name: field(name),
                field_schema: Some(PayloadFieldSchema::FieldType(kind)),
            })))
            .map_err(edge_error)?;
    }
    Ok(())
}

/// A payload key; only called with the constant, valid keys of [`PointPayload`].
fn field(name: &str) -> JsonPath {
    name.parse().expect("payload keys are valid JSON paths")
}

fn doc_filter(doc_id: &str) -> Condition {
    Condition::Field(FieldCondition::new_match(
        field("doc_id"),
        Match::new_value(ValueVariants::String(doc_id.to_string())),
    ))
}

/// The points of any of `doc_ids` (at least one).
fn documents_filter(doc_ids: &[String]) -> Filter {
    let mut filter = Filter::new_should(doc_filter(&doc_ids[0]));
    filter.should.get_or_insert_with(Vec::new).extend(doc_ids[1..].iter().map(|d| doc_filter(d)));
    filter
}

/// The points of any of `doc_ids` (at least one) whose `chunk_index` is `from` or more.
fn tail_filter(doc_ids: &[String], from: u32) -> Filter {
    let mut filter = Filter::new_must(Condition::Filter(documents_filter(doc_ids)));
    let range = Range { gte: Some((from as f64).into()), gt: None, lt: None, lte: None };
    filter
        .must
        .get_or_insert_with(Vec::new)
        .push(Condition::Field(FieldCondition::new_range(field("chunk_index"), range)));
    filter
}

fn edge_sparse(sparse: SparseVector) -> Result<Vector> {
    Vector::new_sparse(sparse.indices, sparse.values).map_err(edge_error)
}

fn to_edge_point(point: Point) -> Result<PointStruct> {
    let payload = edge_json::to_value(&point.payload).context("encoding payload")?;
    let vectors =
        Vectors::new_named([("", Vector::new_dense(point.vector)), (SPARSE_VECTOR, edge_sparse(point.sparse)?)]);
    Ok(PointStruct::new(PointId::Uuid(point.id), vectors, payload))
}

fn from_record(id: PointId, payload: Option<Payload>, vector: Option<VectorStructInternal>) -> Result<StoredPoint> {
    let PointId::Uuid(id) = id else { bail!("point {id} does not have a UUID id") };
    let payload = payload.with_context(|| format!("point {id} has no payload"))?;
    let payload: PointPayload = edge_json::from_value(edge_json::Value::Object(payload.0.into_iter().collect()))
        .with_context(|| format!("point {id} has an unexpected payload"))?;
    let (vector, sparse) = match vector {
        None => (Vec::new(), SparseVector::default()),
        Some(VectorStructInternal::Single(v)) => (v, SparseVector::default()),
        Some(VectorStructInternal::Named(mut named)) => {
            let dense = match named.remove("") {
                Some(VectorInternal::Dense(v)) => v,
                _ => bail!("point {id} has no dense default vector"),
            };
            let sparse = match named.remove(SPARSE_VECTOR) {
                Some(VectorInternal::Sparse(v)) => SparseVector { indices: v.indices, values: v.values },
                None => SparseVector::default(),
                Some(_) => bail!("point {id} has a {SPARSE_VECTOR:?} vector that is not sparse"),
            };
            (dense, sparse)
        }
        Some(_) => bail!("point {id} has a multi-vector"),
    };
    Ok(Point { id, vector, sparse, payload })
}

fn payload_key(key: &str) -> Result<JsonPath> {
    key.parse().map_err(|_| anyhow!("{key:?} is not a payload key"))
}

fn value_match(path: JsonPath, value: ValueVariants) -> Condition {
    Condition::Field(FieldCondition::new_match(path, Match::new_value(value)))
}

fn keyword(key: &str, value: &str) -> Result<Condition> {
    Ok(value_match(payload_key(key)?, ValueVariants::String(value.to_string())))
}

/// The payload conditions of `filter`, as the engine applies them; `None` when it has none.
fn point_filter(filter: &PointFilter) -> Result<Option<Filter>> {
    if filter.is_empty() {
        return Ok(None);
    }
    let mut must = Vec::new();
    if let Some(text) = &filter.path_contains {
        must.push(Condition::Field(FieldCondition::new_match(field("path"), Match::new_text(text))));
    }
    for (key, value) in &filter.equals {
        // A value reads as a keyword, and as an integer too when it is one.
        let path = payload_key(key)?;
        let mut either = vec![value_match(path.clone(), ValueVariants::String(value.clone()))];
        if let Ok(number) = value.parse::<i64>() {
            either.push(value_match(path, ValueVariants::Integer(number)));
        }
        must.push(Condition::Filter(Filter { should: Some(either), ..Filter::default() }));
    }
    if !filter.extensions.is_empty() {
        let any = AnyVariants::Strings(filter.extensions.iter().map(|e| e.as_str().into()).collect());
        must.push(Condition::Field(FieldCondition::new_match(field("ext"), Match::new_any(any))));
    }
    Ok(Some(Filter { must: Some(must), ..Filter::default() }))
}

/// Reciprocal-rank fusion's `k`: Qdrant's own default, so both backends rank alike.
const RRF_K: usize = 2;

fn nearest(vector: VectorInternal, using: Option<&str>) -> ScoringQuery {
    ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery { query: vector, using: using.map(str::to_string) }))
}

/// The engine's request for `query`: one nearest-vector ranking, or two fused.
fn query_request(query: Query) -> Result<QueryRequest> {
    let filter = point_filter(&query.filter)?;
    let dense = query.dense.map(|v| nearest(VectorInternal::Dense(v), None));
    let sparse = match query.sparse {
        Some(sparse) => Some(nearest(edge_sparse(sparse)?.0, Some(SPARSE_VECTOR))),
        None => None,
    };
    let (prefetches, scoring) = match (dense, sparse) {
        (Some(dense), Some(sparse)) => {
            let prefetch = |scoring| Prefetch {
                prefetches: vec![],
                query: Some(scoring),
                limit: query.candidates.max(query.limit),
                params: None,
                // The engine applies the request's filter to every prefetch.
                filter: None,
                score_threshold: None,
            };
            (vec![prefetch(dense), prefetch(sparse)], ScoringQuery::Fusion(Fusion::Rrf { k: RRF_K, weights: None }))
        }
        (Some(one), None) | (None, Some(one)) => (vec![], one),
        (None, None) => bail!("a query needs a dense or a sparse vector"),
    };
    Ok(QueryRequest {
        prefetches,
        query: Some(scoring),
        filter,
        score_threshold: None,
        limit: query.limit,
        offset: 0,
        params: None,
        with_vector: WithVector::Bool(false),
        with_payload: WithPayloadInterface::Bool(true),
    })
}

#[async_trait]
impl VectorIndex for EmbeddedIndex {
    fn collection(&self) -> &str {
        &self.collection
    }

    async fn ensure_collection(&self, dim: usize) -> Result<()> {
        let mut guard = self.shard.write().await;
        // An existing collection is checked from its configuration file, without loading it.
        let existing = match guard.as_ref() {
            Some(shard) => Some(shard.config().clone()),
            None => EdgeConfig::load(&self.path).transpose().map_err(|e| {
                anyhow!("cannot read the embedded collection's configuration in {}: {e}", self.path.display())
            })?,
        };
        if let Some(config) = existing {
            let params = config.vectors.get("").context("the embedded collection has no default vector")?;
            if params.size != dim || params.distance != Distance::Cosine {
                bail!(
                    "collection {:?} holds {}-dimensional {:?} vectors but the model makes {dim}-dimensional Cosine vectors; use another --collection or the model it was built with",
                    self.collection, params.size, params.distance
                );
            }
            if config.sparse_vectors.contains_key(SPARSE_VECTOR) {
                return Ok(());
            }
            // A collection made before sparse vectors: declare them, and the indexes that
            // came with them.
            drop(guard);
            return self
                .writing(|shard| {
                    let create = CreateVectorName {
                        vector_name: SPARSE_VECTOR.into(),
                        config: VectorNameConfig::sparse(SparseVectorConfig {
                            modifier: Some(Modifier::Idf),
                            datatype: None,
                        }),
                    };
                    shard
                        .update(UpdateOperation::VectorNameOperation(VectorNameOperations::CreateVectorName(create)))
                        .map_err(edge_error)?;
                    create_payload_indexes(shard)?;
                    shard.flush();
                    Ok(())
                })
                .await;
        }
        std::fs::create_dir_all(&self.path).with_context(|| format!("creating {}", self.path.display()))?;
        let config = EdgeConfigBuilder::new()
            .vector("", EdgeVectorParamsBuilder::new(dim, Distance::Cosine).build())
            .sparse_vector(SPARSE_VECTOR, EdgeSparseVectorParamsBuilder::new().modifier(Modifier::Idf).build())
            .optimizers(optimizers())
            .wal_options(wal_options())
            .build();
        let shard = EdgeShard::new(&self.path, config).map_err(edge_error)?;
        create_payload_indexes(&shard)?;
        *guard = Some(Arc::new(shard));
        Ok(())
    }

    async fn upsert(&self, points: Vec<Point>) -> Result<()> {
        let points = points.into_iter().map(|p| to_edge_point(p).map(Into::into)).collect::<Result<Vec<_>>>()?;
        self.apply(PointOperations::UpsertPoints(PointInsertOperations::PointsList(points))).await
    }

    async fn delete_documents(&self, doc_ids: &[String]) -> Result<()> {
        if doc_ids.is_empty() {
            return Ok(());
        }
        self.apply(PointOperations::DeletePointsByFilter(documents_filter(doc_ids))).await
    }

    async fn delete_points(&self, ids: &[Uuid]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<PointId> = ids.iter().map(|id| PointId::Uuid(*id)).collect();
        self.apply(PointOperations::DeletePoints { ids }).await
    }

    async fn delete_tail(&self, doc_id: &str, keep: u32) -> Result<()> {
        let doc_id = [doc_id.to_string()];
        self.apply(PointOperations::DeletePointsByFilter(tail_filter(&doc_id, keep))).await
    }

    async fn query(&self, query: Query) -> Result<Vec<Hit>> {
        let request = query_request(query)?;
        self.blocking(move |shard| {
            let scored = shard.query(request).map_err(edge_error)?;
            scored
                .into_iter()
                .map(|p| Ok(Hit { score: p.score, point: from_record(p.id, p.payload, p.vector)? }))
                .collect()
        })
        .await
    }

    async fn has_sparse_vectors(&self) -> Result<bool> {
        if let Some(shard) = self.shard.read().await.as_ref() {
            return Ok(shard.config().sparse_vectors.contains_key(SPARSE_VECTOR));
        }
        let config = EdgeConfig::load(&self.path).transpose().map_err(|e| {
            anyhow!("cannot read the embedded collection's configuration in {}: {e}", self.path.display())
        })?;
        Ok(config.is_some_and(|c| c.sparse_vectors.contains_key(SPARSE_VECTOR)))
    }

    async fn count_without_analyzer(&self, analyzer: &str) -> Result<u64> {
        let filter = Filter { must_not: Some(vec![keyword("analyzer", analyzer)?]), ..Filter::default() };
        self.count_matching(Some(filter)).await
    }

    async fn count(&self, doc_id: Option<&str>) -> Result<u64> {
        self.count_matching(doc_id.map(|d| Filter::new_must(doc_filter(d)))).await
    }

    async fn count_documents(&self, doc_ids: &[String]) -> Result<u64> {
        if doc_ids.is_empty() {
            return Ok(0);
        }
        self.count_matching(Some(documents_filter(doc_ids))).await
    }

    async fn count_tail(&self, doc_ids: &[String], from: u32) -> Result<u64> {
        if doc_ids.is_empty() {
            return Ok(0);
        }
        self.count_matching(Some(tail_filter(doc_ids, from))).await
    }

    async fn scroll(&self, offset: Option<Uuid>, limit: usize, with_vectors: bool) -> Result<ScrollPage> {
        self.blocking(move |shard| {
            let request = ScrollRequest {
                offset: offset.map(PointId::Uuid),
                limit: Some(limit),
                filter: None,
                with_payload: Some(WithPayloadInterface::Bool(true)),
                with_vector: WithVector::Bool(with_vectors),
                order_by: None,
            };
            let (records, next) = shard.scroll(request).map_err(edge_error)?;
            let points = records
                .into_iter()
                .map(|Record { id, payload, vector, .. }| from_record(id, payload, vector))
                .collect::<Result<Vec<_>>>()?;
            let next = match next {
                Some(PointId::Uuid(id)) => Some(id),
                Some(other) => bail!("point {other} does not have a UUID id"),
                None => None,
            };
            Ok((points, next))
        })
        .await
    }

    async fn retrieve(&self, ids: &[Uuid]) -> Result<Vec<StoredPoint>> {
        let ids: Vec<PointId> = ids.iter().map(|&id| PointId::Uuid(id)).collect();
        self.blocking(move |shard| {
            let records = shard
                .retrieve(&ids, Some(WithPayloadInterface::Bool(true)), Some(WithVector::Bool(true)))
                .map_err(edge_error)?;
            records.into_iter().map(|record| from_record(record.id, record.payload, record.vector)).collect()
        })
        .await
    }

    async fn exists(&self) -> Result<bool> {
        Ok(self.shard.read().await.is_some() || self.exists_on_disk())
    }

    async fn serve_as(&self, _alias: &str) -> Result<()> {
        Ok(())
    }

    async fn aliased_to(&self) -> Result<Option<String>> {
        Ok(None)
    }

    async fn drop_collection(&self) -> Result<()> {
        let mut guard = self.shard.write().await;
        if let Some(shard) = guard.take() {
            drop(shard);
        }
        // A process reading the collection (a search service) lets go of it first.
        let _held = self.hold_write_ahead_log().await?;
        // Renamed first, in one step, then deleted: an interrupted drop leaves no half-deleted
        // collection that a later command could take for a whole one, only a tombstone that the
        // next drop of this collection removes.
        let tombstone = self.path.with_extension("dropped");
        if tombstone.exists() {
            std::fs::remove_dir_all(&tombstone).with_context(|| format!("removing {}", tombstone.display()))?;
        }
        if self.path.exists() {
            std::fs::rename(&self.path, &tombstone)
                .with_context(|| format!("moving {} aside to delete it", self.path.display()))?;
            std::fs::remove_dir_all(&tombstone).with_context(|| format!("removing {}", tombstone.display()))?;
        }
        Ok(())
    }

    async fn let_go_if_asked(&self) -> Result<()> {
        match &self.reader {
            Some(reader) => self.take_turns(reader).await,
            None => Ok(()),
        }
    }

    async fn finish(&self) -> Result<()> {
        // Points change only through a loaded shard.
        if self.shard.read().await.is_none() || !self.changed.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        let path = self.path.clone();
        self.writing(move |shard| {
            shard.optimize().map_err(edge_error)?;
            shard.flush();
            release_stored_pages(&path);
            Ok(())
        })
        .await
    }
}
