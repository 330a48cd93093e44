//! Both `VectorIndex` backends held to one contract: the embedded engine directly, and the
//! Qdrant gRPC client against the test server (real Qdrant engine code behind the real wire
//! protocol), including the server's faults: dense, BM25 and fused ranking, payload filters,
//! and collections made before sparse vectors.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::qdrant_server::TestQdrant;
use ingest::catalog::{Catalog, CollectionCatalog, Completion, FileFacts};
use ingest::consistency::check_touched;
use ingest::extract::Origin;
use ingest::hash::point_id;
use ingest::retry::RetryPolicy;
use ingest::sparse::SparseVector;
use ingest::store::{Hit, Point, PointFilter, PointPayload, Query, StoreLocation, VectorIndex};

/// Records in `catalog` that job `job` touched each (doc, points) file, completing those
/// with points and deleting the others; returns the job's id, for the end check.
async fn touched(catalog: &CollectionCatalog, job: &str, files: &[(&str, i64)]) -> String {
    for &(doc, points) in files {
        let path = format!("/docs/{doc}.txt");
        let facts = FileFacts {
            path: path.clone(),
            doc_id: doc.into(),
            size: 1,
            modified_ns: 1,
            extension: "txt".into(),
            content_hash: Some(format!("hash-{doc}")),
            logic_fingerprint: "test".into(),
        };
        catalog.mark_processing(job, &[facts]).await.unwrap();
        if points > 0 {
            catalog.mark_completed(job, &[Completion { path, chunks: points, vectors: points }]).await.unwrap();
        } else {
            catalog.mark_deleted(job, &[path]).await.unwrap();
        }
    }
    job.to_string()
}

fn point(doc: &str, index: u32, direction: usize) -> Point {
    let mut vector = vec![0.0; 4];
    vector[direction % 4] = 1.0;
    Point {
        id: point_id(doc, index),
        vector,
        sparse: sparse(&[(1, 1.0), (2 + index, 0.5)]),
        payload: PointPayload {
            path: format!("/docs/{doc}.txt"),
            doc_id: doc.into(),
            chunk_index: index,
            content: format!("{doc} chunk {index}"),
            content_hash: format!("hash-{doc}-{index}"),
            job_id: "job".into(),
            model: "test".into(),
            created_at: "2026-01-01T00:00:00.000000Z".into(),
            analyzer: Some(ANALYZER.into()),
            ext: Some("txt".into()),
            // Every origin field on one chunk, none on the others: both stores keep them as
            // they are, and leave absent ones absent.
            origin: if index == 1 {
                Origin {
                    page: Some(3),
                    page_end: Some(4),
                    sheet: Some("Budget".into()),
                    slide: Some(2),
                    heading: Some("Rent and bills".into()),
                    title: Some("Household".into()),
                    ocr: true,
                }
            } else {
                Origin::default()
            },
        },
    }
}

/// The analyzer the test points say made their sparse vectors.
const ANALYZER: &str = "bm25-test-1";

/// A sparse vector of `(term, weight)` pairs, terms in increasing order.
fn sparse(terms: &[(u32, f32)]) -> SparseVector {
    SparseVector { indices: terms.iter().map(|t| t.0).collect(), values: terms.iter().map(|t| t.1).collect() }
}

fn quick_retries(outage_limit: Duration) -> RetryPolicy {
    RetryPolicy { base_delay: Duration::from_millis(20), max_delay: Duration::from_millis(200), outage_limit }
}

async fn open(dir: &std::path::Path, server: Option<&TestQdrant>, policy: RetryPolicy) -> Arc<dyn VectorIndex> {
    let url = server.map(TestQdrant::url);
    let location = StoreLocation {
        data_dir: dir,
        qdrant_url: url.as_deref(),
        api_key: None,
        layout: Default::default(),
        like: None,
    };
    ingest::store::open(location, "c", policy).await.unwrap()
}

#[tokio::test]
async fn embedded_engine_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(dir.path(), None).await;
}

#[tokio::test]
async fn qdrant_client_keeps_the_contract_against_the_test_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestQdrant::start();
    contract(dir.path(), Some(&server)).await;
}

async fn contract(dir: &std::path::Path, server: Option<&TestQdrant>) {
    let index = open(dir, server, RetryPolicy::default()).await;
    assert!(!index.exists().await.unwrap());
    index.ensure_collection(4).await.unwrap();
    let a: Vec<Point> = (0..5).map(|i| point("a", i, i as usize)).collect();
    let b: Vec<Point> = (0..3).map(|i| point("b", i, 1)).collect();
    index.upsert(a.clone()).await.unwrap();
    index.upsert(b).await.unwrap();
    index.upsert(a).await.unwrap(); // a retry overwrites, never duplicates
    assert_eq!(index.count(None).await.unwrap(), 8);
    assert_eq!(index.count(Some("a")).await.unwrap(), 5);

    index.delete_tail("a", 2).await.unwrap();
    assert_eq!(index.count(Some("a")).await.unwrap(), 2);
    assert_eq!(index.count_documents(&["a".into(), "b".into()]).await.unwrap(), 5);
    index.delete_documents(&["b".into()]).await.unwrap();
    assert_eq!(index.count(None).await.unwrap(), 2);
    assert_eq!(index.count_documents(&["b".into(), "none".into()]).await.unwrap(), 0);

    // The end check counts the files that must hold no points together, and still names the
    // one that holds some.
    let catalog = Catalog::connect(&Catalog::sqlite_url(dir)).await.unwrap().collection(index.collection());
    let (a, b, c, d) = (("a", 0), ("b", 0), ("c", 2), ("d", 2));
    let checked =
        check_touched(&catalog, index.as_ref(), &touched(&catalog, "job-1", &[a, b]).await).await.unwrap().unwrap();
    assert_eq!(checked.files, 2);
    assert!(!checked.agree);
    assert!(
        checked
            .disagreements
            .iter()
            .any(|d| d.starts_with("/docs/a.txt: the catalog says 0 points, the collection holds 2")),
        "{checked:?}"
    );
    assert!(!checked.disagreements.iter().any(|d| d.contains("b.txt")), "{checked:?}");
    let checked = check_touched(&catalog, index.as_ref(), &touched(&catalog, "job-2", &[("a", 2), b]).await)
        .await
        .unwrap()
        .unwrap();
    assert!(!checked.disagreements.iter().any(|d| d.contains(".txt")), "{checked:?}");
    // Files that must hold as many points are counted together: one with a point too many
    // and one with a point too few add up right, and are still both named.
    index.upsert((0..3).map(|i| point("c", i, 1)).chain([point("d", 0, 1)]).collect()).await.unwrap();
    assert_eq!(index.count_tail(&["c".into(), "d".into()], 1).await.unwrap(), 2);
    let checked =
        check_touched(&catalog, index.as_ref(), &touched(&catalog, "job-3", &[c, d]).await).await.unwrap().unwrap();
    let named = |file: &str| checked.disagreements.iter().any(|d| d.starts_with(file));
    assert!(named("/docs/c.txt: the catalog says 2 points, the collection holds 3 (1 beyond"), "{checked:?}");
    assert!(named("/docs/d.txt: the catalog says 2 points, the collection holds 1"), "{checked:?}");
    assert_eq!(checked.files, 2, "the files job-3 touched, not those of the jobs before");
    index.delete_documents(&["c".into(), "d".into()]).await.unwrap();

    let dense = Query { dense: Some(vec![1.0, 0.0, 0.0, 0.0]), limit: 1, ..Query::default() };
    let hits = index.query(dense).await.unwrap();
    assert_eq!(hits[0].point.payload.content, "a chunk 0");
    assert!((hits[0].score - 1.0).abs() < 1e-5);
    let (page, next) = index.scroll(None, 10, true).await.unwrap();
    assert_eq!((page.len(), next), (2, None));
    assert_eq!(page.iter().find(|p| p.payload.chunk_index == 1).unwrap().vector, vec![0.0, 1.0, 0.0, 0.0]);
    // Payloads and sparse vectors come back whole, the origin fields included, and absent ones absent.
    for stored in &page {
        let written = point("a", stored.payload.chunk_index, 0);
        assert_eq!((&stored.payload, &stored.sparse), (&written.payload, &written.sparse));
    }
    assert_eq!(page.iter().filter(|p| p.payload.origin.page.is_some()).count(), 1);
    let (page, _) = index.scroll(None, 10, false).await.unwrap();
    assert!(page.iter().all(|p| p.vector.is_empty() && p.sparse.is_empty()));
    index.finish().await.unwrap();
    drop(index);

    // Reopened, with a different model dimension: a clear error before any work.
    let reopened = open(dir, server, RetryPolicy::default()).await;
    assert_eq!(reopened.count(None).await.unwrap(), 2);
    let error = reopened.ensure_collection(384).await.unwrap_err().to_string();
    assert!(error.contains("4-dimensional") && error.contains("384-dimensional"), "{error}");
    reopened.drop_collection().await.unwrap();
    assert!(!reopened.exists().await.unwrap());
}

#[tokio::test]
async fn embedded_engine_ranks_by_bm25_fuses_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    retrieval(dir.path(), None).await;
}

#[tokio::test]
async fn qdrant_client_ranks_by_bm25_fuses_and_filters_against_the_test_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestQdrant::start();
    retrieval(dir.path(), Some(&server)).await;
}

/// The point of `doc` (chunk `index`) at `path`, with these vectors.
fn chunk(doc: &str, index: u32, path: &str, dense: [f32; 4], terms: &[(u32, f32)]) -> Point {
    let mut chunk = point(doc, index, 0);
    chunk.vector = dense.to_vec();
    chunk.payload.path = path.into();
    chunk.payload.ext = ingest::store::extension_of(path);
    chunk.sparse = sparse(terms);
    chunk
}

/// The documents of `hits`, in rank order.
fn docs(hits: &[Hit]) -> Vec<String> {
    hits.iter().map(|hit| hit.point.payload.doc_id.clone()).collect()
}

fn doc_set(hits: &[Hit]) -> BTreeSet<String> {
    docs(hits).into_iter().collect()
}

/// Term 1 is in every chunk but `silent`, heavily weighted; term 7 only in `rare`, lightly.
const COMMON: u32 = 1;
const RARE: u32 = 7;

async fn retrieval(dir: &Path, server: Option<&TestQdrant>) {
    let index = open(dir, server, RetryPolicy::default()).await;
    index.ensure_collection(4).await.unwrap();
    assert!(index.has_sparse_vectors().await.unwrap());
    // Nearest to [1, 0, 0, 0]: c0, c1, c2, c3, then rare and silent.
    let mut points = vec![
        chunk("c0", 0, "/docs/sub/c0.md", [1.0, 0.0, 0.0, 0.0], &[(COMMON, 3.0)]),
        chunk("c1", 1, "/docs/sub/c1.md", [0.9, 0.1, 0.0, 0.0], &[(COMMON, 3.0)]),
        chunk("c2", 1, "/docs/c2.txt", [0.8, 0.2, 0.0, 0.0], &[(COMMON, 3.0)]),
        chunk("c3", 0, "/docs/c3.txt", [0.5, 0.5, 0.0, 0.0], &[(COMMON, 3.0)]),
        chunk("rare", 0, "/docs/sub/rare.txt", [0.0, 0.0, 0.0, 1.0], &[(COMMON, 1.0), (RARE, 1.0)]),
        // No terms at all: an empty sparse vector is stored, and never matches.
        chunk("silent", 0, "/docs/silent", [0.0, 0.0, 1.0, 0.0], &[]),
    ];
    points[4].payload.analyzer = Some("bm25-test-0".into());
    points[5].payload.analyzer = None;
    index.upsert(points.clone()).await.unwrap();

    // The collection's own document frequencies weigh the terms (Qdrant's `Idf` modifier):
    // the rare term outranks three times the weight of a term every chunk has.
    let by_terms = |terms: &[(u32, f32)], limit| Query { sparse: Some(sparse(terms)), limit, ..Query::default() };
    let hits = index.query(by_terms(&[(COMMON, 1.0), (RARE, 1.0)], 10)).await.unwrap();
    assert_eq!(docs(&hits)[0], "rare", "{:?}", docs(&hits));
    assert_eq!(hits.len(), 5, "only chunks sharing a term: {:?}", docs(&hits));
    assert!(hits[0].score > hits[1].score);
    assert_eq!(docs(&index.query(by_terms(&[(RARE, 1.0)], 10)).await.unwrap()), ["rare"]);

    // Fused, each side ranks its candidates and a point found by either comes back: rare,
    // last by its dense vector, beats c1, second by it.
    let hybrid = |dense: [f32; 4], terms: &[(u32, f32)], limit, candidates| Query {
        dense: Some(dense.to_vec()),
        sparse: Some(sparse(terms)),
        limit,
        candidates,
        filter: PointFilter::default(),
    };
    let hits = index.query(hybrid([1.0, 0.0, 0.0, 0.0], &[(RARE, 1.0)], 2, 2)).await.unwrap();
    assert_eq!(doc_set(&hits), ["c0", "rare"].map(String::from).into());
    assert!((hits[0].score - hits[1].score).abs() < 1e-6, "each first on one side");
    // First on both sides beats first on one.
    let hits = index.query(hybrid([0.0, 0.0, 0.0, 1.0], &[(RARE, 1.0)], 10, 10)).await.unwrap();
    assert_eq!(docs(&hits)[0], "rare");
    assert!(hits[0].score > hits[1].score);
    assert_eq!(hits.len(), 6, "the dense side ranks every point");

    // Filters apply inside the store, whichever vectors rank.
    let equals =
        |key: &str, value: &str| PointFilter { equals: vec![(key.into(), value.into())], ..PointFilter::default() };
    let extensions = |exts: &[&str]| PointFilter {
        extensions: exts.iter().map(|e| e.to_string()).collect(),
        ..PointFilter::default()
    };
    let under = |dir: &str| PointFilter { path_contains: Some(dir.into()), ..PointFilter::default() };
    let cases: Vec<(PointFilter, &[&str])> = vec![
        (under("/docs/sub/"), &["c0", "c1", "rare"]),
        (extensions(&["md"]), &["c0", "c1"]),
        (extensions(&["md", "txt"]), &["c0", "c1", "c2", "c3", "rare"]),
        (equals("doc_id", "c3"), &["c3"]),
        // A number matches the integer field.
        (equals("chunk_index", "1"), &["c1", "c2"]),
        // A keyword matches whole, whitespace and all; never a part of it.
        (equals("heading", "Rent and bills"), &["c1", "c2"]),
        (equals("heading", "and bills"), &[]),
        (PointFilter { path_contains: Some("/docs/sub/".into()), ..extensions(&["txt"]) }, &["rare"]),
        (PointFilter { equals: vec![("chunk_index".into(), "0".into())], ..under("/docs/sub/") }, &["c0", "rare"]),
    ];
    for (filter, expected) in cases {
        let expected: BTreeSet<String> = expected.iter().map(|d| d.to_string()).collect();
        let dense = Query { dense: Some(vec![0.5; 4]), limit: 10, filter: filter.clone(), ..Query::default() };
        assert_eq!(doc_set(&index.query(dense).await.unwrap()), expected, "dense, {filter:?}");
        let fused = Query { filter: filter.clone(), ..hybrid([1.0, 0.0, 0.0, 0.0], &[(RARE, 1.0)], 10, 10) };
        assert_eq!(doc_set(&index.query(fused).await.unwrap()), expected, "hybrid, {filter:?}");
        let by_bm25 = Query { filter: filter.clone(), ..by_terms(&[(COMMON, 1.0)], 10) };
        let with_terms: BTreeSet<String> = expected.iter().filter(|d| *d != "silent").cloned().collect();
        assert_eq!(doc_set(&index.query(by_bm25).await.unwrap()), with_terms, "sparse, {filter:?}");
    }

    // The points a backfill must rewrite: another analyzer's, and those without one.
    assert_eq!(index.count_without_analyzer(ANALYZER).await.unwrap(), 2);
    assert_eq!(index.count_without_analyzer("bm25-test-0").await.unwrap(), 5);

    // Read back with their vectors: the sparse ones as written, the dense ones too (the
    // store keeps them normalised, for cosine distance).
    let stored = ingest::store::all_points(index.as_ref(), true).await.unwrap();
    assert_eq!(stored.len(), points.len());
    for written in &points {
        let read = &stored[&written.id];
        assert_eq!((&read.sparse, &read.payload), (&written.sparse, &written.payload));
        let norm = written.vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        let along = read.vector.iter().zip(&written.vector).map(|(r, w)| r * w / norm).sum::<f32>();
        assert!(read.vector.len() == 4 && (along - 1.0).abs() < 1e-5, "{:?}", read.vector);
    }
}

#[tokio::test]
async fn an_embedded_collection_made_before_sparse_vectors_gains_them() {
    let dir = tempfile::tempdir().unwrap();
    collection_made_before_sparse_vectors(dir.path(), None).await;
}

#[tokio::test]
async fn a_server_collection_made_before_sparse_vectors_gains_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestQdrant::start();
    collection_made_before_sparse_vectors(dir.path(), Some(&server)).await;
}

/// A point as ingest wrote it before sparse vectors: no sparse vector, no `analyzer` or `ext`.
fn pre_sparse_point() -> Point {
    let mut old = point("old", 0, 0);
    old.sparse = SparseVector::default();
    old.payload.analyzer = None;
    old.payload.ext = None;
    old
}

/// Makes collection `c` as ingest did before sparse vectors: the unnamed dense vector alone,
/// holding [`pre_sparse_point`].
async fn create_pre_sparse_collection(dir: &Path, server: Option<&TestQdrant>) {
    let old = pre_sparse_point();
    match server {
        Some(server) => {
            use qdrant_client::qdrant::{
                CreateCollectionBuilder, Distance, PointStruct, UpsertPointsBuilder, VectorParamsBuilder,
            };
            let client = qdrant_client::Qdrant::from_url(&server.url()).skip_compatibility_check().build().unwrap();
            let create =
                CreateCollectionBuilder::new("c").vectors_config(VectorParamsBuilder::new(4, Distance::Cosine));
            client.create_collection(create).await.unwrap();
            let payload = qdrant_client::Payload::try_from(serde_json::to_value(&old.payload).unwrap()).unwrap();
            let point = PointStruct::new(old.id.to_string(), old.vector, payload);
            client.upsert_points(UpsertPointsBuilder::new("c", vec![point]).wait(true)).await.unwrap();
        }
        None => {
            use qdrant_edge::{
                Distance, EdgeConfigBuilder, EdgeShard, EdgeVectorParamsBuilder, PointId, PointInsertOperations,
                PointOperations, PointStruct, UpdateOperation,
            };
            let path = dir.join("qdrant").join("c");
            std::fs::create_dir_all(&path).unwrap();
            let config =
                EdgeConfigBuilder::new().vector("", EdgeVectorParamsBuilder::new(4, Distance::Cosine).build()).build();
            let shard = EdgeShard::new(&path, config).unwrap();
            let payload = qdrant_edge::external::serde_json::to_value(&old.payload).unwrap();
            let point = PointStruct::new(PointId::Uuid(old.id), old.vector, payload);
            let upsert = PointOperations::UpsertPoints(PointInsertOperations::PointsList(vec![point.into()]));
            shard.update(UpdateOperation::PointOperation(upsert)).unwrap();
            shard.flush();
        }
    }
}

async fn collection_made_before_sparse_vectors(dir: &Path, server: Option<&TestQdrant>) {
    create_pre_sparse_collection(dir, server).await;
    let index = open(dir, server, RetryPolicy::default()).await;
    assert!(!index.has_sparse_vectors().await.unwrap());
    // Its old point reads back as it was: the dense vector, no sparse one.
    let stored = ingest::store::all_points(index.as_ref(), true).await.unwrap();
    let old = pre_sparse_point();
    assert_eq!(stored[&old.id], old);

    index.ensure_collection(4).await.unwrap();
    assert!(index.has_sparse_vectors().await.unwrap());
    index.ensure_collection(4).await.unwrap(); // declared once, then left alone
    assert!(index.has_sparse_vectors().await.unwrap());
    assert_eq!(index.count_without_analyzer(ANALYZER).await.unwrap(), 1, "the old point awaits a backfill");

    index.upsert(vec![point("new", 0, 1)]).await.unwrap();
    assert_eq!(index.count_without_analyzer(ANALYZER).await.unwrap(), 1);
    let by_terms = Query { sparse: Some(sparse(&[(1, 1.0)])), limit: 10, ..Query::default() };
    assert_eq!(docs(&index.query(by_terms.clone()).await.unwrap()), ["new"]);

    // The backfill rewrites the old point with its sparse vector and analyzer.
    let backfilled = point("old", 0, 0);
    index.upsert(vec![backfilled.clone()]).await.unwrap();
    assert_eq!(index.count_without_analyzer(ANALYZER).await.unwrap(), 0);
    assert_eq!(doc_set(&index.query(by_terms).await.unwrap()), ["new", "old"].map(String::from).into());
    let stored = ingest::store::all_points(index.as_ref(), true).await.unwrap();
    assert_eq!(stored[&backfilled.id], backfilled);
}

#[tokio::test]
async fn refused_calls_are_retried_and_a_long_outage_stops_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestQdrant::start();
    let index = open(dir.path(), Some(&server), quick_retries(Duration::from_secs(30))).await;
    index.ensure_collection(4).await.unwrap();

    server.refuse_next(5);
    index.upsert((0..3).map(|i| point("a", i, 0)).collect()).await.unwrap();
    assert_eq!(index.count(Some("a")).await.unwrap(), 3);

    // Dropped mid-upsert after half the batch landed: the retry completes it, no duplicates.
    server.crash_during_next_upsert(Duration::from_millis(500));
    index.upsert((0..10).map(|i| point("b", i, 1)).collect()).await.unwrap();
    assert_eq!(index.count(Some("b")).await.unwrap(), 10);
    assert_eq!(index.count(None).await.unwrap(), 13);

    let impatient = open(dir.path(), Some(&server), quick_retries(Duration::from_millis(800))).await;
    server.stop();
    let started = Instant::now();
    let error = impatient.upsert(vec![point("c", 0, 2)]).await.unwrap_err();
    let text = format!("{error:#}");
    assert!(started.elapsed() >= Duration::from_millis(800), "gave up too early");
    assert!(text.contains("Qdrant has been unreachable") && text.contains("outage limit"), "{text}");
    server.restart();
    assert_eq!(index.count(None).await.unwrap(), 13, "data survives the restart");
}

#[tokio::test]
async fn unreachable_server_and_unsupported_calls_get_clear_answers() {
    let dir = tempfile::tempdir().unwrap();
    let location = StoreLocation {
        data_dir: dir.path(),
        qdrant_url: Some("http://127.0.0.1:1"),
        api_key: Some("s3cret"),
        layout: Default::default(),
        like: None,
    };
    let error = match ingest::store::open(location, "c", RetryPolicy::default()).await {
        Ok(_) => panic!("nothing listens on port 1"),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains("cannot reach Qdrant at http://127.0.0.1:1"), "{error}");
    assert!(!error.contains("s3cret"), "{error}");

    // The test server refuses what it does not implement instead of pretending.
    let server = TestQdrant::start();
    let client = qdrant_client::Qdrant::from_url(&server.url()).skip_compatibility_check().build().unwrap();
    let status = client.list_collections().await.unwrap_err().to_string();
    assert!(status.contains("Unimplemented") || status.contains("not support"), "{status}");
}
