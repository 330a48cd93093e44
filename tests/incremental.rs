//! A re-run touches only what changed, and ends exactly where a from-scratch run of the final
//! tree ends: same catalog rows, same points, same live parquet rows.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::Path;

use common::Workspace;
use ingest::catalog::{Catalog, FileStatus};
use ingest::parquet_copy::{read_points, ParquetCopy};

fn text(topic: &str, sentences: usize) -> String {
    (0..sentences)
        .map(|i| format!("Note {i} about {topic}: the {topic} behaves in way number {i}."))
        .collect::<Vec<_>>()
        .join(" ")
}

fn write(root: &Path, name: &str, body: &str) {
    std::fs::write(root.join(name), body).unwrap();
}

/// Everything observable about a collection, minus run-specific ids and times.
#[derive(Debug, PartialEq)]
struct Snapshot {
    /// path → (status, content hash, vectors)
    files: BTreeMap<String, (String, Option<String>, i64)>,
    /// point id → (doc_id, chunk index, content hash)
    points: BTreeMap<uuid::Uuid, (String, u32, String)>,
    /// point id of every live parquet row → content hash
    parquet: BTreeMap<uuid::Uuid, String>,
}

fn snapshot(data: &Path) -> Snapshot {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let catalog = runtime.block_on(Catalog::connect(&Catalog::sqlite_url(data))).unwrap();
    let rows = runtime.block_on(catalog.files("documents")).unwrap();
    let files = rows
        .iter()
        .filter(|f| f.status() != FileStatus::Deleted)
        .map(|f| (f.path.clone(), (f.status.clone(), f.content_hash.clone(), f.vectors_created)))
        .collect();
    let points = common::stored_points(data, "documents", false)
        .into_values()
        .map(|p| (p.id, (p.payload.doc_id, p.payload.chunk_index, p.payload.content_hash)))
        .collect();
    let live: BTreeMap<(String, String), i64> = rows
        .iter()
        .filter(|f| f.status() == FileStatus::Completed)
        .map(|f| ((f.doc_id.clone(), f.embedded_job_id.clone().unwrap()), f.vectors_created))
        .collect();
    let mut parquet = BTreeMap::new();
    for file in ParquetCopy::new(data, "documents", 384).files().unwrap() {
        for row in read_points(&file, 384).unwrap() {
            let key = (row.payload.doc_id.clone(), row.payload.job_id.clone());
            if live.get(&key).is_some_and(|&n| (row.payload.chunk_index as i64) < n) {
                parquet.insert(row.id, row.payload.content_hash);
            }
        }
    }
    Snapshot { files, points, parquet }
}

#[test]
fn rerun_after_edits_equals_a_fresh_ingest_and_embeds_only_changes() {
    let ws = Workspace::new();
    let docs = ws.docs();
    std::fs::create_dir_all(&docs).unwrap();
    let small = ["--json", "--quiet", "--chunk-size", "32", "--chunk-overlap", "0"];
    let ingest_small = |ws: &Workspace| ws.ingest_json([docs.as_os_str()].into_iter().chain(small.map(OsStr::new)), 0);
    write(&docs, "keep.txt", &text("glaciers", 12));
    write(&docs, "edit.txt", &text("volcanoes", 12));
    write(&docs, "shorten.txt", &text("rivers", 20));
    write(&docs, "delete.txt", &text("deserts", 8));
    write(&docs, "rename-me.txt", &text("forests", 8));
    let first = ingest_small(&ws);
    assert_eq!(first["added"], 5, "{first:#}");

    write(&docs, "edit.txt", &text("earthquakes", 12));
    write(&docs, "shorten.txt", &text("rivers", 4));
    write(&docs, "added.txt", &text("oceans", 6));
    std::fs::remove_file(docs.join("delete.txt")).unwrap();
    std::fs::rename(docs.join("rename-me.txt"), docs.join("renamed.txt")).unwrap();
    let second = ingest_small(&ws);
    assert_eq!(
        (&second["added"], &second["updated"], &second["unchanged"], &second["deleted"]),
        (&2.into(), &2.into(), &1.into(), &2.into()),
        "{second:#}"
    );

    let fresh = Workspace::new();
    let scratch = ingest_small(&fresh);
    let incremental = snapshot(&ws.data());
    let expected = snapshot(&fresh.data());
    assert_eq!(incremental, expected);

    // Only the changed files were embedded: everything but keep.txt.
    let keep_vectors = expected.files[&docs.join("keep.txt").display().to_string()].2;
    assert_eq!(second["chunks"].as_i64().unwrap(), scratch["chunks"].as_i64().unwrap() - keep_vectors);
}
