//! The binary against PostgreSQL and the gRPC test Qdrant server while the server
//! misbehaves. Each run must end with every file's points exact (no loss, no duplicates)
//! and the catalog saying so, exactly like a run that saw no faults.

use crate::common;

use std::ffi::OsStr;
use std::time::Duration;

use common::{show, small_run, snapshot, text, write, Snapshot, Workspace};

/// A tree, and the state a fault-free run of it ends in.
fn tree_and_clean_state() -> (Workspace, Snapshot) {
    let base = Workspace::on_servers();
    let docs = base.docs();
    std::fs::create_dir_all(&docs).unwrap();
    for (i, topic) in ["harbors", "lighthouses", "canals", "bridges", "tunnels", "ferries"].iter().enumerate() {
        write(&docs, &format!("{topic}.txt"), &text(topic, 5 + 2 * i));
    }
    let report = run(&base, &docs, &[]);
    assert_eq!(report["status"], "completed");
    let clean = snapshot(&base);
    (base, clean)
}

fn run(ws: &Workspace, docs: &std::path::Path, extra: &[&'static str]) -> serde_json::Value {
    let mut flags = small_run(&["--upload-batch-size", "10"]);
    flags.extend(extra);
    let args = [docs.as_os_str()].into_iter().chain(flags.into_iter().map(OsStr::new));
    ws.ingest_json(args, 0)
}

/// Every completed file has exactly its points in Qdrant.
fn assert_completed_files_have_their_points(ws: &Workspace) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let index = ws.index("documents").await;
        for file in ws.catalog().await.collection("documents").files().await.unwrap() {
            if file.status == "completed" {
                let count = index.count(Some(&file.doc_id)).await.unwrap();
                assert_eq!(count as i64, file.vectors_created, "{} is completed without its points", file.path);
            }
        }
    });
}

/// A fresh workspace and a run of `base`'s tree in it with `--outage-limit SECONDS`, whose
/// Qdrant server stops once the run has written twice.
fn run_into_an_outage(base: &Workspace, outage_limit: &'static str) -> (Workspace, std::process::Child) {
    let ws = base.another();
    // Slow calls keep the job running long enough to pull the server out from under it.
    ws.qdrant().delay_every_call(Duration::from_millis(150));
    let child = ws.spawn(&base.docs(), &small_run(&["--upload-batch-size", "10", "--outage-limit", outage_limit]));
    ws.wait_for_upserts(2);
    ws.qdrant().stop();
    (ws, child)
}

#[test]
fn refused_calls_are_waited_out_and_the_job_completes() {
    let (base, clean) = tree_and_clean_state();
    let ws = base.another();
    ws.qdrant().refuse_next(12);
    let report = run(&ws, &base.docs(), &[]);
    assert_eq!(report["status"], "completed", "{report:#}");
    assert!(ws.qdrant().calls() > 12, "the refused calls were retried");
    assert_eq!(snapshot(&ws), clean);
}

#[test]
fn a_connection_dropped_mid_batch_is_retried_without_duplicates() {
    let (base, clean) = tree_and_clean_state();
    let ws = base.another();
    ws.qdrant().crash_during_next_upsert(Duration::from_millis(1500));
    let report = run(&ws, &base.docs(), &[]);
    assert_eq!(report["status"], "completed", "{report:#}");
    assert_eq!(snapshot(&ws), clean);
}

#[test]
fn an_outage_longer_than_the_limit_stops_cleanly_and_a_rerun_completes() {
    let (base, clean) = tree_and_clean_state();
    let (ws, child) = run_into_an_outage(&base, "2");
    let output = child.wait_with_output().unwrap();
    let shown = show(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect(&shown);
    let error = report["error"].as_str().unwrap_or_default();
    assert!(error.contains("Qdrant has been unreachable") && error.contains("next run resumes"), "{shown}");
    assert!(!String::from_utf8_lossy(&output.stderr).contains("panicked"), "{shown}");

    ws.qdrant().restart();
    ws.qdrant().delay_every_call(Duration::ZERO);
    assert_completed_files_have_their_points(&ws);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let files = runtime.block_on(async { ws.catalog().await.collection("documents").files().await }).unwrap();
    assert!(files.iter().any(|f| f.status != "completed"), "the outage should have left work undone: {files:#?}");
    let jobs = runtime.block_on(async { ws.catalog().await.collection("documents").jobs(5).await }).unwrap();
    assert_eq!(jobs[0].status, "failed", "{jobs:#?}");

    let report = run(&ws, &base.docs(), &[]);
    assert_eq!(report["status"], "completed", "{report:#}");
    assert_eq!(snapshot(&ws), clean);
}

#[test]
fn a_signal_during_an_outage_stops_the_run_at_once_and_a_rerun_completes() {
    let (base, clean) = tree_and_clean_state();
    let (ws, child) = run_into_an_outage(&base, "300");
    // Well into the outage: the run is waiting for Qdrant, its outage limit minutes away.
    std::thread::sleep(Duration::from_secs(2));
    let signalled = std::time::Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let output = child.wait_with_output().unwrap();
    let shown = show(&output);
    assert!(signalled.elapsed() < Duration::from_secs(5), "{:?} after SIGTERM\n{shown}", signalled.elapsed());
    assert_eq!(output.status.code(), Some(130), "{shown}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect(&shown);
    assert_eq!(report["status"], "cancelled", "{shown}");
    let error = report["error"].as_str().unwrap_or_default();
    assert!(error.contains("Qdrant is unreachable and the job was cancelled"), "{shown}");

    ws.qdrant().restart();
    ws.qdrant().delay_every_call(Duration::ZERO);
    assert_completed_files_have_their_points(&ws);
    let report = run(&ws, &base.docs(), &[]);
    assert_eq!(report["status"], "completed", "{report:#}");
    assert_eq!(snapshot(&ws), clean);
}
