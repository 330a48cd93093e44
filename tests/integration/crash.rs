//! A run killed with SIGKILL at any moment, or stopped with SIGTERM, leaves state that the
//! next run completes: the same catalog rows, points and live parquet rows as a clean run.

use crate::common;

use std::time::{Duration, Instant};

use common::{small_run, snapshot, text, write, Workspace};

fn tree() -> Workspace {
    let base = Workspace::new();
    let docs = base.docs();
    std::fs::create_dir_all(docs.join("nested")).unwrap();
    let topics = ["glaciers", "volcanoes", "rivers", "deserts", "forests", "oceans", "comets", "tides"];
    for (i, topic) in topics.iter().enumerate() {
        write(&docs, &format!("{topic}.txt"), &text(topic, 4 + 3 * i));
        write(&docs.join("nested"), &format!("{topic}-notes.md"), &format!("# {topic}\n\n{}", text(topic, 3)));
    }
    base
}

/// Small commit groups, so that a run has many commit points to be killed between.
fn flags() -> Vec<&'static str> {
    small_run(&["--upload-batch-size", "12", "--embed-batch-size", "8"])
}

fn finish(ws: &Workspace, docs: &std::path::Path) -> serde_json::Value {
    ws.ingest_json([docs.as_os_str()].into_iter().chain(flags().into_iter().map(std::ffi::OsStr::new)), 0)
}

#[test]
fn runs_killed_at_random_moments_resume_to_the_clean_result() {
    kill_trials(Workspace::new, 20, 20_261_122);
}

#[test]
fn runs_killed_at_random_moments_resume_to_the_clean_result_on_servers() {
    kill_trials(Workspace::on_servers, 8, 6_334);
}

/// Kills runs on fresh workspaces from `fresh` at seeded random moments, `trials` times.
fn kill_trials(fresh: fn() -> Workspace, trials: usize, seed: u64) {
    let base = tree();
    let docs = base.docs();
    let reference = fresh();
    let started = Instant::now();
    let clean = finish(&reference, &docs);
    let clean_time = started.elapsed();
    assert!(clean["chunks"].as_u64().unwrap() > 40, "the tree should give many commit groups: {clean:#}");
    let expected = snapshot(&reference);

    let mut rng = fastrand::Rng::with_seed(seed);
    for trial in 0..trials {
        let ws = fresh();
        // Spread the kills over the whole run, start-up and the final compaction included;
        // every third trial is killed twice in a row before the run that completes.
        let kills = if trial % 3 == 2 { 2 } else { 1 };
        let mut delays = Vec::new();
        for _ in 0..kills {
            let delay = clean_time.mul_f64(rng.f64() * 1.1);
            let mut child = ws.spawn(&docs, &flags());
            std::thread::sleep(delay);
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            delays.push(delay);
        }
        let report = finish(&ws, &docs);
        assert_eq!(report["status"], "completed", "trial {trial}: {report:#}");
        let got = snapshot(&ws);
        assert_eq!(got, expected, "trial {trial}: killed after {delays:?}");
    }
}

#[test]
fn sigterm_cancels_cleanly_and_the_next_run_completes() {
    let base = tree();
    let docs = base.docs();
    let clean = Workspace::new();
    finish(&clean, &docs);
    let expected = snapshot(&clean);

    let ws = Workspace::new();
    let mut child = ws.spawn(&docs, &flags());
    // Wait until the job has committed something, then ask it to stop.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ws.data().join("parquet").join("documents").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let jobs = runtime.block_on(async { ws.catalog().await.collection("documents").jobs(10).await }).unwrap();
    assert_eq!(status.code(), Some(130), "SIGTERM mid-run must end the run with exit code 130");
    assert_eq!(jobs[0].status, "cancelled", "{jobs:#?}");
    assert!(jobs[0].finished_at.is_some(), "{jobs:#?}");
    let files = runtime.block_on(async { ws.catalog().await.collection("documents").files().await }).unwrap();
    assert!(files.len() < expected.files.len(), "the cancelled run should have stopped early: {files:#?}");
    let report = finish(&ws, &docs);
    assert_eq!(report["status"], "completed", "{report:#}");
    assert_eq!(snapshot(&ws), expected);
}
