//! Text that arrives as one long line (minified JSON, a one-line HTML page, a text file with
//! no newline), through the real binary: each finishes in time linear in its length, the good
//! files beside it are indexed, and the limits on one file (its chunks, its time) fail it with
//! a reason that names the flag. A signal during a long chunking stage stops the run at once,
//! with its report.

use crate::common;

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{json_of, show, write, Workspace};

/// `n` records of minified JSON on one line, about 40 bytes each.
fn minified_json(records: usize) -> String {
    let items: Vec<String> = (0..records)
        .map(|i| format!(r#"{{"id":{i},"name":"item {i}","tags":["t{}","u{}"]}}"#, i % 7, i % 11))
        .collect();
    format!("[{}]", items.join(","))
}

/// Prose words on one line, no newline anywhere: about `bytes` bytes.
fn one_line_prose(bytes: usize) -> String {
    let words = ["river", "stone", "lantern", "harbour", "copper", "meadow", "signal", "orchard"];
    let mut text = String::with_capacity(bytes + 16);
    let mut i = 0usize;
    while text.len() < bytes {
        text.push_str(words[i % words.len()]);
        text.push_str(if i % 13 == 12 { ". " } else { " " });
        i += 1;
    }
    text
}

fn good_files(docs: &Path) {
    std::fs::create_dir_all(docs).unwrap();
    write(docs, "good.txt", &common::text("tides", 12));
}

fn reason_of<'a>(report: &'a serde_json::Value, path_end: &str) -> &'a str {
    report["failed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with(path_end))
        .and_then(|f| f["reason"].as_str())
        .unwrap_or_else(|| panic!("{path_end} is not among the failed files: {report:#}"))
}

#[test]
fn one_line_files_of_every_shape_finish_and_the_good_files_are_indexed() {
    let ws = Workspace::new();
    let docs = ws.docs();
    good_files(&docs);
    // Small enough to embed: each is indexed whole.
    write(&docs, "small.json", &minified_json(300));
    write(&docs, "spans.html", &format!("<html><body>{}</body></html>", "<span>w </span>".repeat(3_000)));
    // Far over the chunk cap: each fails before any of it is embedded.
    write(&docs, "big.json", &minified_json(60_000));
    write(&docs, "big-spans.html", &format!("<html><body>{}</body></html>", "<span>w</span>".repeat(200_000)));
    write(&docs, "no-newline", &one_line_prose(3_000_000));
    let started = Instant::now();
    let output = ws.ingest([
        docs.as_os_str(),
        "--json".as_ref(),
        "--quiet".as_ref(),
        "--max-file-chunks".as_ref(),
        "60".as_ref(),
    ]);
    let elapsed = started.elapsed();
    let report = json_of(&output, 2);
    assert_eq!(report["status"], "completed", "{report:#}");
    // 200,000 adjacent one-letter spans make one word of 200,000 letters: one unknown token
    // to the model per window, so a handful of chunks, under the cap.
    assert_eq!(report["added"], 4, "good.txt, small.json and both HTML pages are indexed: {report:#}");
    assert_eq!(report["failed"].as_array().unwrap().len(), 2, "{report:#}");
    for big in ["big.json", "no-newline"] {
        let reason = reason_of(&report, big);
        assert!(
            reason.starts_with("too many chunks to embed: about ") && reason.contains("raise --max-file-chunks"),
            "{big}: {reason}"
        );
        assert!(reason.contains("over the limit of 60 per file"), "{big}: {reason}");
    }
    assert!(elapsed < Duration::from_secs(300), "the run took {elapsed:?}\n{}", show(&output));
    let search = ws.ingest(["search", "--json", "item 17 tags"]);
    assert!(String::from_utf8_lossy(&search.stdout).contains("small.json"), "{}", show(&search));
}

#[test]
fn a_file_over_its_time_fails_with_the_flag_and_counts_toward_max_retries() {
    let ws = Workspace::new();
    let docs = ws.docs();
    good_files(&docs);
    write(&docs, "slow.txt", &one_line_prose(40_000_000));
    let run = |extra: &[&str]| {
        let mut args = vec![docs.to_str().unwrap(), "--json", "--quiet", "--max-retries", "1"];
        args.extend(extra);
        ws.ingest(args)
    };
    let first = json_of(&run(&["--file-timeout", "1", "--max-file-chunks", "1000000000"]), 2);
    let reason = reason_of(&first, "slow.txt");
    assert!(reason.starts_with("chunking stopped after 1 s of work (--file-timeout), with "), "{reason}");
    assert!(reason.contains("raise --file-timeout"), "{reason}");
    assert_eq!(first["added"], 1, "the good file is indexed: {first:#}");
    // One failure with --max-retries 1: the next run leaves it alone until it changes.
    let second = json_of(&run(&["--file-timeout", "1"]), 0);
    let not_retried = second["not_retried"].as_array().unwrap();
    assert!(
        not_retried.iter().any(|f| f["path"].as_str().unwrap().ends_with("slow.txt")
            && f["reason"].as_str().unwrap().contains("chunking stopped after 1 s")),
        "{second:#}"
    );
}

#[test]
fn sigterm_during_a_long_chunking_stage_stops_at_once_with_a_report_and_the_next_run_resumes() {
    let ws = Workspace::new();
    let docs = ws.docs();
    good_files(&docs);
    write(&docs, "long.txt", &one_line_prose(90_000_000));
    let mut child = ws
        .command([
            docs.to_str().unwrap(),
            "--json",
            "--quiet",
            "--max-file-chunks",
            "1000000000",
            "--file-timeout",
            "600",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The good file is embedded and the long one is being chunked once a chunk is counted.
    std::thread::sleep(Duration::from_secs(8));
    assert!(child.try_wait().unwrap().is_none(), "the run ended before the signal");
    let signalled = Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(signalled.elapsed() < Duration::from_secs(5), "still running 5 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    assert_eq!(status.code(), Some(130), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(report["status"], "cancelled", "{report:#}");
    assert!(report["failed"].as_array().unwrap().is_empty(), "a cancelled file is not failed: {report:#}");

    // The next run picks the long file up again; this time it stops at a small cap.
    let next = json_of(&ws.ingest([docs.to_str().unwrap(), "--json", "--quiet", "--max-file-chunks", "100"]), 2);
    assert_eq!(next["status"], "completed", "{next:#}");
    assert!(reason_of(&next, "long.txt").contains("--max-file-chunks"), "{next:#}");
    let files = ws.catalog_number("SELECT COUNT(*) FROM files WHERE status = 'completed'");
    assert_eq!(files, 1, "good.txt is indexed");
}
