//! A re-run touches only what changed, and ends exactly where a from-scratch run of the final
//! tree ends: same catalog rows, same points, same live parquet rows.

mod common;

use std::ffi::OsStr;

use common::{snapshot, text, write, Workspace};

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

    // Only the changed files were embedded: everything but keep.txt.
    let keep_vectors = expected.files[&docs.join("keep.txt").display().to_string()].2;
    assert_eq!(second["chunks"].as_i64().unwrap(), scratch["chunks"].as_i64().unwrap() - keep_vectors);
}
