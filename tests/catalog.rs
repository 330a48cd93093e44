//! The catalog against both backends over real connections: the embedded SQLite file and
//! PostgreSQL on 127.0.0.1 (a fresh database per test, migrations applied).

mod common;

use common::postgres::FreshPostgres;
use ingest::catalog::{Catalog, Completion, FileFacts, FileStatus, JobCounters, JobStatus, NewJob};

fn facts(path: &str, hash: &str) -> FileFacts {
    FileFacts {
        path: path.into(),
        doc_id: ingest::hash::doc_id(path),
        size: 10,
        modified_ns: 42,
        extension: "txt".into(),
        content_hash: Some(hash.into()),
        logic_fingerprint: "fp".into(),
    }
}

async fn exercise(catalog: Catalog) {
    let job = catalog
        .create_job(&NewJob {
            name: "t".into(),
            directory_path: "/docs".into(),
            collection: "c".into(),
            model_name: "m".into(),
            vector_dim: 384,
            chunk_size: 200,
            chunk_overlap: 32,
            batch_size: 4000,
        })
        .await
        .unwrap();
    catalog.set_job_status(&job, JobStatus::Processing, None).await.unwrap();

    catalog.mark_processing("c", &job, &[facts("/docs/a.txt", "h1"), facts("/docs/b.txt", "h2")]).await.unwrap();
    let files = catalog.files("c").await.unwrap();
    assert_eq!(files.len(), 2);
    assert!(files.iter().all(|f| f.status() == FileStatus::Processing && f.embedded_job_id.is_none()));

    catalog
        .mark_completed("c", &job, &[Completion { path: "/docs/a.txt".into(), chunks: 3, vectors: 3 }])
        .await
        .unwrap();
    catalog.mark_failed("c", &job, &facts("/docs/b.txt", "h2"), "file is empty").await.unwrap();
    catalog.mark_failed("c", &job, &facts("/docs/b.txt", "h2"), "file is empty").await.unwrap();
    catalog.refresh_stat("c", "/docs/a.txt", 11, 43).await.unwrap();

    let files = catalog.files("c").await.unwrap();
    let a = &files[0];
    assert_eq!((a.status(), a.vectors_created, a.size, a.modified_ns), (FileStatus::Completed, 3, 11, 43));
    assert_eq!(a.embedded_job_id.as_deref(), Some(job.as_str()));
    let b = &files[1];
    assert_eq!((b.status(), b.retry_count, b.error.as_deref()), (FileStatus::Failed, 2, Some("file is empty")));

    catalog.mark_deleted("c", &job, &["/docs/a.txt".into()]).await.unwrap();
    assert_eq!(catalog.files("c").await.unwrap()[0].status(), FileStatus::Deleted);
    assert!(catalog.files("other").await.unwrap().is_empty(), "collections are separate");

    // Rows come back exactly, whatever characters a path holds and however large its numbers.
    let mut odd = facts("/docs/\"quoted\" back\\slash tab\there\nnew line – ünïcode 🐝 'x'.txt", "h3");
    odd.modified_ns = 1_763_000_000_123_456_789;
    odd.size = i64::from(u32::MAX) * 4;
    catalog.mark_processing("odd", &job, std::slice::from_ref(&odd)).await.unwrap();
    let rows = catalog.files("odd").await.unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(
        (&row.path, &row.doc_id, row.size, row.modified_ns),
        (&odd.path, &odd.doc_id, odd.size, odd.modified_ns)
    );
    assert_eq!((row.content_hash.as_deref(), row.logic_fingerprint.as_deref()), (Some("h3"), Some("fp")));
    assert_eq!((row.error.as_deref(), row.retry_count, row.embedded_job_id.as_deref()), (None, 0, None));
    assert_eq!(row.job_id.as_deref(), Some(job.as_str()));

    let counters =
        JobCounters { total_files: 2, processed_files: 1, failed_files: 1, skipped_files: 0, deleted_files: 1 };
    catalog.save_progress(&job, &counters, Some("/docs/a.txt")).await.unwrap();
    catalog.set_job_status(&job, JobStatus::Completed, None).await.unwrap();
    let row = catalog.job(&job).await.unwrap().unwrap();
    assert_eq!(row.status, "completed");
    assert_eq!(row.counters, counters);
    assert!(row.finished_at.is_some() && row.current_file.is_none());
    assert_eq!(catalog.jobs(Some("c"), 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn embedded_catalog_follows_the_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let url = Catalog::sqlite_url(dir.path());
    exercise(Catalog::connect(&url).await.unwrap()).await;
    // Reconnecting re-applies nothing and keeps the rows.
    let again = Catalog::connect(&url).await.unwrap();
    assert_eq!(again.files("c").await.unwrap().len(), 2);
}

#[tokio::test]
async fn postgres_catalog_follows_the_protocol() {
    let db = FreshPostgres::create();
    exercise(Catalog::connect(&db.url).await.unwrap()).await;
}

#[tokio::test]
async fn unreachable_postgres_is_one_sentence_without_the_password() {
    let error = match Catalog::connect("postgres://user:hunter2@127.0.0.1:1/db").await {
        Ok(_) => panic!("connected to a closed port"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("cannot connect to PostgreSQL"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");
}

#[tokio::test]
async fn postgres_advisory_lock_keeps_a_second_run_out() {
    let db = FreshPostgres::create();
    let first = Catalog::connect(&db.url).await.unwrap();
    let second = Catalog::connect(&db.url).await.unwrap();
    let held = first.lock_collection("c").await.unwrap();
    assert!(held.is_some());
    let error = second.lock_collection("c").await.unwrap_err();
    assert!(error.downcast_ref::<ingest::lock::Busy>().is_some(), "{error:#}");
    assert!(second.lock_collection("other").await.unwrap().is_some(), "other collections are free");
    drop(held);
    // The session ends asynchronously once its connection is dropped.
    let mut retaken = None;
    for _ in 0..50 {
        if let Ok(lock) = second.lock_collection("c").await {
            retaken = lock;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(retaken.is_some(), "the lock is free again once its holder is gone");
}
