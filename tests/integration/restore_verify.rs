//! Restore from parquet and verify/repair, through the real binary on both backends.

use crate::common;

use std::ffi::OsStr;

use common::{show, text, write, Workspace};
use ingest::store::{Point, VectorIndex};

const QUERIES: &[&str] = &["molten rock and eruptions", "ice sheets moving slowly", "tides and the moon"];

fn indexed_tree(ws: &Workspace) -> serde_json::Value {
    let docs = ws.docs();
    std::fs::create_dir_all(&docs).unwrap();
    for (i, topic) in ["volcanoes", "glaciers", "tides", "comets", "deltas"].iter().enumerate() {
        write(&docs, &format!("{topic}.txt"), &text(topic, 6 + 3 * i));
    }
    ingest_again(ws)
}

/// Dense rankings: the synthetic chunks repeat their words, so their BM25 scores tie, and a
/// fused ranking orders tied points as the engine stores them, which a restore changes. The
/// sparse vectors themselves are compared point by point (the export below, and `verify`).
fn searches(ws: &Workspace) -> Vec<serde_json::Value> {
    QUERIES.iter().map(|q| ws.ingest_json(["search", q, "-k", "5", "--mode", "dense", "--json"], 0)).collect()
}

fn verify(ws: &Workspace, repair: bool, code: i32) -> serde_json::Value {
    let mut args = vec!["verify", "--json"];
    if repair {
        args.push("--repair");
    }
    ws.ingest_json(args, code)
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Runtime::new().unwrap().block_on(future)
}

fn round_trip(ws: Workspace) {
    let report = indexed_tree(&ws);
    let before = searches(&ws);
    assert_eq!(verify(&ws, false, 0)["clean"], true);

    block_on(async { ws.live_index("documents").await.drop_collection().await.unwrap() });
    assert!(ws.stored_points("documents", false).is_empty());
    let restored = ws.ingest_json(["restore", "--json", "--quiet"], 0);
    assert_eq!(restored["points_restored"], report["points"], "{restored:#}");
    assert_eq!(restored["files_restored"], 5, "{restored:#}");

    assert_eq!(searches(&ws), before, "search results must be identical after the restore");
    let health = verify(&ws, false, 0);
    assert_eq!(health["health"]["synced_percent"], 100.0, "{health:#}");
    // Restoring again changes nothing.
    ws.ingest_json(["restore", "--json", "--quiet"], 0);
    assert_eq!(searches(&ws), before);

    // An export is one fresh file of the live points, and a collection restores from it too.
    let out = ws.temp.path().join("export");
    let exported = ws.ingest_json(["export".as_ref(), "--out".as_ref(), out.as_os_str(), "--json".as_ref()], 0);
    assert_eq!(exported["points"], report["points"], "{exported:#}");
    let rows = ingest::parquet_copy::read_points(&out.join("documents.parquet"), 384).unwrap();
    let stored = ws.stored_points("documents", true);
    assert_eq!(rows.len(), stored.len());
    assert!(rows.iter().all(|row| stored[&row.id] == *row), "the export equals the stored points");
    block_on(async { ws.live_index("documents").await.drop_collection().await.unwrap() });
    ws.ingest_json(["restore".as_ref(), out.as_os_str(), "--json".as_ref(), "--quiet".as_ref()], 0);
    assert_eq!(searches(&ws), before);
    assert_eq!(verify(&ws, false, 0)["clean"], true);
}

#[test]
fn drop_and_restore_gives_identical_search_results_embedded() {
    round_trip(Workspace::new());
}

#[test]
fn drop_and_restore_gives_identical_search_results_on_servers() {
    round_trip(Workspace::on_servers());
}

/// Applies `damage`, checks that verify sees it under `field`, repairs, and checks clean.
fn detect_and_repair(
    ws: &Workspace,
    field: &str,
    damage: impl FnOnce(&dyn VectorIndex) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>>,
) {
    block_on(async {
        let index = ws.index("documents").await;
        damage(index.as_ref()).await;
    });
    let found = verify(ws, false, 2);
    assert!(found["health"][field].as_u64().unwrap() > 0, "{field} not detected: {found:#}");
    let repaired = verify(ws, true, 0);
    assert_eq!(repaired["after_repair"]["synced_percent"], 100.0, "{repaired:#}");
    assert_eq!(verify(ws, false, 0)["clean"], true);
}

#[test]
fn verify_detects_and_repairs_each_kind_of_damage() {
    let ws = Workspace::new();
    indexed_tree(&ws);
    let before = searches(&ws);
    let stored = ws.stored_points("documents", true);
    let victims: Vec<uuid::Uuid> = stored.keys().step_by(3).copied().collect();

    detect_and_repair(&ws, "missing_points", |index| {
        Box::pin(async move { index.delete_points(&victims).await.unwrap() })
    });

    let mut foreign: Point = stored.values().next().unwrap().clone();
    foreign.id = uuid::Uuid::new_v4();
    foreign.payload.doc_id = "not-a-document".into();
    detect_and_repair(&ws, "orphan_points", |index| {
        Box::pin(async move { index.upsert(vec![foreign]).await.unwrap() })
    });

    let mut changed: Point = stored.values().nth(1).unwrap().clone();
    changed.payload.content = "tampered".into();
    detect_and_repair(&ws, "stale_points", |index| Box::pin(async move { index.upsert(vec![changed]).await.unwrap() }));
    assert_eq!(searches(&ws), before, "repairs restore exactly what was there");

    // Counters edited in the catalog.
    block_on(async {
        let catalog = ws.catalog().await;
        let job = catalog.collection("documents").jobs(1).await.unwrap().remove(0);
        let edited = ingest::catalog::JobCounters { processed_files: 999, deleted_files: 7, ..job.counters };
        catalog.save_progress(&job.id, &edited, None).await.unwrap();
    });
    let found = verify(&ws, false, 2);
    assert_eq!(found["health"]["counter_mismatches"].as_array().unwrap().len(), 2, "{found:#}");
    let repaired = verify(&ws, true, 0);
    assert_eq!(repaired["repair"]["counters_fixed"], true, "{repaired:#}");
    assert_eq!(verify(&ws, false, 0)["clean"], true);

    assert_eq!(searches(&ws), before);
}

fn ingest_again(ws: &Workspace) -> serde_json::Value {
    let docs = ws.docs();
    ws.ingest_json([docs.as_os_str()].into_iter().chain(["--json", "--quiet", "--chunk-size", "40"].map(OsStr::new)), 0)
}

#[test]
fn repair_recovers_each_point_from_whichever_side_holds_it_embedded() {
    repair_recovers_each_point_from_whichever_side_holds_it(Workspace::new());
}

#[test]
fn repair_recovers_each_point_from_whichever_side_holds_it_on_servers() {
    repair_recovers_each_point_from_whichever_side_holds_it(Workspace::on_servers());
}

/// Healthy points whose parquet rows are gone are written back to parquet, not deleted;
/// only a file lost from both sides returns to pending.
fn repair_recovers_each_point_from_whichever_side_holds_it(ws: Workspace) {
    indexed_tree(&ws);
    let copy = ingest::parquet_copy::ParquetCopy::new(&ws.data(), "documents", 384);
    let first_job_file = copy.files().unwrap().remove(0);
    write(&ws.docs(), "tides.txt", &text("moon tides", 9));
    ingest_again(&ws);
    let before = common::snapshot(&ws);
    let searched = searches(&ws);

    // The first job's copy is lost: four files' rows, while their points are healthy.
    std::fs::remove_file(&first_job_file).unwrap();
    let found = verify(&ws, false, 2);
    assert!(found["health"]["missing_parquet_rows"].as_u64().unwrap() > 0, "{found:#}");
    assert_eq!(found["health"]["missing_points"], 0, "{found:#}");
    let repaired = verify(&ws, true, 0);
    assert_eq!(repaired["repair"]["files_to_reembed"], serde_json::json!([]), "{repaired:#}");
    let written = repaired["repair"]["parquet_rows_written"].as_u64().unwrap();
    assert!(written > 0, "{repaired:#}");
    assert_eq!(common::snapshot(&ws), before, "points, rows and the parquet copy are whole again");
    // The rows written back are a real copy: the collection restores from them.
    block_on(async { ws.live_index("documents").await.drop_collection().await.unwrap() });
    ws.ingest_json(["restore", "--json", "--quiet"], 0);
    assert_eq!(searches(&ws), searched);

    // Lost from both sides: the edited file's points and its job's copy.
    let second_job_file = copy.files().unwrap().into_iter().find(|f| !f.to_string_lossy().contains("repair-")).unwrap();
    std::fs::remove_file(second_job_file).unwrap();
    let tides = ws.docs().join("tides.txt").display().to_string();
    let doc_id = ingest::hash::doc_id(&tides);
    block_on(async { ws.index("documents").await.delete_documents(&[doc_id]).await.unwrap() });
    let repaired = verify(&ws, true, 0);
    assert_eq!(repaired["repair"]["files_to_reembed"], serde_json::json!([tides]), "{repaired:#}");
    let rerun = ingest_again(&ws);
    assert_eq!((&rerun["updated"], &rerun["unchanged"]), (&1.into(), &4.into()), "{rerun:#}");
    assert_eq!(common::snapshot(&ws).points, before.points);
    assert_eq!(searches(&ws), searched);
}

#[test]
fn a_missing_parquet_copy_stops_repair_and_restore_before_any_change_embedded() {
    a_missing_parquet_copy_stops_repair_and_restore_before_any_change(Workspace::new());
}

#[test]
fn a_missing_parquet_copy_stops_repair_and_restore_before_any_change_on_servers() {
    a_missing_parquet_copy_stops_repair_and_restore_before_any_change(Workspace::on_servers());
}

fn a_missing_parquet_copy_stops_repair_and_restore_before_any_change(ws: Workspace) {
    indexed_tree(&ws);
    let dir = ws.data().join("parquet").join("documents");
    let elsewhere = ws.temp.path().join("parquet-elsewhere");
    std::fs::rename(&dir, &elsewhere).unwrap();
    let points = ws.stored_points("documents", false).len();
    // Missing outright, then an empty directory where a volume is not mounted.
    for empty_mount_point in [false, true] {
        if empty_mount_point {
            std::fs::create_dir_all(&dir).unwrap();
        }
        for args in [&["verify", "--repair"][..], &["restore"]] {
            let output = ws.ingest(args);
            assert_eq!(output.status.code(), Some(1), "{}", show(&output));
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(stderr.contains("nothing was changed") && stderr.lines().count() == 1, "{}", show(&output));
            assert_eq!(ws.stored_points("documents", false).len(), points, "{args:?} deleted points");
            let files = block_on(async { ws.catalog().await.collection("documents").files().await.unwrap() });
            assert!(files.iter().all(|f| f.status == "completed"), "{args:?} changed the catalog: {files:?}");
        }
    }
    std::fs::remove_dir(&dir).unwrap();
    std::fs::rename(&elsewhere, &dir).unwrap();
    assert_eq!(verify(&ws, false, 0)["clean"], true);
}

#[test]
fn repair_and_restore_wait_for_no_one_they_take_the_collection_lock() {
    let ws = Workspace::on_servers();
    indexed_tree(&ws);
    // Another machine's run holds the PostgreSQL lock; this host's lock file is free.
    let held = block_on(async { ws.catalog().await.collection("documents").lock_collection().await.unwrap() });
    assert!(held.is_some());
    for args in [&["verify", "--repair"][..], &["restore"]] {
        let output = ws.ingest(args);
        assert_eq!(output.status.code(), Some(3), "{}", show(&output));
        assert!(String::from_utf8_lossy(&output.stderr).contains("another ingest run"), "{}", show(&output));
    }
    drop(held);
    // And this host's lock file, on the embedded default.
    let ws = Workspace::new();
    indexed_tree(&ws);
    let _held = ingest::lock::RunLock::acquire(&ws.data().join("locks"), "documents").unwrap();
    for args in [&["verify", "--repair"][..], &["restore"]] {
        assert_eq!(ws.ingest(args).status.code(), Some(3));
    }
}

#[test]
fn a_bad_parquet_file_is_named_and_skipped() {
    let ws = Workspace::new();
    indexed_tree(&ws);
    let dir = ws.data().join("parquet").join("documents");
    std::fs::write(dir.join("garbage.parquet"), b"PAR1 not really parquet").unwrap();
    block_on(async { ws.live_index("documents").await.drop_collection().await.unwrap() });
    let output = ws.ingest(["restore", "--quiet"]);
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("garbage.parquet"), "{}", show(&output));
    assert_eq!(verify(&ws, false, 2)["health"]["missing_points"], 0, "everything else was restored");
}

#[test]
fn the_parquet_copy_reads_in_pyarrow() {
    let ws = Workspace::new();
    let report = indexed_tree(&ws);
    // scripts/test.sh installs pyarrow into a virtual environment next to the model.
    let python = std::env::var("INGEST_TEST_PYTHON")
        .unwrap_or_else(|_| ingest::model::runtime_home().join("pyenv/bin/python").display().to_string());
    let dir = ws.data().join("parquet").join("documents");
    let script = r#"
import sys, pyarrow.parquet as pq, pyarrow as pa
table = pq.read_table(sys.argv[1])
s = table.schema
v = s.field("vector").type
assert pa.types.is_fixed_size_list(v) and v.list_size == 384 and v.value_type == pa.float32(), v
assert s.field("chunk_index").type == pa.uint32()
assert str(s.field("created_at").type) == "timestamp[us, tz=UTC]", s.field("created_at").type
assert s.field("page").type == pa.uint32() and s.field("page").nullable, s.field("page")
assert s.metadata[b"ingest.schema_version"] == b"4", s.metadata
assert s.field("ocr").type == pa.bool_() and s.field("ocr").nullable, s.field("ocr")
assert s.field("sparse_indices").type == pa.list_(pa.field("item", pa.uint32(), nullable=False)), s.field("sparse_indices")
assert s.field("sparse_values").type == pa.list_(pa.field("item", pa.float32(), nullable=False)), s.field("sparse_values")
assert all(len(i) == len(v) > 0 for i, v in zip(table.column("sparse_indices").to_pylist(), table.column("sparse_values").to_pylist()))
print(table.num_rows, ",".join(s.names))
"#;
    let output = std::process::Command::new(&python).arg("-c").arg(script).arg(&dir).output().unwrap_or_else(|e| {
        panic!("cannot run {python} ({e}); scripts/test.sh installs pyarrow and sets INGEST_TEST_PYTHON")
    });
    assert!(output.status.success(), "{}", show(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let (rows, columns) = stdout.trim().split_once(' ').unwrap();
    assert_eq!(rows, report["points"].to_string());
    assert_eq!(
        columns,
        "doc_id,chunk_index,point_id,path,content,content_hash,model,job_id,vector,created_at,\
         page,page_end,sheet,slide,heading,title,sparse_indices,sparse_values,analyzer,ocr"
    );
}

#[test]
fn check_files_finds_files_changed_or_gone_since_indexing() {
    let ws = Workspace::new();
    indexed_tree(&ws);
    let docs = ws.docs();
    write(&docs, "tides.txt", "The tides were rewritten after indexing.");
    std::fs::remove_file(docs.join("comets.txt")).unwrap();
    assert_eq!(verify(&ws, false, 0)["clean"], true, "the stores still agree with each other");
    let checked = ws.ingest_json(["verify", "--check-files", "--json"], 2);
    let disk = &checked["health"]["files_on_disk"];
    assert_eq!(disk["checked"], 5, "{checked:#}");
    let name = |v: &serde_json::Value| v[0].as_str().unwrap().rsplit('/').next().unwrap().to_string();
    assert_eq!((name(&disk["changed"]), name(&disk["missing"])), ("tides.txt".into(), "comets.txt".into()));
}

/// `ingest ARGS --json` walking the id space in ranges of `points` expected points.
fn in_ranges(ws: &Workspace, points: u64, args: &[&str], code: i32) -> serde_json::Value {
    let output = ws.command(args).env("INGEST_POINTS_PER_RANGE", points.to_string()).output().unwrap();
    common::json_of(&output, code)
}

/// The health report without its examples, which name the same files in another order.
fn health_without_examples(mut report: serde_json::Value) -> serde_json::Value {
    let examples = report["health"]["examples"].take();
    let mut examples: Vec<String> = serde_json::from_value(examples).unwrap();
    examples.sort();
    report["health"]["examples"] = serde_json::json!(examples);
    report["health"].take()
}

/// Verify, repair and restore walk the collection one range of point ids at a time; over a
/// dozen ranges they find and do what one range does, on both backends.
fn many_ranges_find_and_repair_what_one_range_finds(ws: Workspace) {
    indexed_tree(&ws);
    let before = searches(&ws);
    let stored = ws.stored_points("documents", true);
    let expected = stored.len() as u64;
    let range = (expected / 12).max(1);
    let mut changed: Point = stored.values().nth(1).unwrap().clone();
    changed.payload.content = "tampered".into();
    let mut foreign: Point = stored.values().next().unwrap().clone();
    foreign.id = uuid::Uuid::new_v4();
    foreign.payload.doc_id = "not-a-document".into();
    let victims: Vec<uuid::Uuid> = stored.keys().skip(2).step_by(5).copied().collect();
    block_on(async {
        let index = ws.index("documents").await;
        index.delete_points(&victims).await.unwrap();
        index.upsert(vec![changed, foreign]).await.unwrap();
    });

    let one = verify(&ws, false, 2);
    let many = in_ranges(&ws, range, &["verify", "--json"], 2);
    assert_eq!(health_without_examples(many), health_without_examples(one.clone()), "{one:#}");
    assert_eq!(one["health"]["missing_points"], victims.len(), "{one:#}");
    assert_eq!((&one["health"]["stale_points"], &one["health"]["orphan_points"]), (&1.into(), &1.into()), "{one:#}");

    let repaired = in_ranges(&ws, range, &["verify", "--repair", "--json"], 0);
    assert_eq!(repaired["repair"]["points_reuploaded"], victims.len() + 1, "{repaired:#}");
    assert_eq!(repaired["repair"]["orphans_deleted"], 1, "{repaired:#}");
    assert_eq!(verify(&ws, false, 0)["clean"], true);
    assert_eq!(searches(&ws), before);

    block_on(async { ws.live_index("documents").await.drop_collection().await.unwrap() });
    let restored = in_ranges(&ws, range, &["restore", "--json", "--quiet"], 0);
    assert_eq!(restored["points_restored"], expected, "{restored:#}");
    assert_eq!(restored["files_restored"], 5, "{restored:#}");
    let payloads = |points: &std::collections::BTreeMap<uuid::Uuid, Point>| {
        points.iter().map(|(id, point)| (*id, point.payload.clone())).collect::<Vec<_>>()
    };
    assert_eq!(payloads(&ws.stored_points("documents", false)), payloads(&stored), "every point is back, as it was");
    assert_eq!(searches(&ws), before);
    assert_eq!(in_ranges(&ws, range, &["verify", "--json"], 0)["clean"], true);
}

#[test]
fn many_ranges_find_and_repair_what_one_range_finds_embedded() {
    many_ranges_find_and_repair_what_one_range_finds(Workspace::new());
}

#[test]
fn many_ranges_find_and_repair_what_one_range_finds_on_servers() {
    many_ranges_find_and_repair_what_one_range_finds(Workspace::on_servers());
}

/// The most data memory (`RLIMIT_DATA`: heap and private mappings) `verify` and `restore`
/// get in [`verify_and_restore_run_under_a_memory_limit`].
const DATA_LIMIT_MIB: u64 = 256;

/// `ingest ARGS` with its data memory limited to `mib` MiB.
fn with_data_limit(ws: &Workspace, mib: u64, args: &[&str]) -> std::process::Output {
    use std::os::unix::process::CommandExt as _;
    let mut command = ws.command(args);
    let bytes = mib << 20;
    // SAFETY: between fork and exec only setrlimit, which is async-signal-safe, is called.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
            match libc::setrlimit(libc::RLIMIT_DATA, &limit) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    command.output().unwrap()
}

/// Verify and restore hold a page of points at a time, not the collection: under a data limit
/// that reading the whole collection (about 15 KiB a point) exceeds from some 15,000 points,
/// they check and rebuild `INGEST_TEST_MEMORY_POINTS` points (default 20,000), each the
/// chunk of a file of its own, indexed by a real run. The same limit cut ten times lower
/// stops them, so the limit holds.
#[test]
fn verify_and_restore_run_under_a_memory_limit() {
    let points: u64 = std::env::var("INGEST_TEST_MEMORY_POINTS").ok().and_then(|n| n.parse().ok()).unwrap_or(20_000);
    let ws = Workspace::new();
    let docs = ws.docs();
    for file in 0..points {
        let dir = docs.join(format!("d{:03}", file / 1000));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("n{file:06}.txt")), "One short note, the same in every folder.").unwrap();
    }
    let first = ws.ingest_json([docs.as_os_str(), "--json".as_ref(), "--quiet".as_ref()], 0);
    assert_eq!(first["points"], points, "{first:#}");

    let starved = with_data_limit(&ws, DATA_LIMIT_MIB / 10, &["verify", "--json"]);
    assert!(!starved.status.success(), "verify ran in {} MiB: the limit does not hold", DATA_LIMIT_MIB / 10);
    let health = common::json_of(&with_data_limit(&ws, DATA_LIMIT_MIB, &["verify", "--json"]), 0);
    assert_eq!(health["health"]["stored_points"], points, "{health:#}");

    block_on(async { ws.live_index("documents").await.drop_collection().await.unwrap() });
    let restored = common::json_of(&with_data_limit(&ws, DATA_LIMIT_MIB, &["restore", "--json", "--quiet"]), 0);
    assert_eq!(restored["points_restored"], points, "{restored:#}");
    let health = common::json_of(&with_data_limit(&ws, DATA_LIMIT_MIB, &["verify", "--json"]), 0);
    assert_eq!(health["clean"], true, "{health:#}");
}

/// A restore killed (SIGKILL) after its first uploads, run again, uploads only the points
/// still missing, and the collection is whole.
#[test]
fn a_restore_cut_short_resumes_where_it_stopped() {
    use std::os::unix::process::ExitStatusExt as _;
    let ws = Workspace::new();
    let total = indexed_tree(&ws)["points"].as_u64().unwrap();
    block_on(async { ws.live_index("documents").await.drop_collection().await.unwrap() });
    let args = ["restore", "--json", "--quiet", "--upload-batch-size", "4", "--upload-parallelism", "1"];
    let killed = ws.command(args).env("INGEST_KILL_AT", "upload:batch").output().unwrap();
    assert_eq!(killed.status.signal(), Some(libc::SIGKILL), "{}", show(&killed));
    let partial = ws.stored_points("documents", false).len() as u64;
    assert!(partial > 0 && partial < total, "{partial} of {total} points before the kill");

    let resumed = ws.ingest_json(args, 0);
    assert_eq!(resumed["points_restored"], total - partial, "{resumed:#}");
    assert_eq!(ws.stored_points("documents", false).len() as u64, total);
    assert_eq!(verify(&ws, false, 0)["clean"], true);
}
