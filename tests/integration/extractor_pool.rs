//! Parsers of every format but text and Markdown run in extractor processes: a parser that
//! hangs, aborts, allocates without bound or overflows its stack fails its own file with a
//! plain reason, within the time limit, the rest of the tree is indexed, and no extractor
//! outlives `ingest`.
//!
//! Faults come from the hook of a build with `--features fault-injection`: with `INGEST_EXTRACT_FAULT` set, a file holding
//! `INGEST-FAULT:<fault>` makes the extractor misbehave before any parser runs.

use crate::common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use common::{fixtures_dir, json_of, show, text, write, Workspace};
use ingest::extract::pool::EXTRACTOR_SUBCOMMAND;
use ingest::extract::{ExtractError, ExtractorPool, ExtractorSettings};

const FAULT_ENV: &str = "INGEST_EXTRACT_FAULT";

/// Each fault, and the reason its file fails with ("PDF extractor …") under a 3 s time limit
/// and the default memory limit.
const FAULTS: [(&str, &str); 4] = [
    ("hang", "timed out after 3 s; raise --file-timeout to give such files more time"),
    ("abort", "crashed (killed by signal 6)"),
    (
        "alloc",
        "ran out of memory: it needed more than its 1024 MiB (--extract-memory); \
         raise --extract-memory to read such files",
    ),
    ("stack", "crashed (stack overflow)"),
];

/// What a fault file holds: a PDF header, then the marker.
fn faulty_pdf(fault: &str) -> Vec<u8> {
    format!("%PDF-1.4\n% INGEST-FAULT:{fault}\n").into_bytes()
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs the faults of `--features fault-injection`, which scripts/test.sh builds with"
)]
fn faulty_extractors_fail_their_files_and_the_rest_is_indexed_embedded() {
    faulty_extractors_fail_their_files_and_the_rest_is_indexed(Workspace::new());
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs the faults of `--features fault-injection`, which scripts/test.sh builds with"
)]
fn faulty_extractors_fail_their_files_and_the_rest_is_indexed_on_servers() {
    faulty_extractors_fail_their_files_and_the_rest_is_indexed(Workspace::on_servers());
}

fn faulty_extractors_fail_their_files_and_the_rest_is_indexed(ws: Workspace) {
    let docs = ws.docs();
    std::fs::create_dir_all(&docs).unwrap();
    for topic in ["glaciers", "volcanoes", "rivers"] {
        write(&docs, &format!("{topic}.txt"), &text(topic, 10));
    }
    std::fs::copy(fixtures_dir().join("gardening/tomatoes.pdf"), docs.join("tomatoes.pdf")).unwrap();
    for (fault, _) in FAULTS {
        std::fs::write(docs.join(format!("{fault}.pdf")), faulty_pdf(fault)).unwrap();
    }

    let started = Instant::now();
    let output = ws
        .command([docs.as_os_str().to_str().unwrap(), "--json", "--quiet", "--extract-timeout", "3"])
        .env(FAULT_ENV, "1")
        .output()
        .expect("running the ingest binary");
    let elapsed = started.elapsed();
    let report = json_of(&output, 2);

    let failed: BTreeMap<String, String> = report["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap().to_string(), f["reason"].as_str().unwrap().to_string()))
        .collect();
    let expected: BTreeMap<String, String> = FAULTS
        .iter()
        .map(|(fault, reason)| (path_of(&docs, &format!("{fault}.pdf")), format!("PDF extractor {reason}")))
        .collect();
    assert_eq!(failed, expected, "{}", show(&output));
    assert_eq!(report["added"], 4, "{report:#}");

    let points = ws.stored_points("documents", false);
    assert_eq!(points.len() as u64, report["points"].as_u64().unwrap(), "{report:#}");
    let indexed: std::collections::BTreeSet<String> = points.values().map(|p| p.payload.path.clone()).collect();
    let good = ["glaciers.txt", "volcanoes.txt", "rivers.txt", "tomatoes.pdf"].map(|name| path_of(&docs, name));
    assert_eq!(indexed, good.into_iter().collect(), "{report:#}");

    // Each fault costs at most the time limit plus a few seconds, however the run spends them.
    let budget = Duration::from_secs(FAULTS.len() as u64 * (3 + 5));
    assert!(elapsed < budget, "the run took {elapsed:?}\n{}", show(&output));
}

fn path_of(docs: &Path, name: &str) -> String {
    std::fs::canonicalize(docs).unwrap().join(name).display().to_string()
}

/// A program that runs `ingest` with the fault hook switched on, for a pool built in this
/// test process (whose own environment is left alone).
fn faulty_ingest(dir: &Path) -> PathBuf {
    let script = dir.join("faulty-ingest");
    let body = format!("#!/bin/sh\n{FAULT_ENV}=1 exec '{}' \"$@\"\n", env!("CARGO_BIN_EXE_ingest"));
    std::fs::write(&script, body).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs the faults of `--features fault-injection`, which scripts/test.sh builds with"
)]
fn each_fault_is_reported_in_time_and_the_next_file_gets_a_fresh_extractor() {
    let temp = tempfile::tempdir().unwrap();
    let timeout = Duration::from_secs(2);
    let pool = ExtractorPool::new(ExtractorSettings {
        program: faulty_ingest(temp.path()),
        timeout,
        memory_limit_mib: 512,
        processes: 1,
        ocr: Default::default(),
    })
    .unwrap();
    let cancel = AtomicBool::new(false);
    let good = std::fs::read(fixtures_dir().join("gardening/tomatoes.pdf")).unwrap();
    let under_these_limits = |reason: &str| reason.replace("after 3 s", "after 2 s").replace("1024 MiB", "512 MiB");
    for (fault, reason) in FAULTS {
        let started = Instant::now();
        let result = pool.extract("pdf", &faulty_pdf(fault), &cancel);
        let elapsed = started.elapsed();
        let expected = format!("PDF extractor {}", under_these_limits(reason));
        assert_eq!(result, Err(ExtractError::Extractor(expected)), "{fault}");
        let limit = if fault == "hang" { timeout + Duration::from_secs(3) } else { Duration::from_secs(3) };
        assert!(elapsed < limit, "{fault} took {elapsed:?}");
        let text = pool.extract("pdf", &good, &cancel).unwrap().text;
        assert!(text.contains("blossom end rot"), "after {fault}: {text}");
    }
    // The reason names the format; a parser's own error still comes back as itself.
    let docx = pool.extract("docx", b"INGEST-FAULT:abort", &cancel);
    assert_eq!(docx, Err(ExtractError::Extractor("DOCX extractor crashed (killed by signal 6)".into())));
    let truncated = std::fs::read(fixtures_dir().join("bad/truncated.pdf")).unwrap();
    assert!(matches!(pool.extract("pdf", &truncated, &cancel), Err(ExtractError::Pdf(_))));
    // The further formats run there too: their faults, reasons, anchors and titles cross the pipe.
    let xlsx = pool.extract("xlsx", b"INGEST-FAULT:abort", &cancel);
    assert_eq!(xlsx, Err(ExtractError::Extractor("XLSX extractor crashed (killed by signal 6)".into())));
    let epub = pool.extract("epub", b"a plain text file", &cancel);
    assert_eq!(epub, Err(ingest::extract::Format::Epub.invalid("the file is not a zip package")));
    let deck = std::fs::read(fixtures_dir().join("coffee/espresso-brewing.pptx")).unwrap();
    let across = pool.extract("pptx", &deck, &cancel).unwrap();
    assert_eq!(across, ingest::extract::extract_in_process("pptx", &deck, &Default::default()).unwrap());
    assert_eq!(across.anchors.len(), 4, "{across:?}");
    assert_eq!(across.title.as_deref(), Some("Espresso training for new baristas"));
}

#[test]
fn extractors_run_in_parallel_and_a_cancel_stops_the_wait() {
    let temp = tempfile::tempdir().unwrap();
    let pool = ExtractorPool::new(ExtractorSettings {
        program: faulty_ingest(temp.path()),
        timeout: Duration::from_secs(30),
        memory_limit_mib: 512,
        processes: 3,
        ocr: Default::default(),
    })
    .unwrap();
    let cancel = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|scope| {
        let hung: Vec<_> = (0..3).map(|_| scope.spawn(|| pool.extract("pdf", &faulty_pdf("hang"), &cancel))).collect();
        std::thread::sleep(Duration::from_secs(1));
        cancel.store(true, std::sync::atomic::Ordering::SeqCst);
        for call in hung {
            let stopped = Err(ExtractError::Extractor("PDF extractor was stopped: the job is cancelled".into()));
            assert_eq!(call.join().unwrap(), stopped);
        }
    });
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
}

/// Process ids of the live (not zombie) extractor processes started by `parent`.
fn extractor_children(parent: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else { continue };
        let (Ok(stat), Ok(cmdline)) =
            (std::fs::read_to_string(entry.path().join("stat")), std::fs::read(entry.path().join("cmdline")))
        else {
            continue;
        };
        // Fields after the parenthesised command name: state, then the parent's id.
        let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap();
        let is_extractor = cmdline.split(|b| *b == 0).any(|arg| arg == EXTRACTOR_SUBCOMMAND.as_bytes());
        if is_extractor && fields[0] != "Z" && fields[1].parse::<u32>() == Ok(parent) {
            children.push(pid);
        }
    }
    children
}

fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs the faults of `--features fault-injection`, which scripts/test.sh builds with"
)]
fn a_killed_ingest_leaves_no_extractor_behind() {
    let ws = Workspace::new();
    let docs = ws.docs();
    std::fs::create_dir_all(&docs).unwrap();
    for n in 0..2 {
        std::fs::write(docs.join(format!("hang-{n}.pdf")), faulty_pdf("hang")).unwrap();
    }
    let mut ingest = ws
        .command([docs.as_os_str().to_str().unwrap(), "--quiet", "--extractors", "2"])
        .env(FAULT_ENV, "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting the ingest binary");
    let deadline = Instant::now() + Duration::from_secs(60);
    let children = loop {
        let children = extractor_children(ingest.id());
        if children.len() == 2 || Instant::now() > deadline {
            break children;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(children.len(), 2, "the extractors did not start");
    ingest.kill().unwrap();
    ingest.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while children.iter().any(|&pid| is_running(pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let orphans: Vec<u32> = children.into_iter().filter(|&pid| is_running(pid)).collect();
    assert!(orphans.is_empty(), "extractors outlived a SIGKILLed ingest: {orphans:?}");
}
