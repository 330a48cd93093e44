//! Helpers for tests that run the real `ingest` binary against a throwaway data directory,
//! on the embedded default or on servers: a fresh PostgreSQL database on 127.0.0.1 and the
//! gRPC test Qdrant server of [`qdrant_server`].
#![allow(dead_code)]

pub mod postgres;
pub mod qdrant_server;
pub mod scans;
pub mod service;

use std::collections::BTreeMap;

use ingest::catalog::FileStatus;
use ingest::parquet_copy::{read_points, ParquetCopy};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where a workspace keeps its catalog and points.
pub enum Backend {
    /// The embedded catalog and engine, under the data directory.
    Embedded,
    /// A fresh PostgreSQL database and a test Qdrant server over gRPC.
    Servers { postgres: postgres::FreshPostgres, qdrant: qdrant_server::TestQdrant },
}

/// A temporary workspace: a documents tree, a data directory, and a backend.
pub struct Workspace {
    pub temp: tempfile::TempDir,
    pub backend: Backend,
}

impl Workspace {
    pub fn new() -> Self {
        Self { temp: tempfile::tempdir().expect("creating a temp dir"), backend: Backend::Embedded }
    }

    /// A workspace whose runs use a fresh PostgreSQL database and a fresh test Qdrant server.
    pub fn on_servers() -> Self {
        let backend = Backend::Servers {
            postgres: postgres::FreshPostgres::create(),
            qdrant: qdrant_server::TestQdrant::start(),
        };
        Self { temp: tempfile::tempdir().expect("creating a temp dir"), backend }
    }

    /// The same kind of backend as `self`, fresh.
    pub fn another(&self) -> Self {
        match self.backend {
            Backend::Embedded => Self::new(),
            Backend::Servers { .. } => Self::on_servers(),
        }
    }

    pub fn postgres(&self) -> &postgres::FreshPostgres {
        match &self.backend {
            Backend::Servers { postgres, .. } => postgres,
            Backend::Embedded => panic!("this workspace has no PostgreSQL database"),
        }
    }

    pub fn qdrant(&self) -> &qdrant_server::TestQdrant {
        match &self.backend {
            Backend::Servers { qdrant, .. } => qdrant,
            Backend::Embedded => panic!("this workspace has no Qdrant server"),
        }
    }

    /// The flags that point the binary at this workspace's stores.
    pub fn store_args(&self) -> Vec<String> {
        let mut args = vec!["--data-dir".to_string(), self.data().display().to_string()];
        if let Backend::Servers { postgres, qdrant } = &self.backend {
            args.extend(["--database-url".into(), postgres.url.clone(), "--qdrant-url".into(), qdrant.url()]);
        }
        args
    }

    /// The URL of the catalog this workspace's runs write to.
    pub fn catalog_url(&self) -> String {
        match &self.backend {
            Backend::Embedded => ingest::catalog::Catalog::sqlite_url(&self.data()),
            Backend::Servers { postgres, .. } => postgres.url.clone(),
        }
    }

    /// The catalog this workspace's runs write to.
    pub async fn catalog(&self) -> ingest::catalog::Catalog {
        let url = self.catalog_url();
        ingest::catalog::Catalog::connect(&url).await.expect("connecting to the workspace's catalog")
    }

    /// Runs one SQL statement on this workspace's catalog, as an operator (or an older build
    /// of `ingest`) could have.
    pub fn execute_on_catalog(&self, sql: &str) {
        execute_sql(&self.catalog_url(), sql);
    }

    /// The first column of the first row of one SQL query on this workspace's catalog, as a
    /// number (PostgreSQL `BIGINT`).
    pub fn catalog_number(&self, sql: &str) -> i64 {
        sql_number(&self.catalog_url(), sql)
    }

    /// The collection this workspace's runs write to, opened as the binary opens it.
    pub async fn index(&self, collection: &str) -> std::sync::Arc<dyn ingest::store::VectorIndex> {
        let data = self.data();
        let url = match &self.backend {
            Backend::Embedded => None,
            Backend::Servers { qdrant, .. } => Some(qdrant.url()),
        };
        let location = ingest::store::StoreLocation {
            data_dir: &data,
            qdrant_url: url.as_deref(),
            api_key: None,
            layout: Default::default(),
            like: None,
        };
        ingest::store::open(location, collection, ingest::retry::RetryPolicy::default()).await.unwrap()
    }

    /// The store collection of `collection`'s live generation, opened: on a Qdrant server the
    /// one its name is an alias of, which is what a lost collection loses.
    pub async fn live_index(&self, collection: &str) -> std::sync::Arc<dyn ingest::store::VectorIndex> {
        let generations = self.catalog().await.collection(collection).generations().await.unwrap();
        let live = ingest::catalog::live_generation(&generations).expect("a live generation");
        self.index(&live.store_collection).await
    }

    /// Every point of `collection`, by id. An embedded engine is closed again before
    /// returning, so the binary can open it next.
    pub fn stored_points(&self, collection: &str, with_vectors: bool) -> BTreeMap<uuid::Uuid, ingest::store::Point> {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let index = self.index(collection).await;
            ingest::store::all_points(index.as_ref(), with_vectors).await.unwrap()
        })
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

    /// `ingest ARGS...` pointed at this workspace's stores, not yet started.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ingest"));
        command.args(args).args(self.store_args()).env_remove("DATABASE_URL").env_remove("QDRANT_URL");
        command
    }

    /// Runs `ingest ARGS...` against this workspace's stores and returns its output.
    pub fn ingest<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command(args).output().expect("running the ingest binary")
    }

    /// Starts `ingest DOCS ARGS...` against this workspace's stores without waiting for it;
    /// its output is piped.
    pub fn spawn(&self, docs: &Path, args: &[&str]) -> std::process::Child {
        self.command(std::iter::once(docs.as_os_str()).chain(args.iter().map(OsStr::new)))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starting the ingest binary")
    }

    /// Waits until the test Qdrant server has acknowledged `count` upserts, for a minute at most.
    pub fn wait_for_upserts(&self, count: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while self.qdrant().upserts() < count && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Runs ingest, asserts its exit code, and parses its stdout as JSON.
    pub fn ingest_json<I, S>(&self, args: I, expected_code: i32) -> serde_json::Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        json_of(&self.ingest(args), expected_code)
    }
}

/// Runs one SQL statement on the catalog at `url`.
pub fn execute_sql(url: &str, sql: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(url).await.unwrap();
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    });
}

/// The first column of the first row of one SQL query on the catalog at `url`, as a number
/// (PostgreSQL `BIGINT`); on a thread of its own, so that it can be called from async tests.
pub fn sql_number(url: &str, sql: &str) -> i64 {
    let (url, sql) = (url.to_string(), sql.to_string());
    std::thread::spawn(move || {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            sqlx::any::install_default_drivers();
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url).await.unwrap();
            sqlx::query_scalar::<_, i64>(&sql).fetch_one(&mut conn).await.unwrap()
        })
    })
    .join()
    .unwrap()
}

/// Asserts a finished command's exit code and parses its stdout as JSON.
pub fn json_of(output: &Output, expected_code: i32) -> serde_json::Value {
    let shown = show(output);
    assert_eq!(output.status.code(), Some(expected_code), "unexpected exit code\n{shown}");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("stdout is not JSON: {e}\n{shown}"))
}

/// Small chunks committed one group at a time: many commit points in a small tree.
pub const SMALL_RUN: &[&str] =
    &["--json", "--quiet", "--chunk-size", "24", "--chunk-overlap", "0", "--commit-interval", "0"];

/// `SMALL_RUN` followed by `extra`.
pub fn small_run(extra: &[&'static str]) -> Vec<&'static str> {
    SMALL_RUN.iter().chain(extra).copied().collect()
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

/// A text of `sentences` sentences about `topic`.
pub fn text(topic: &str, sentences: usize) -> String {
    (0..sentences)
        .map(|i| format!("Note {i} about {topic}: the {topic} behaves in way number {i}."))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn write(root: &Path, name: &str, body: &str) {
    std::fs::write(root.join(name), body).unwrap();
}

/// Everything observable about a collection, minus run-specific ids and times.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    /// path → (status, content hash, vectors)
    pub files: BTreeMap<String, (String, Option<String>, i64)>,
    /// point id → (doc_id, chunk index, content hash)
    pub points: BTreeMap<uuid::Uuid, (String, u32, String)>,
    /// point id of every live parquet row → content hash
    pub parquet: BTreeMap<uuid::Uuid, String>,
}

pub fn snapshot(ws: &Workspace) -> Snapshot {
    let data = &ws.data();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let rows = runtime.block_on(async { ws.catalog().await.collection("documents").files().await }).unwrap();
    let files = rows
        .iter()
        .filter(|f| f.status() != FileStatus::Deleted)
        .map(|f| (f.path.clone(), (f.status.clone(), f.content_hash.clone(), f.vectors_created)))
        .collect();
    let points = ws
        .stored_points("documents", false)
        .into_values()
        .map(|p| (p.id, (p.payload.doc_id, p.payload.chunk_index, p.payload.content_hash)))
        .collect();
    let live: BTreeMap<(String, String), i64> = rows
        .iter()
        .filter(|f| f.status() == FileStatus::Completed)
        .map(|f| ((f.doc_id.clone(), f.embedded_job_id.clone().unwrap()), f.vectors_created))
        .collect();
    let mut parquet = BTreeMap::new();
    for file in ParquetCopy::new(data, "documents", 384).files().unwrap() {
        for row in read_points(&file, 384).unwrap() {
            let key = (row.payload.doc_id.clone(), row.payload.job_id.clone());
            if live.get(&key).is_some_and(|&n| (row.payload.chunk_index as i64) < n) {
                parquet.insert(row.id, row.payload.content_hash);
            }
        }
    }
    Snapshot { files, points, parquet }
}
