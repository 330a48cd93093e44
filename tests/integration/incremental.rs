//! A re-run touches only what changed, and ends exactly where a from-scratch run of the final
//! tree ends: same catalog rows, same points, same live parquet rows.

use crate::common;

use std::ffi::OsStr;

use common::{snapshot, text, write, Workspace};

#[test]
fn a_new_extractor_version_re_embeds_only_its_format_embedded() {
    a_new_extractor_version_re_embeds_only_its_format(Workspace::new().with_fixtures());
}

#[test]
fn a_new_extractor_version_re_embeds_only_its_format_on_servers() {
    a_new_extractor_version_re_embeds_only_its_format(Workspace::on_servers().with_fixtures());
}

/// The rows of one format say an older extractor of that format made their text: the next
/// run re-embeds that format's files and nothing else. Tried for DOCX, then for PPTX.
fn a_new_extractor_version_re_embeds_only_its_format(ws: Workspace) {
    let docs = ws.docs();
    let run = |extra: &[&str], code: i32| {
        let flags = ["--json", "--quiet"].into_iter().chain(extra.iter().copied()).map(OsStr::new);
        ws.ingest_json([docs.as_os_str()].into_iter().chain(flags), code)
    };
    let first = run(&[], 2);
    let settled = first["unchanged"].as_i64().unwrap() + first["added"].as_i64().unwrap() + 2;
    let fixture = |name: &str| docs.join(name).canonicalize().unwrap().display().to_string();
    for (extension, version, files) in [
        (
            "docx",
            "extract-2",
            vec![fixture("finance/compound-interest.docx"), fixture("music/jazz-improvisation.docx")],
        ),
        ("pptx", "pptx-1", vec![fixture("coffee/espresso-brewing.pptx")]),
    ] {
        ws.execute_on_catalog(&format!(
            "UPDATE files SET logic_fingerprint = replace(logic_fingerprint, '|{version}', '|older') \
             WHERE extension = '{extension}' AND status = 'completed'"
        ));
        let plan = run(&["--dry-run"], 0);
        // Files that failed are retried anyway; of the others, only this format's are to update.
        let mut update: Vec<String> = plan["plan"]["update"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .filter(|p| !p.contains("/bad/"))
            .collect();
        update.sort();
        assert_eq!(update, files, "{extension}: {plan:#}");
        let again = run(&[], 2);
        let count = files.len() as i64;
        assert_eq!((&again["updated"], &again["added"]), (&count.into(), &0.into()), "{again:#}");
        assert_eq!(
            again["unchanged"].as_i64().unwrap(),
            settled - count,
            "every other settled file is unchanged: {again:#}"
        );
    }
}

#[test]
fn rerun_after_edits_equals_a_fresh_ingest_and_embeds_only_changes_embedded() {
    rerun_after_edits_equals_a_fresh_ingest_and_embeds_only_changes(Workspace::new());
}

#[test]
fn rerun_after_edits_equals_a_fresh_ingest_and_embeds_only_changes_on_servers() {
    rerun_after_edits_equals_a_fresh_ingest_and_embeds_only_changes(Workspace::on_servers());
}

fn rerun_after_edits_equals_a_fresh_ingest_and_embeds_only_changes(ws: Workspace) {
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

    let fresh = ws.another();
    let scratch = ingest_small(&fresh);
    let incremental = snapshot(&ws);
    let expected = snapshot(&fresh);
    assert_eq!(incremental, expected);

    // Only the changed files were embedded or taken from the cache: everything but keep.txt.
    // The renamed file's chunks are all in the cache.
    let keep_vectors = expected.files[&docs.join("keep.txt").display().to_string()].2;
    let renamed_vectors = expected.files[&docs.join("renamed.txt").display().to_string()].2;
    let work = |r: &serde_json::Value| r["chunks"].as_i64().unwrap() + r["cache_hits"].as_i64().unwrap();
    assert_eq!(work(&second), work(&scratch) - keep_vectors, "{second:#}");
    assert!(second["cache_hits"].as_i64().unwrap() >= renamed_vectors, "{second:#}");
}

#[test]
fn dry_run_reports_the_changes_and_makes_none() {
    let ws = Workspace::new();
    let docs = ws.docs();
    std::fs::create_dir_all(&docs).unwrap();
    write(&docs, "keep.txt", &text("glaciers", 6));
    write(&docs, "edit.txt", &text("volcanoes", 6));
    write(&docs, "gone.txt", &text("deserts", 6));
    ws.ingest_json([docs.as_os_str(), "--json".as_ref(), "--quiet".as_ref()], 0);
    let before = snapshot(&ws);

    write(&docs, "edit.txt", &text("earthquakes", 6));
    write(&docs, "new.txt", &text("oceans", 6));
    std::fs::remove_file(docs.join("gone.txt")).unwrap();
    let plan = ws.ingest_json([docs.as_os_str(), "--dry-run".as_ref(), "--json".as_ref()], 0);
    assert_eq!(plan["status"], "dry-run", "{plan:#}");
    let path = |name: &str| serde_json::Value::from(docs.join(name).display().to_string());
    assert_eq!(plan["plan"]["add"], serde_json::json!([path("new.txt")]), "{plan:#}");
    assert_eq!(plan["plan"]["update"], serde_json::json!([path("edit.txt")]), "{plan:#}");
    assert_eq!(plan["plan"]["delete"], serde_json::json!([path("gone.txt")]), "{plan:#}");
    assert_eq!((&plan["unchanged"], &plan["chunks"]), (&1.into(), &0.into()), "{plan:#}");
    assert_eq!(snapshot(&ws), before, "a dry run changes nothing");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let jobs = runtime.block_on(async { ws.catalog().await.all_jobs(10).await }).unwrap();
    assert_eq!(jobs.len(), 1, "a dry run records no job");
}

#[test]
fn failing_files_are_retried_up_to_the_limit_then_left_until_they_change() {
    let ws = Workspace::new();
    let docs = ws.docs();
    std::fs::create_dir_all(&docs).unwrap();
    write(&docs, "good.txt", &text("comets", 4));
    std::fs::write(docs.join("broken.pdf"), b"%PDF-1.4 this is not really a pdf").unwrap();
    let run =
        |code| ws.ingest_json([docs.as_os_str(), "--json".as_ref(), "--max-retries".as_ref(), "2".as_ref()], code);
    for _ in 0..2 {
        let report = run(2);
        assert_eq!(report["failed"].as_array().unwrap().len(), 1, "{report:#}");
    }
    let third = run(0);
    assert_eq!(third["failed"], serde_json::json!([]), "{third:#}");
    let skipped = third["not_retried"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{third:#}");
    assert!(skipped[0]["reason"].as_str().unwrap().contains("failed 2 runs in a row"), "{third:#}");

    let status = ws.ingest(["status"]);
    let listing = String::from_utf8_lossy(&status.stdout);
    assert!(listing.contains("broken.pdf (tries: 2)"), "{}", common::show(&status));
    assert!(
        listing.contains("sync health: collection \"documents\": 1 completed files, 1 synced (100.0%)"),
        "{listing}"
    );

    // A changed file is tried again.
    std::fs::write(docs.join("broken.pdf"), b"%PDF-1.4 still not a pdf, but different").unwrap();
    assert_eq!(run(2)["failed"].as_array().unwrap().len(), 1);
}

#[test]
fn a_no_change_rerun_over_ten_thousand_files_reads_no_file() {
    let ws = Workspace::new();
    let docs = ws.docs();
    for dir in 0..100 {
        let sub = docs.join(format!("d{dir:02}"));
        std::fs::create_dir_all(&sub).unwrap();
        for file in 0..100 {
            write(&sub, &format!("n{file:02}.txt"), &format!("Note {dir}-{file}: shelf {file} of room {dir}."));
        }
    }
    let run = || ws.ingest_json([docs.as_os_str(), "--json".as_ref(), "--quiet".as_ref()], 0);
    let first = run();
    assert_eq!((&first["added"], &first["files_read"]), (&10_000.into(), &10_000.into()), "{first:#}");

    let again = run();
    assert_eq!(again["unchanged"], 10_000, "{again:#}");
    assert_eq!((&again["files_read"], &again["bytes_read"], &again["chunks"]), (&0.into(), &0.into(), &0.into()));

    // A touched but unchanged file is read once to compare its hash, and not embedded.
    let touched = docs.join("d42/n42.txt");
    let body = std::fs::read(&touched).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&touched, body).unwrap();
    let third = run();
    assert_eq!((&third["files_read"], &third["chunks"], &third["unchanged"]), (&1.into(), &0.into(), &10_000.into()));
    assert_eq!(run()["files_read"], 0, "the refreshed mtime is remembered");
}

/// A database whose own collation orders paths otherwise than by their bytes (ICU English
/// puts `B.txt` after `a/x.txt`, and `a b/` before `a-b.txt`): a run compares the catalog's
/// rows with the walk in one pass, in byte order, so the catalog's paths are made to compare
/// by bytes, also in a catalog whose paths an older build left in the database's collation.
#[test]
fn paths_a_database_collates_otherwise_are_matched_to_the_walk() {
    let ws = Workspace {
        temp: tempfile::tempdir().unwrap(),
        backend: common::Backend::Servers {
            postgres: common::postgres::FreshPostgres::create_with(
                "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en'",
            ),
            qdrant: common::qdrant_server::TestQdrant::start(),
        },
    };
    let docs = ws.docs();
    let names = ["a/x.txt", "a.txt", "a-b.txt", "a b/y.txt", "B.txt", "é.txt", "a/b/c.txt", "Zz.txt", "a0.txt"];
    for name in names {
        std::fs::create_dir_all(docs.join(name).parent().unwrap()).unwrap();
        write(&docs, name, &format!("The file called {name} is one of a few with names that sort apart."));
    }
    let run = || ws.ingest_json([docs.as_os_str(), "--json".as_ref(), "--quiet".as_ref()], 0);
    assert_eq!(run()["added"], names.len(), "first run");
    let collation = "SELECT CASE WHEN collation_name = 'C' THEN 1 ELSE 0 END FROM information_schema.columns
                     WHERE table_name = 'files' AND column_name = 'path'";
    assert_eq!(ws.catalog_number(collation), 1, "paths compare by their bytes");
    let again = run();
    assert_eq!(
        (&again["unchanged"], &again["deleted"], &again["files_read"]),
        (&names.len().into(), &0.into(), &0.into())
    );

    // A catalog an older build made: paths in the database's own collation.
    ws.execute_on_catalog(r#"ALTER TABLE files ALTER COLUMN path TYPE TEXT COLLATE "default""#);
    assert_eq!(ws.catalog_number(collation), 0);
    std::fs::remove_file(docs.join("a/x.txt")).unwrap();
    write(&docs, "a-c.txt", "A new file between a-b.txt and a.txt, in byte order.");
    let changed = run();
    let counts = ["added", "updated", "deleted", "unchanged"].map(|key| changed[key].as_u64().unwrap());
    assert_eq!(counts, [1, 0, 1, names.len() as u64 - 1], "{changed:#}");
    assert_eq!(ws.catalog_number(collation), 1, "switched on connect");
    assert_eq!(run()["unchanged"], names.len(), "and settled");
}

#[test]
fn copied_and_partly_edited_files_reuse_cached_vectors() {
    let ws = Workspace::new();
    let docs = ws.docs();
    std::fs::create_dir_all(&docs).unwrap();
    let small = ["--json", "--quiet", "--chunk-size", "32", "--chunk-overlap", "0"];
    let run = || ws.ingest_json([docs.as_os_str()].into_iter().chain(small.map(OsStr::new)), 0);
    write(&docs, "original.txt", &text("lagoons", 12));
    let first = run();
    let chunks = first["chunks"].as_u64().unwrap();
    assert!(chunks > 2, "{first:#}");

    std::fs::copy(docs.join("original.txt"), docs.join("copy.txt")).unwrap();
    let second = run();
    assert_eq!((&second["chunks"], &second["cache_hits"]), (&0.into(), &chunks.into()), "{second:#}");

    // Appending a sentence leaves the leading chunks as they were.
    write(&docs, "original.txt", &format!("{} One more sentence at the end.", text("lagoons", 12)));
    let third = run();
    assert!(third["cache_hits"].as_u64().unwrap() >= chunks - 1, "{third:#}");
    assert!(third["chunks"].as_u64().unwrap() <= 2, "{third:#}");

    let points = ws.stored_points("documents", true);
    let by_doc = |name: &str| -> Vec<Vec<f32>> {
        let doc = ingest::hash::doc_id(&docs.join(name).display().to_string());
        let mut mine: Vec<_> = points.values().filter(|p| p.payload.doc_id == doc).collect();
        mine.sort_by_key(|p| p.payload.chunk_index);
        mine.into_iter().map(|p| p.vector.clone()).collect()
    };
    let (original, copy) = (by_doc("original.txt"), by_doc("copy.txt"));
    assert_eq!(copy.len() as u64, chunks);
    assert_eq!(original[..copy.len() - 1], copy[..copy.len() - 1], "cached vectors are the model's own");

    // --full bypasses the cache and embeds again, to the same vectors within 1e-5.
    let full =
        ws.ingest_json([docs.as_os_str()].into_iter().chain(small.map(OsStr::new)).chain(["--full".as_ref()]), 0);
    assert_eq!(full["cache_hits"], 0, "{full:#}");
    let again = ws.stored_points("documents", true);
    for (id, point) in &points {
        for (a, b) in point.vector.iter().zip(&again[id].vector) {
            assert!((a - b).abs() < 1e-5);
        }
    }
}
