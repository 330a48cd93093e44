//! A run deletes only what it positively saw gone, checks what it touched at its end, and
//! records files without text as such: through the real binary, on both backends. Each test
//! asserts the points, the catalog rows and the live parquet rows afterwards.

use crate::common;

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

use common::{json_of, show, small_run, snapshot, text, write, Workspace};

fn tree(ws: &Workspace, names: &[&str]) {
    for (i, name) in names.iter().enumerate() {
        let path = ws.docs().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        write(path.parent().unwrap(), path.file_name().unwrap().to_str().unwrap(), &text(name, 4 + i));
    }
}

/// `ingest DOCS` with small chunks, `--json`, and `extra` flags.
fn run(ws: &Workspace, extra: &[&'static str], code: i32) -> serde_json::Value {
    let docs = ws.docs();
    ws.ingest_json([docs.as_os_str()].into_iter().chain(small_run(extra).into_iter().map(OsStr::new)), code)
}

/// `ingest DOCS` with the same small chunks as [`run`], printing as a person sees it.
fn run_plain(ws: &Workspace) -> std::process::Output {
    let docs = ws.docs();
    let flags = ["--quiet", "--chunk-size", "24", "--chunk-overlap", "0", "--commit-interval", "0"];
    ws.ingest([docs.as_os_str()].into_iter().chain(flags.map(OsStr::new)))
}

fn paths(report: &serde_json::Value, field: &str) -> Vec<String> {
    let mut paths: Vec<String> =
        report[field].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap().to_string()).collect();
    paths.sort();
    paths
}

fn in_docs(ws: &Workspace, names: &[&str]) -> Vec<String> {
    names.iter().map(|n| ws.docs().join(n).display().to_string()).collect()
}

#[test]
fn a_filtered_run_keeps_the_files_outside_its_filters_embedded() {
    a_filtered_run_keeps_the_files_outside_its_filters(Workspace::new());
}

#[test]
fn a_filtered_run_keeps_the_files_outside_its_filters_on_servers() {
    a_filtered_run_keeps_the_files_outside_its_filters(Workspace::on_servers());
}

fn a_filtered_run_keeps_the_files_outside_its_filters(ws: Workspace) {
    tree(&ws, &["a.txt", "b.txt", "c.md", "d.md", "sub/e.md"]);
    run(&ws, &[], 0);
    let before = snapshot(&ws);
    assert_eq!(before.files.len(), 5);

    for filter in [&["--extension", "md"][..], &["--ignore", "sub"], &["--extension", "txt", "--ignore", "*.md"]] {
        let report = run(&ws, filter, 0);
        assert_eq!(report["deleted"], 0, "{filter:?}: {report:#}");
        assert_eq!(snapshot(&ws), before, "{filter:?} must leave every point, row and parquet row in place");
    }

    // A file in scope that really is gone is deleted, and only it.
    std::fs::remove_file(ws.docs().join("c.md")).unwrap();
    let report = run(&ws, &["--extension", "md"], 0);
    assert_eq!(report["deleted"], 1, "{report:#}");
    let after = snapshot(&ws);
    let gone = in_docs(&ws, &["c.md"]).remove(0);
    assert_eq!(after.files.len(), 4);
    assert!(!after.files.contains_key(&gone));
    assert_eq!(after.points.len(), before.points.len() - before.files[&gone].2 as usize);
}

/// `ingest ARGS` without the capabilities that let root read anything, so that a directory
/// with mode 000 is unreadable to it as it is to any other user.
fn ingest_unprivileged(ws: &Workspace, args: &[&str]) -> std::process::Output {
    let docs = ws.docs();
    let mut command = ws.command([docs.as_os_str()].into_iter().chain(args.iter().map(OsStr::new)));
    // SAFETY: prctl is async-signal-safe, and nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            // CAP_DAC_OVERRIDE (1) and CAP_DAC_READ_SEARCH (2) leave the bounding set, so the
            // binary does not get them back at exec. Failing (not root) changes nothing.
            for capability in [CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH] {
                libc::prctl(libc::PR_CAPBSET_DROP, capability, 0, 0, 0);
            }
            Ok(())
        });
    }
    command.output().expect("running the ingest binary")
}

/// Capability numbers from `linux/capability.h`.
const CAP_DAC_OVERRIDE: libc::c_ulong = 1;
const CAP_DAC_READ_SEARCH: libc::c_ulong = 2;

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn what_the_walk_cannot_read_is_kept_embedded() {
    what_the_walk_cannot_read_is_kept(Workspace::new());
}

#[test]
fn what_the_walk_cannot_read_is_kept_on_servers() {
    what_the_walk_cannot_read_is_kept(Workspace::on_servers());
}

fn what_the_walk_cannot_read_is_kept(ws: Workspace) {
    tree(&ws, &["a.txt", "b.txt", "locked/c.txt", "locked/d.txt"]);
    // A share reached through a link, as a mount point is: its target can vanish.
    let share = ws.temp.path().join("share");
    std::fs::create_dir_all(&share).unwrap();
    write(&share, "e.txt", &text("shared notes", 5));
    std::os::unix::fs::symlink(&share, ws.docs().join("share")).unwrap();
    let follow = ["--follow-external-links"];
    run(&ws, &follow, 0);
    let before = snapshot(&ws);
    assert_eq!(before.files.len(), 5);

    // The subtree becomes unreadable, one completed file too (edited, so that its size moves
    // and the run must read it), and the share goes away.
    set_mode(&ws.docs().join("locked"), 0o000);
    write(&ws.docs(), "b.txt", &text("b.txt", 9));
    set_mode(&ws.docs().join("b.txt"), 0o000);
    std::fs::rename(&share, ws.temp.path().join("share-unmounted")).unwrap();
    let output = ingest_unprivileged(&ws, &small_run(&follow));
    set_mode(&ws.docs().join("locked"), 0o755);
    set_mode(&ws.docs().join("b.txt"), 0o644);
    let report = json_of(&output, 2);
    assert_eq!(report["deleted"], 0, "{report:#}");
    assert_eq!(
        paths(&report, "not_checked"),
        in_docs(&ws, &["b.txt", "locked/c.txt", "locked/d.txt", "share/e.txt"]),
        "{report:#}"
    );
    let reasons = report["not_checked"].to_string();
    assert!(reasons.contains("could not be walked") && reasons.contains("ermission denied"), "{report:#}");
    assert_eq!(snapshot(&ws), before, "nothing the walk could not see may change\n{}", show(&output));

    // Readable again: the edited file is brought up to date, nothing else changes.
    std::fs::rename(ws.temp.path().join("share-unmounted"), &share).unwrap();
    let report = run(&ws, &follow, 0);
    assert_eq!((&report["updated"], &report["unchanged"], &report["deleted"]), (&1.into(), &4.into(), &0.into()));
    let indexed = snapshot(&ws);

    // Without the flag the link is not followed: what lies beyond it is out of scope, kept.
    let report = run(&ws, &[], 0);
    assert_eq!(report["deleted"], 0, "{report:#}");
    assert_eq!(snapshot(&ws), indexed);
}

#[test]
fn too_many_vanished_files_are_not_deleted_without_the_flag_embedded() {
    too_many_vanished_files_are_not_deleted_without_the_flag(Workspace::new());
}

#[test]
fn too_many_vanished_files_are_not_deleted_without_the_flag_on_servers() {
    too_many_vanished_files_are_not_deleted_without_the_flag(Workspace::on_servers());
}

fn too_many_vanished_files_are_not_deleted_without_the_flag(ws: Workspace) {
    let names: Vec<String> = (0..14).map(|i| format!("note-{i:02}.txt")).collect();
    tree(&ws, &names.iter().map(String::as_str).collect::<Vec<_>>());
    run(&ws, &[], 0);
    let before = snapshot(&ws);

    // The directory looks emptied, as an unmounted share does; one file is left.
    for name in &names[1..] {
        std::fs::remove_file(ws.docs().join(name)).unwrap();
    }
    let plan = run(&ws, &["--dry-run"], 0);
    assert_eq!(plan["plan"]["delete"].as_array().unwrap().len(), 13, "{plan:#}");
    assert_eq!((&plan["refused_deletes"]["vanished"], &plan["refused_deletes"]["indexed"]), (&13.into(), &14.into()));

    let output = run_plain(&ws);
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("13 of the 14 indexed files") && stderr.contains("--allow-mass-delete"),
        "{}",
        show(&output)
    );
    assert_eq!(snapshot(&ws), before, "nothing may be deleted");

    let report = run(&ws, &["--allow-mass-delete"], 0);
    assert_eq!(report["deleted"], 13, "{report:#}");
    let after = snapshot(&ws);
    assert_eq!(after.files.len(), 1);
    assert_eq!(after.points.len() as i64, after.files.values().map(|f| f.2).sum::<i64>());
    assert_eq!(after.parquet.len(), after.points.len());
}

#[test]
fn a_job_checks_what_it_touched_embedded() {
    a_job_checks_what_it_touched(Workspace::new());
}

#[test]
fn a_job_checks_what_it_touched_on_servers() {
    a_job_checks_what_it_touched(Workspace::on_servers());
}

fn a_job_checks_what_it_touched(ws: Workspace) {
    tree(&ws, &["a.txt", "b.txt", "c.txt"]);
    let first = run(&ws, &[], 0);
    assert_eq!((&first["verified"]["files"], &first["verified"]["agree"]), (&3.into(), &true.into()), "{first:#}");
    assert!(first["verified"]["seconds"].as_f64().unwrap() >= 0.0);
    // Recorded on the job row.
    let recorded = tokio::runtime::Runtime::new().unwrap().block_on(async {
        ws.catalog().await.job(first["job_id"].as_str().unwrap()).await.unwrap().unwrap().verification
    });
    assert_eq!(recorded.unwrap()["agree"], true);

    // A run that changes nothing checks nothing.
    assert!(run(&ws, &[], 0).get("verified").is_none());

    // A point nobody accounts for: the next run that changes anything says so.
    let mut stray = ws.stored_points("documents", true).into_values().next().unwrap();
    stray.id = uuid::Uuid::new_v4();
    stray.payload.doc_id = "stray".into();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async { ws.index("documents").await.upsert(vec![stray]).await })
        .unwrap();
    write(&ws.docs(), "d.txt", &text("d", 3));
    let output = run_plain(&ws);
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ingest verify --repair") && stderr.contains("its completed files account for"),
        "{}",
        show(&output)
    );
    let job = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async { ws.catalog().await.collection("documents").jobs(1).await.unwrap().remove(0) });
    let recorded = job.verification.unwrap();
    assert_eq!((&recorded["files"], &recorded["agree"]), (&1.into(), &false.into()), "{recorded:#}");

    ws.ingest_json(["verify", "--repair", "--json"], 0);
    write(&ws.docs(), "e.txt", &text("e", 3));
    assert_eq!(run(&ws, &[], 0)["verified"]["agree"], true);
}

#[test]
fn files_without_text_are_recorded_as_such_not_as_failures_embedded() {
    files_without_text_are_recorded_as_such_not_as_failures(Workspace::new());
}

#[test]
fn files_without_text_are_recorded_as_such_not_as_failures_on_servers() {
    files_without_text_are_recorded_as_such_not_as_failures(Workspace::on_servers());
}

fn files_without_text_are_recorded_as_such_not_as_failures(ws: Workspace) {
    tree(&ws, &["a.txt"]);
    write(&ws.docs(), "empty.txt", "");
    write(&ws.docs(), "blank.md", "  \n\n\t \n");
    let report = run(&ws, &[], 0);
    assert_eq!(paths(&report, "no_text"), in_docs(&ws, &["blank.md", "empty.txt"]), "{report:#}");
    assert!(report["failed"].as_array().unwrap().is_empty(), "{report:#}");
    let files = snapshot(&ws).files;
    assert_eq!(files[&in_docs(&ws, &["empty.txt"])[0]].0, "no_text");
    assert_eq!(files[&in_docs(&ws, &["blank.md"])[0]].0, "no_text");

    let again = run(&ws, &[], 0);
    assert_eq!((&again["unchanged"], &again["no_text"]), (&3.into(), &serde_json::json!([])), "{again:#}");
}

#[test]
fn links_out_of_the_root_are_left_and_a_file_reached_twice_is_indexed_once_embedded() {
    links_out_of_the_root_are_left_and_a_file_reached_twice_is_indexed_once(Workspace::new());
}

#[test]
fn links_out_of_the_root_are_left_and_a_file_reached_twice_is_indexed_once_on_servers() {
    links_out_of_the_root_are_left_and_a_file_reached_twice_is_indexed_once(Workspace::on_servers());
}

fn links_out_of_the_root_are_left_and_a_file_reached_twice_is_indexed_once(ws: Workspace) {
    tree(&ws, &["a/one.txt", "b.txt"]);
    let outside = ws.temp.path().join("elsewhere");
    std::fs::create_dir_all(&outside).unwrap();
    write(&outside, "secret.txt", &text("private notes", 5));
    std::os::unix::fs::symlink(&outside, ws.docs().join("elsewhere")).unwrap();
    // The same directory again, through a link inside the root.
    std::os::unix::fs::symlink(ws.docs().join("a"), ws.docs().join("z-again")).unwrap();

    let report = run(&ws, &[], 0);
    assert_eq!(report["added"], 2, "{report:#}");
    let files: Vec<String> = snapshot(&ws).files.into_keys().collect();
    assert_eq!(files, in_docs(&ws, &["a/one.txt", "b.txt"]), "indexed once, under the first path");
    let notes = report["scan_notes"].to_string();
    assert!(notes.contains("elsewhere") && notes.contains("--follow-external-links"), "{report:#}");

    let followed = run(&ws, &["--follow-external-links"], 0);
    assert_eq!(followed["added"], 1, "{followed:#}");
    assert!(snapshot(&ws).files.contains_key(&in_docs(&ws, &["elsewhere/secret.txt"])[0]));
}
