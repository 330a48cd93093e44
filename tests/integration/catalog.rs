//! The catalog against both backends over real connections: the embedded SQLite file and
//! PostgreSQL on 127.0.0.1 (a fresh database per test, migrations applied). Through the
//! binary: URLs' secrets are never printed, and a lost PostgreSQL collection lock stops a run.

use crate::common;

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
    let collection = catalog.collection("c");

    collection.mark_processing(&job, &[facts("/docs/a.txt", "h1"), facts("/docs/b.txt", "h2")]).await.unwrap();
    let files = collection.files().await.unwrap();
    assert_eq!(files.len(), 2);
    assert!(files.iter().all(|f| f.status() == FileStatus::Processing && f.embedded_job_id.is_none()));

    collection.mark_completed(&job, &[Completion { path: "/docs/a.txt".into(), chunks: 3, vectors: 3 }]).await.unwrap();
    let failed = FileStatus::Failed;
    collection.record_without_points(&job, &facts("/docs/b.txt", "h2"), failed, "corrupt PDF").await.unwrap();
    collection.record_without_points(&job, &facts("/docs/b.txt", "h2"), failed, "corrupt PDF").await.unwrap();
    let no_text = FileStatus::NoText;
    collection.record_without_points(&job, &facts("/docs/c.pdf", "h3"), no_text, "no text").await.unwrap();
    collection.record_without_points(&job, &facts("/docs/c.pdf", "h3"), no_text, "no text").await.unwrap();
    collection.refresh_stat("/docs/a.txt", 11, 43).await.unwrap();

    let files = collection.files().await.unwrap();
    let a = &files[0];
    assert_eq!((a.status(), a.vectors_created, a.size, a.modified_ns), (FileStatus::Completed, 3, 11, 43));
    assert_eq!(a.embedded_job_id.as_deref(), Some(job.as_str()));
    let b = &files[1];
    assert_eq!((b.status(), b.retry_count, b.error.as_deref()), (FileStatus::Failed, 2, Some("corrupt PDF")));
    let c = &files[2];
    assert_eq!((c.status(), c.retry_count, c.vectors_created), (FileStatus::NoText, 0, 0), "no text is no failure");

    collection.mark_deleted(&job, &["/docs/a.txt".into()]).await.unwrap();
    assert_eq!(collection.files().await.unwrap()[0].status(), FileStatus::Deleted);
    assert!(catalog.collection("other").files().await.unwrap().is_empty(), "collections are separate");

    // Rows come back exactly, whatever characters a path holds and however large its numbers.
    let mut odd = facts("/docs/\"quoted\" back\\slash tab\there\nnew line – ünïcode 🐝 'x'.txt", "h3");
    odd.modified_ns = 1_763_000_000_123_456_789;
    odd.size = i64::from(u32::MAX) * 4;
    catalog.collection("odd").mark_processing(&job, std::slice::from_ref(&odd)).await.unwrap();
    let rows = catalog.collection("odd").files().await.unwrap();
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
    assert_eq!(collection.jobs(10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn embedded_catalog_follows_the_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let url = Catalog::sqlite_url(dir.path());
    exercise(Catalog::connect(&url).await.unwrap()).await;
    // Reconnecting re-applies nothing and keeps the rows.
    let again = Catalog::connect(&url).await.unwrap();
    assert_eq!(again.collection("c").files().await.unwrap().len(), 3);
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
    let held = first.collection("c").lock_collection().await.unwrap();
    assert!(held.is_some());
    let error = second.collection("c").lock_collection().await.unwrap_err();
    assert!(error.downcast_ref::<ingest::lock::Busy>().is_some(), "{error:#}");
    assert!(second.collection("other").lock_collection().await.unwrap().is_some(), "other collections are free");
    drop(held);
    // The session ends asynchronously once its connection is dropped.
    let mut retaken = None;
    for _ in 0..50 {
        if let Ok(lock) = second.collection("c").lock_collection().await {
            retaken = lock;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(retaken.is_some(), "the lock is free again once its holder is gone");
}

/// What a run prints when its PostgreSQL collection lock is gone.
const LOCK_LOST: &str = "lost the collection lock on PostgreSQL (connection closed); stopped so no other run can \
                         interleave — run `ingest` again to resume";

#[tokio::test]
async fn a_collection_lock_knows_when_it_is_lost() {
    let db = FreshPostgres::create();
    let catalog = Catalog::connect(&db.url).await.unwrap();
    let lock = catalog.collection("c").lock_collection().await.unwrap().expect("PostgreSQL takes a lock");
    lock.ensure_held().await.expect("a fresh lock is held");
    assert_eq!(db.terminate_lock_holders(), 1);
    // The session ends asynchronously.
    let mut lost = None;
    for _ in 0..50 {
        if let Err(error) = lock.ensure_held().await {
            lost = Some(error);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let error = lost.expect("the lock is reported lost once its session is gone");
    assert!(error.downcast_ref::<ingest::catalog::LockLost>().is_some(), "{error:#}");
    assert_eq!(format!("{error:#}"), LOCK_LOST);
    assert!(catalog.all_jobs(1).await.is_ok(), "the catalog's own connections are untouched");
}

#[test]
fn secrets_in_server_urls_are_never_printed() {
    let ws = common::Workspace::new();
    for database_url in ["postgres://u:hunter1@127.0.0.1:1/db?password=hunter2", "postgres://u:hun#ter3@127.0.0.1:1/db"]
    {
        let qdrant_url = "http://u:hunter4@127.0.0.1:1/?api_key=hunter5";
        let output = ws.ingest(["check", "--database-url", database_url, "--qdrant-url", qdrant_url]);
        let shown = common::show(&output);
        assert_eq!(output.status.code(), Some(1), "{shown}");
        assert!(shown.contains("FAILED  catalog") && shown.contains("FAILED  vector store"), "{shown}");
        assert!(!shown.contains("hunter"), "{shown}");
    }
}

#[test]
fn a_lost_collection_lock_stops_the_run_and_a_rerun_completes() {
    let ws = common::Workspace::on_servers();
    let docs = ws.docs();
    std::fs::create_dir_all(&docs).unwrap();
    for (i, topic) in ["orchards", "vineyards", "meadows", "marshes", "prairies", "tundra"].iter().enumerate() {
        common::write(&docs, &format!("{topic}.txt"), &common::text(topic, 5 + 2 * i));
    }
    // Slow upserts and a commit per file: the run is mid-way when its lock's session ends.
    ws.qdrant().delay_every_call(std::time::Duration::from_millis(100));
    let flags = ["--quiet", "--chunk-size", "24", "--chunk-overlap", "0", "--commit-interval", "0"];
    let child = ws.spawn(&docs, &flags);
    ws.wait_for_upserts(2);
    assert_eq!(ws.postgres().terminate_lock_holders(), 1, "the run holds one advisory lock");
    let output = child.wait_with_output().unwrap();
    let shown = common::show(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(String::from_utf8_lossy(&output.stderr).contains(LOCK_LOST), "{shown}");

    let args = [docs.as_os_str()].into_iter().chain(common::SMALL_RUN.iter().map(std::ffi::OsStr::new));
    let report = ws.ingest_json(args, 0);
    assert_eq!(report["status"], "completed", "{report}");
    assert_eq!(report["failed"].as_array().map(Vec::len), Some(0), "{report}");
}

/// Generations are recorded once, however often the record is retried, and the catalog
/// refuses a second live generation of a collection.
async fn generations_are_recorded_once_and_one_is_live(url: &str) {
    use ingest::catalog::{GenerationRecipe, GenerationState, StoreNaming};
    let catalog = Catalog::connect(url).await.unwrap();
    let named = catalog.collection("c");
    let recipe =
        |model: &str| GenerationRecipe { model_id: model.into(), vector_dim: 384, chunk_size: 200, chunk_overlap: 32 };
    let add = async |model, state| named.add_generation(&recipe(model), state, StoreNaming::BehindAlias).await.unwrap();
    let first = add("a", GenerationState::Live).await;
    let again = add("a", GenerationState::Live).await;
    assert_eq!((first.number, again.number), (1, 1), "a retried record returns the one recorded");
    assert_eq!(
        (first.name.as_str(), first.store_collection.as_str()),
        ("c", "c-g1"),
        "behind the alias from the first"
    );
    let building = add("b", GenerationState::Building).await;
    assert_eq!(add("b", GenerationState::Building).await.number, building.number);
    assert_eq!((building.name.as_str(), building.store_collection.as_str()), ("c-g2", "c-g2"));
    assert_eq!(named.generations().await.unwrap().len(), 2);

    named.set_live_generation(building.number).await.unwrap();
    let states: Vec<_> = named.generations().await.unwrap().iter().map(|g| (g.number, g.state)).collect();
    assert_eq!(states, [(1, GenerationState::Previous), (2, GenerationState::Live)]);

    sqlx::any::install_default_drivers();
    let mut connection = <sqlx::AnyConnection as sqlx::Connection>::connect(url).await.unwrap();
    let second_live = sqlx::query("UPDATE generations SET state = 'live' WHERE collection = 'c' AND number = 1")
        .execute(&mut connection)
        .await;
    assert!(second_live.is_err(), "the catalog recorded a second live generation");
    let other = catalog.collection("other");
    let own = other.add_generation(&recipe("a"), GenerationState::Live, StoreNaming::OwnNameFirst).await.unwrap();
    assert_eq!(own.store_collection, "other", "the embedded engine's generation 1 keeps the collection's name");
    assert_eq!(other.generations().await.unwrap().len(), 1, "each collection has its own live generation");
}

#[tokio::test]
async fn embedded_catalog_records_generations_once_with_one_live() {
    let dir = tempfile::tempdir().unwrap();
    generations_are_recorded_once_and_one_is_live(&Catalog::sqlite_url(dir.path())).await;
}

#[tokio::test]
async fn postgres_catalog_records_generations_once_with_one_live() {
    let db = FreshPostgres::create();
    generations_are_recorded_once_and_one_is_live(&db.url).await;
}
