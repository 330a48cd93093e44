//! Both `VectorIndex` backends held to one contract: the embedded engine directly, and the
//! Qdrant gRPC client against the test server (real Qdrant engine code behind the real wire
//! protocol), including the server's faults.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::qdrant_server::TestQdrant;
use ingest::catalog::Catalog;
use ingest::consistency::{check_touched, Touched};
use ingest::extract::Origin;
use ingest::hash::point_id;
use ingest::retry::RetryPolicy;
use ingest::store::{Point, PointPayload, StoreLocation, VectorIndex};

fn point(doc: &str, index: u32, direction: usize) -> Point {
    let mut vector = vec![0.0; 4];
    vector[direction % 4] = 1.0;
    Point {
        id: point_id(doc, index),
        vector,
        payload: PointPayload {
            path: format!("/docs/{doc}.txt"),
            doc_id: doc.into(),
            chunk_index: index,
            content: format!("{doc} chunk {index}"),
            content_hash: format!("hash-{doc}-{index}"),
            job_id: "job".into(),
            model: "test".into(),
            created_at: "2026-01-01T00:00:00.000000Z".into(),
            // Every origin field on one chunk, none on the others: both stores keep them as
            // they are, and leave absent ones absent.
            origin: if index == 1 {
                Origin {
                    page: Some(3),
                    page_end: Some(4),
                    sheet: Some("Budget".into()),
                    slide: Some(2),
                    heading: Some("Rent".into()),
                    title: Some("Household".into()),
                }
            } else {
                Origin::default()
            },
        },
    }
}

fn quick_retries(outage_limit: Duration) -> RetryPolicy {
    RetryPolicy { base_delay: Duration::from_millis(20), max_delay: Duration::from_millis(200), outage_limit }
}

async fn open(dir: &std::path::Path, server: Option<&TestQdrant>, policy: RetryPolicy) -> Arc<dyn VectorIndex> {
    let url = server.map(TestQdrant::url);
    let location =
        StoreLocation { data_dir: dir, qdrant_url: url.as_deref(), api_key: None, layout: Default::default() };
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
    let catalog = Catalog::connect(&Catalog::sqlite_url(dir)).await.unwrap();
    let touched = |doc: &str, points| Touched { path: format!("/docs/{doc}.txt"), doc_id: doc.into(), points };
    let checked = check_touched(&catalog, index.as_ref(), &[touched("a", 0), touched("b", 0)]).await.unwrap();
    assert!(!checked.agree);
    assert!(
        checked
            .disagreements
            .iter()
            .any(|d| d.starts_with("/docs/a.txt: the catalog says 0 points, the collection holds 2")),
        "{checked:?}"
    );
    assert!(!checked.disagreements.iter().any(|d| d.contains("b.txt")), "{checked:?}");
    let checked = check_touched(&catalog, index.as_ref(), &[touched("a", 2), touched("b", 0)]).await.unwrap();
    assert!(!checked.disagreements.iter().any(|d| d.contains(".txt")), "{checked:?}");

    let hits = index.search(vec![1.0, 0.0, 0.0, 0.0], 1).await.unwrap();
    assert_eq!(hits[0].point.payload.content, "a chunk 0");
    assert!((hits[0].score - 1.0).abs() < 1e-5);
    let (page, next) = index.scroll(None, 10, true).await.unwrap();
    assert_eq!((page.len(), next), (2, None));
    assert_eq!(page.iter().find(|p| p.payload.chunk_index == 1).unwrap().vector, vec![0.0, 1.0, 0.0, 0.0]);
    // Payloads come back whole, the origin fields included, and absent ones absent.
    for stored in &page {
        assert_eq!(stored.payload, point("a", stored.payload.chunk_index, 0).payload);
    }
    assert_eq!(page.iter().filter(|p| p.payload.origin.page.is_some()).count(), 1);
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
