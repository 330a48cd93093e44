//! A Unix tool's manners, through the binary: output into a pipe whose reader has gone ends
//! the command quietly with exit 0 (as `ls | head` does), and every numeric flag outside its
//! range is refused before any work, in one sentence naming the flag, never with a backtrace.

use crate::common;

use std::ffi::OsStr;
use std::io::Read;
use std::process::{Command, Output, Stdio};

use common::{show, text, write, Workspace};

/// An indexed collection of a few files, on the embedded default.
fn indexed() -> Workspace {
    let ws = Workspace::new();
    let docs = ws.docs();
    std::fs::create_dir_all(&docs).unwrap();
    for topic in ["orchards", "vineyards", "meadows"] {
        write(&docs, &format!("{topic}.txt"), &text(topic, 6));
    }
    let output = ws.ingest([docs.as_os_str(), OsStr::new("--quiet")]);
    assert_eq!(output.status.code(), Some(0), "indexing the workspace\n{}", show(&output));
    ws
}

/// Runs `command` with its standard output a pipe whose reader closed before the command
/// wrote anything: its first line meets a broken pipe.
fn into_closed_pipe(mut command: Command) -> Output {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    command.stdout(writer).stderr(Stdio::piped()).output().expect("running the ingest binary")
}

fn assert_quiet_success(what: &str, output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{what}: {}", show(output));
    assert_eq!(output.status.code(), Some(0), "{what} into a closed pipe: {}", show(output));
}

#[test]
fn every_command_into_a_closed_pipe_ends_quietly_with_exit_0() {
    let ws = indexed();
    let docs = ws.docs().display().to_string();
    let export_dir = ws.temp.path().join("export").display().to_string();
    let commands: &[&[&str]] = &[
        &[&docs],
        &[&docs, "--json"],
        &[&docs, "--dry-run"],
        &["search", "how are orchards kept", "-k", "50"],
        &["search", "how are orchards kept", "--json"],
        &["status"],
        &["status", "--json"],
        &["check"],
        &["verify"],
        &["verify", "--json"],
        &["restore"],
        &["export", "--out", &export_dir],
        &["migrate"],
        &["models"],
        &["gc", "--dry-run"],
        &["--help"],
        &["search", "--help"],
        &["--version"],
    ];
    for args in commands {
        let output = into_closed_pipe(ws.command(args.iter()));
        assert_quiet_success(&format!("ingest {}", args.join(" ")), &output);
    }
}

#[test]
fn a_shell_pipe_into_head_gets_one_line_and_exit_0() {
    let ws = indexed();
    let ingest = ws.command(["status"]);
    let program = ingest.get_program().to_owned();
    let args: Vec<String> = ingest.get_args().map(|arg| format!("'{}'", arg.to_string_lossy())).collect();
    for command in [
        format!("'{}' {} | head -1", program.to_string_lossy(), args.join(" ")),
        format!("'{}' search 'orchards' -k 50 {} | head -1", program.to_string_lossy(), args[1..].join(" ")),
    ] {
        let mut child = Command::new("bash")
            .args(["-c", &format!("set -o pipefail; {command}")])
            .env_remove("DATABASE_URL")
            .env_remove("QDRANT_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut printed = String::new();
        child.stdout.take().unwrap().read_to_string(&mut printed).unwrap();
        let output = child.wait_with_output().unwrap();
        assert_eq!(printed.lines().count(), 1, "{command}: {printed}");
        assert_quiet_success(&command, &output);
    }
}

/// Each numeric flag with a value beyond its range, and the flag the refusal must name.
fn out_of_range(docs: &str) -> Vec<(Vec<String>, &'static str)> {
    // `--flag=value`, so that a negative value is not read as a flag of its own.
    let run = |flag: &str, value: &str| vec![docs.to_string(), format!("--{flag}={value}")];
    let mut cases = Vec::new();
    for (flag, values) in [
        ("outage-limit", &["-1", "1e300", "NaN", "inf"][..]),
        ("shards", &["0", "100000"]),
        ("replication-factor", &["0", "1000"]),
        ("write-consistency-factor", &["0", "1000"]),
        ("chunk-size", &["0", "10000000000"]),
        ("chunk-overlap", &["10000000000"]),
        ("max-retries", &["0", "-3", "99999999999"]),
        ("workers", &["100000"]),
        ("embed-batch-size", &["0", "1000000000"]),
        ("embed-batch-tokens", &["0", "100000000000"]),
        ("upload-batch-size", &["0", "1000000000"]),
        ("upload-parallelism", &["0", "100000"]),
        ("max-file-size", &["0", "18446744073709551615"]),
        ("threads", &["0", "100000"]),
        ("commit-interval", &["-1", "1e300", "NaN"]),
        ("file-timeout", &["0", "1e300", "inf"]),
        ("max-file-chunks", &["0", "10000000000"]),
        ("extract-memory", &["1", "18446744073709551615"]),
        ("extractors", &["0", "100000"]),
    ] {
        for value in values {
            let flag: &'static str = flag;
            cases.push((run(flag, value), flag));
        }
    }
    let search =
        |flag: &str, value: &str| vec!["search".to_string(), "orchards".to_string(), format!("--{flag}={value}")];
    cases.push((search("limit", "0"), "limit"));
    cases.push((search("limit", "4000000000"), "limit"));
    cases.push((search("generation", "0"), "generation"));
    cases.push((search("generation", "-4"), "generation"));
    for (flag, value) in [("upload-batch-size", "0"), ("upload-parallelism", "0"), ("upload-parallelism", "100000")] {
        cases.push((vec!["restore".to_string(), format!("--{flag}={value}")], flag));
    }
    for (flag, value) in [("lease", "0"), ("lease", "1e300"), ("max-retries", "0"), ("threads", "0")] {
        cases.push((vec!["worker".to_string(), format!("--{flag}={value}")], flag));
    }
    cases
}

#[test]
fn every_numeric_flag_out_of_range_is_refused_in_one_sentence_before_any_work() {
    let ws = Workspace::new();
    let docs = ws.docs();
    std::fs::create_dir_all(&docs).unwrap();
    write(&docs, "one.txt", &text("orchards", 3));
    for (args, flag) in out_of_range(&docs.display().to_string()) {
        let output = ws.ingest(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let what = format!("ingest {}\n{}", args.join(" "), show(&output));
        assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "a panic: {what}");
        assert_ne!(output.status.code(), Some(0), "accepted: {what}");
        assert!(stderr.contains(flag), "the refusal does not name --{flag}: {what}");
        let sentences = stderr.lines().filter(|line| !line.trim().is_empty() && !line.contains("--help")).count();
        assert_eq!(sentences, 1, "not one sentence: {what}");
        assert!(!ws.data().exists(), "work started before the refusal: {what}");
    }
}
