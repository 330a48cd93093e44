//! The embedded Qdrant engine behind `VectorIndex`, tested directly.

use ingest::hash::point_id;
use ingest::store::embedded::EmbeddedIndex;
use ingest::store::{Point, PointPayload, VectorIndex};

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
        },
    }
}

#[tokio::test]
async fn upsert_is_idempotent_and_deletes_by_document_and_tail() {
    let dir = tempfile::tempdir().unwrap();
    let index = EmbeddedIndex::open(dir.path(), "c").unwrap();
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
    index.delete_documents(&["b".into()]).await.unwrap();
    assert_eq!(index.count(None).await.unwrap(), 2);

    let hits = index.search(vec![1.0, 0.0, 0.0, 0.0], 1).await.unwrap();
    assert_eq!(hits[0].point.payload.content, "a chunk 0");
    assert!((hits[0].score - 1.0).abs() < 1e-5);
    let (page, next) = index.scroll(None, 10, true).await.unwrap();
    assert_eq!((page.len(), next), (2, None));
    assert_eq!(page.iter().find(|p| p.payload.chunk_index == 1).unwrap().vector, vec![0.0, 1.0, 0.0, 0.0]);
    index.finish().await.unwrap();
    drop(index);

    // Reopened from disk, with a different model dimension: a clear error before any work.
    let reopened = EmbeddedIndex::open(dir.path(), "c").unwrap();
    assert_eq!(reopened.count(None).await.unwrap(), 2);
    let error = reopened.ensure_collection(384).await.unwrap_err().to_string();
    assert!(error.contains("4-dimensional") && error.contains("384-dimensional"), "{error}");
    reopened.drop_collection().await.unwrap();
    assert!(!reopened.exists().await.unwrap());
}
