//! Helpers for tests that run the real `ingest` binary against a throwaway data directory.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary workspace: a documents tree and a data directory.
pub struct Workspace {
    pub temp: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        Self { temp: tempfile::tempdir().expect("creating a temp dir") }
    }

    pub fn docs(&self) -> PathBuf {
        self.temp.path().join("docs")
    }

    pub fn data(&self) -> PathBuf {
        self.temp.path().join("data")
    }

    /// Copies the shipped fixtures into `docs/`.
    pub fn with_fixtures(self) -> Self {
        copy_tree(&fixtures_dir(), &self.docs());
        self
    }

    /// Runs `ingest ARGS... --data-dir <data>` and returns its output.
    pub fn ingest<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ingest"));
        command.args(args).arg("--data-dir").arg(self.data()).env_remove("DATABASE_URL").env_remove("QDRANT_URL");
        command.output().expect("running the ingest binary")
    }

    /// Runs ingest, asserts its exit code, and parses its stdout as JSON.
    pub fn ingest_json<I, S>(&self, args: I, expected_code: i32) -> serde_json::Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let output = self.ingest(args);
        let shown = show(&output);
        assert_eq!(output.status.code(), Some(expected_code), "unexpected exit code\n{shown}");
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("stdout is not JSON: {e}\n{shown}"))
    }
}

/// Everything a failed assertion needs to explain itself.
pub fn show(output: &Output) -> String {
    format!(
        "exit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every point of `collection` in the embedded engine under `data`, by id. The engine is
/// closed again before returning, so the binary can open it next.
pub fn stored_points(data: &Path, collection: &str, with_vectors: bool) -> BTreeMap<uuid::Uuid, ingest::store::Point> {
    use ingest::store::VectorIndex;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let index = ingest::store::embedded::EmbeddedIndex::open(data, collection).unwrap();
    let mut points = BTreeMap::new();
    let mut offset = None;
    loop {
        let (page, next) = runtime.block_on(index.scroll(offset, 100, with_vectors)).unwrap();
        points.extend(page.into_iter().map(|p| (p.id, p)));
        match next {
            Some(next) => offset = Some(next),
            None => return points,
        }
    }
}
