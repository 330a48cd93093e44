//! # Catalog
//!
//! In: job and file state changes from the job runner. Out: durable `jobs` and `files`
//! rows, the source of truth for what is indexed.
//!
//! One implementation serves both backends through sqlx's `Any` driver with portable SQL:
//! PostgreSQL (`--database-url postgres://...`) and the embedded default, a SQLite file
//! under the data directory. The schema comes from the versioned migrations in
//! `migrations/`, applied on connect.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::retry::{OutageClock, RetryPolicy, Transient};

/// The schema migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A job's lifecycle: `created → scanning → processing → completed | failed | cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Created,
    Scanning,
    Processing,
    Completed,
    Failed,
    Cancelled,
}

/// A file's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStatus {
    Pending,
    Processing,
    Completed,
    Failed,
    /// Read, but holding no text to index (an empty file, a scan without a text layer).
    NoText,
    Deleted,
}

macro_rules! text_enum {
    ($ty:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),* }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl std::str::FromStr for $ty {
            type Err = anyhow::Error;
            fn from_str(s: &str) -> Result<Self> {
                match s { $($text => Ok(Self::$variant),)* other => bail!("unknown {} {other:?}", stringify!($ty)) }
            }
        }
    };
}

text_enum!(JobStatus { Created => "created", Scanning => "scanning", Processing => "processing",
    Completed => "completed", Failed => "failed", Cancelled => "cancelled" });
impl FileStatus {
    /// A status as a row records it; an unknown one reads as `pending`, so that the file is
    /// looked at again.
    pub fn recorded(text: &str) -> Self {
        text.parse().unwrap_or(Self::Pending)
    }
}

text_enum!(FileStatus { Pending => "pending", Processing => "processing", Completed => "completed",
    Failed => "failed", NoText => "no_text", Deleted => "deleted" });

mod queue;
pub use queue::{Claim, Fence, ItemState, ParkedItem, QueueDepth, WorkItem, WorkKind, WorkerRow, WORK_CHANNEL};

/// The settings a job runs with, recorded on its row.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub name: String,
    pub directory_path: String,
    pub collection: String,
    pub model_name: String,
    pub vector_dim: i64,
    pub chunk_size: i64,
    pub chunk_overlap: i64,
    pub batch_size: i64,
}

/// The progress counters of a job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct JobCounters {
    pub total_files: i64,
    pub processed_files: i64,
    pub failed_files: i64,
    pub skipped_files: i64,
    pub deleted_files: i64,
}

/// A job row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobRow {
    pub id: String,
    pub name: String,
    pub status: String,
    pub directory_path: String,
    pub collection: String,
    pub model_name: String,
    pub chunk_size: i64,
    pub chunk_overlap: i64,
    pub counters: JobCounters,
    pub current_file: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub error: Option<String>,
    /// The job's check of what it touched, as recorded JSON (see [`Catalog::record_verification`]).
    pub verification: Option<serde_json::Value>,
}

/// A file row. Its fields are in `FILE_FIELDS` order, which is also the order of the
/// arrays [`Catalog::files`] reads.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileRow {
    pub path: String,
    pub doc_id: String,
    pub size: i64,
    pub modified_ns: i64,
    pub extension: String,
    pub content_hash: Option<String>,
    pub logic_fingerprint: Option<String>,
    pub status: String,
    pub error: Option<String>,
    pub retry_count: i64,
    pub chunks_created: i64,
    pub vectors_created: i64,
    pub job_id: Option<String>,
    pub embedded_job_id: Option<String>,
}

impl FileRow {
    pub fn status(&self) -> FileStatus {
        FileStatus::recorded(&self.status)
    }
}

/// What a run needs of an indexed file's row to judge the file on disk against it and, when
/// the file changed or vanished, to replace or remove its points: a [`FileRow`] without the
/// fields only reports read. A no-change re-run reads one of these per file, so fewer and
/// shorter fields make it faster. Its fields are in `KNOWN_FILE_FIELDS` order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct KnownFile {
    pub path: String,
    pub doc_id: String,
    pub size: i64,
    pub modified_ns: i64,
    pub extension: String,
    pub content_hash: Option<String>,
    pub logic_fingerprint: Option<String>,
    #[serde(deserialize_with = "status_or_pending")]
    pub status: FileStatus,
    pub error: Option<String>,
    pub retry_count: i64,
    pub vectors_created: i64,
}

impl KnownFile {
    /// Whether the store may hold points of this file: it has vectors of record, or it did
    /// not complete (a run may have stopped between its upsert and its completion).
    pub fn may_have_points(&self) -> bool {
        self.vectors_created > 0 || self.status != FileStatus::Completed
    }
}

/// A status as recorded, read as [`FileStatus::recorded`] reads it.
fn status_or_pending<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<FileStatus, D::Error> {
    let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
    Ok(FileStatus::recorded(&text))
}

/// What is known of a file about to be written.
#[derive(Debug, Clone)]
pub struct FileFacts {
    pub path: String,
    pub doc_id: String,
    pub size: i64,
    pub modified_ns: i64,
    pub extension: String,
    pub content_hash: Option<String>,
    pub logic_fingerprint: String,
}

/// A file whose points Qdrant has acknowledged.
#[derive(Debug, Clone)]
pub struct Completion {
    pub path: String,
    pub chunks: i64,
    pub vectors: i64,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The advisory lock key of a collection lock named by `$1`.
const ADVISORY_LOCK_KEY: &str = "hashtext($1)::bigint";

/// The collection lock is gone: its connection closed (a server restart, an idle timeout),
/// so another run could now take the collection.
#[derive(Debug, thiserror::Error)]
#[error(
    "lost the collection lock on PostgreSQL ({0}); stopped so no other run can interleave — run `ingest` again to resume"
)]
pub struct LockLost(&'static str);

/// PostgreSQL's session advisory lock on one collection, held on a connection of its own
/// for as long as this value lives.
pub struct CollectionLock {
    /// The connection holding the lock, behind a mutex so that checks need only `&self`.
    connection: tokio::sync::Mutex<sqlx::AnyConnection>,
    /// The lock's name; PostgreSQL hashes it into the advisory lock key.
    name: String,
}

impl fmt::Debug for CollectionLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CollectionLock").field("name", &self.name).finish_non_exhaustive()
    }
}

impl CollectionLock {
    /// Confirms, on the lock's own connection, that the connection is alive and still holds
    /// the lock; [`LockLost`] when not.
    pub async fn ensure_held(&self) -> Result<()> {
        // A bigint advisory key shows in `pg_locks` as its high half in `classid` and its
        // low half in `objid`, with `objsubid` 1.
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM pg_locks, (SELECT {ADVISORY_LOCK_KEY} AS key) AS wanted
                WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted AND objsubid = 1
                    AND classid = ((wanted.key >> 32) & 4294967295)::oid AND objid = (wanted.key & 4294967295)::oid)"
        );
        let mut connection = self.connection.lock().await;
        match sqlx::query_scalar::<_, bool>(&sql).bind(&self.name).fetch_one(&mut *connection).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(LockLost("lock released").into()),
            Err(_) => Err(LockLost("connection closed").into()),
        }
    }
}

/// The job and file store.
#[derive(Clone)]
pub struct Catalog {
    pool: AnyPool,
    is_postgres: bool,
    /// Retries calls through a lost PostgreSQL connection, up to the outage limit.
    outage_clock: Arc<OutageClock>,
    /// A worker's leases: with one, file rows are written only where it still holds their
    /// work items (see [`Catalog::fenced`]).
    fence: Option<Arc<Fence>>,
}

impl Catalog {
    /// Connects to `url` (`postgres://...` or `sqlite://...`) and applies migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let is_sqlite = url.starts_with("sqlite:");
        // One direct attempt first: a refused connection fails at once instead of after the pool's timeout.
        <sqlx::AnyConnection as sqlx::Connection>::connect(url)
            .await
            .map_err(|e| anyhow!("{}", describe_connect_error(url, &e)))?;
        let pool = AnyPoolOptions::new()
            .max_connections(if is_sqlite { 1 } else { 4 })
            .acquire_timeout(std::time::Duration::from_secs(30))
            .connect(url)
            .await
            .map_err(|e| anyhow!("{}", describe_connect_error(url, &e)))?;
        if is_sqlite {
            for pragma in ["PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL", "PRAGMA busy_timeout = 10000"] {
                sqlx::query(pragma).execute(&pool).await.with_context(|| format!("setting {pragma}"))?;
            }
        }
        MIGRATOR.run(&pool).await.context("applying catalog migrations")?;
        let service = if is_sqlite { "the embedded catalog" } else { "PostgreSQL" };
        let outage_clock = Arc::new(OutageClock::new(service, RetryPolicy::default()));
        Ok(Self { pool, is_postgres: !is_sqlite, outage_clock, fence: None })
    }

    /// The same catalog, retrying lost connections under `policy`.
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.outage_clock = Arc::new(OutageClock::new(self.outage_clock.service(), policy));
        self
    }

    /// How long the catalog has been unreachable, for the progress line.
    pub fn outage_clock(&self) -> &Arc<OutageClock> {
        &self.outage_clock
    }

    /// Runs one catalog operation, retrying it while the connection is lost. Every
    /// operation is one statement or one transaction, so a retry repeats it whole.
    async fn retrying<T, F, Fut>(&self, mut operation: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        self.outage_clock
            .call(|| {
                let attempt = operation();
                async move { attempt.await.map_err(mark_connection_loss) }
            })
            .await
    }

    /// Takes PostgreSQL's session advisory lock for `collection`, so that runs on other
    /// machines sharing this catalog wait their turn. The lock lives on its own connection
    /// and is released when the returned [`CollectionLock`] is dropped, or when the process
    /// dies. The embedded catalog returns `None`: the data directory's lock file covers it.
    pub async fn lock_collection(&self, collection: &str) -> Result<Option<CollectionLock>> {
        if !self.is_postgres {
            return Ok(None);
        }
        match self.advisory_lock(format!("ingest:{collection}"), false).await? {
            Some(lock) => Ok(Some(lock)),
            None => Err(crate::lock::Busy(collection.to_string()).into()),
        }
    }

    /// The collection lock shared with other workers: workers run side by side, and a run
    /// that takes the collection whole waits for them. `None` while such a run (or a planner)
    /// holds it.
    pub async fn lock_collection_shared(&self, collection: &str) -> Result<Option<CollectionLock>> {
        self.require_postgres()?;
        self.advisory_lock(format!("ingest:{collection}"), true).await
    }

    /// The right to run a queued job's end-of-job steps; `None` while another process has it.
    pub async fn lock_job_end(&self, job_id: &str) -> Result<Option<CollectionLock>> {
        self.require_postgres()?;
        self.advisory_lock(format!("ingest-end:{job_id}"), false).await
    }

    /// Tries PostgreSQL's session advisory lock named `name`, exclusive or shared, on a
    /// connection of its own; `None` when another session holds it in a conflicting mode.
    async fn advisory_lock(&self, name: String, shared: bool) -> Result<Option<CollectionLock>> {
        let mut connection = self.pool.acquire().await.context("connecting for a lock")?.detach();
        let function = if shared { "pg_try_advisory_lock_shared" } else { "pg_try_advisory_lock" };
        let locked: bool = sqlx::query_scalar(&format!("SELECT {function}({ADVISORY_LOCK_KEY})"))
            .bind(&name)
            .fetch_one(&mut connection)
            .await
            .with_context(|| format!("taking the lock {name:?}"))?;
        Ok(locked.then(|| CollectionLock { connection: tokio::sync::Mutex::new(connection), name }))
    }

    /// The cached vectors of `model` among these chunk content hashes.
    pub async fn cached_vectors(&self, model: &str, hashes: &[&str]) -> Result<HashMap<String, Vec<f32>>> {
        let mut found = HashMap::new();
        for group in hashes.chunks(500) {
            let placeholders: Vec<String> = (0..group.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT content_hash, vector FROM embedding_cache WHERE model = $1 AND content_hash IN ({})",
                placeholders.join(", ")
            );
            let rows = self
                .retrying(|| async {
                    let mut query = sqlx::query(&sql).bind(model);
                    for hash in group {
                        query = query.bind(*hash);
                    }
                    query.fetch_all(&self.pool).await.context("reading the embedding cache")
                })
                .await?;
            for row in rows {
                let bytes: Vec<u8> = row.try_get("vector")?;
                found.insert(row.try_get("content_hash")?, crate::cache::decode(&bytes));
            }
        }
        Ok(found)
    }

    /// Adds vectors of `model` to the cache; existing entries are kept.
    pub async fn cache_vectors(&self, model: &str, vectors: &[(&str, &[f32])]) -> Result<()> {
        let at = now();
        self.retrying(|| async {
            let mut tx = self.pool.begin().await.context("starting a catalog transaction")?;
            for (hash, vector) in vectors {
                sqlx::query(
                    "INSERT INTO embedding_cache (model, content_hash, vector, created_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (model, content_hash) DO NOTHING",
                )
                .bind(model)
                .bind(*hash)
                .bind(crate::cache::encode(vector))
                .bind(&at)
                .execute(&mut *tx)
                .await
                .context("writing the embedding cache")?;
            }
            tx.commit().await.context("committing the embedding cache")?;
            Ok(())
        })
        .await
    }

    /// The versions and descriptions of the applied schema migrations, oldest first.
    pub async fn applied_migrations(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT version, description FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&self.pool)
            .await
            .context("reading the applied migrations")?;
        rows.iter()
            .map(|row| {
                Ok(format!("{} {}", row.try_get::<i64, _>("version")?, row.try_get::<String, _>("description")?))
            })
            .collect()
    }

    /// The embedded catalog's URL for a data directory.
    pub fn sqlite_url(data_dir: &std::path::Path) -> String {
        format!("sqlite://{}?mode=rwc", data_dir.join("catalog.sqlite").display())
    }

    pub async fn create_job(&self, job: &NewJob) -> Result<String> {
        self.retrying(|| async {
            let id = uuid::Uuid::new_v4().to_string();
            let at = now();
            sqlx::query(
                "INSERT INTO jobs (id, name, status, directory_path, collection, model_name, vector_dim, chunk_size,
                    chunk_overlap, batch_size, created_at, updated_at, started_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $11)",
            )
            .bind(&id)
            .bind(&job.name)
            .bind(JobStatus::Created.as_str())
            .bind(&job.directory_path)
            .bind(&job.collection)
            .bind(&job.model_name)
            .bind(job.vector_dim)
            .bind(job.chunk_size)
            .bind(job.chunk_overlap)
            .bind(job.batch_size)
            .bind(&at)
            .execute(&self.pool)
            .await
            .context("creating the job row")?;
            Ok(id.clone())
        })
        .await
    }

    /// Moves a job to `status`; a final status also stamps `finished_at`.
    pub async fn set_job_status(&self, job_id: &str, status: JobStatus, error: Option<&str>) -> Result<()> {
        self.retrying(|| async {
            let at = now();
            let finished = matches!(status, JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled);
            sqlx::query(
                "UPDATE jobs SET status = $1, error = $2, updated_at = $3,
                    finished_at = CASE WHEN $4 = 1 THEN $3 ELSE finished_at END,
                    current_file = CASE WHEN $4 = 1 THEN NULL ELSE current_file END
                 WHERE id = $5",
            )
            .bind(status.as_str())
            .bind(error)
            .bind(&at)
            .bind(finished as i64)
            .bind(job_id)
            .execute(&self.pool)
            .await
            .with_context(|| format!("setting job {job_id} to {status}"))?;
            Ok(())
        })
        .await
    }

    pub async fn save_progress(&self, job_id: &str, counters: &JobCounters, current_file: Option<&str>) -> Result<()> {
        self.retrying(|| async {
            sqlx::query(
                "UPDATE jobs SET total_files = $1, processed_files = $2, failed_files = $3, skipped_files = $4,
                    deleted_files = $5, current_file = $6, updated_at = $7 WHERE id = $8",
            )
            .bind(counters.total_files)
            .bind(counters.processed_files)
            .bind(counters.failed_files)
            .bind(counters.skipped_files)
            .bind(counters.deleted_files)
            .bind(current_file)
            .bind(now())
            .bind(job_id)
            .execute(&self.pool)
            .await
            .context("saving job progress")?;
            Ok(())
        })
        .await
    }

    /// Records the job's check of what it touched (any JSON value).
    pub async fn record_verification(&self, job_id: &str, verification: &serde_json::Value) -> Result<()> {
        let text = verification.to_string();
        self.retrying(|| async {
            sqlx::query("UPDATE jobs SET verification = $1, updated_at = $2 WHERE id = $3")
                .bind(&text)
                .bind(now())
                .bind(job_id)
                .execute(&self.pool)
                .await
                .context("recording the job's verification")?;
            Ok(())
        })
        .await
    }

    /// The number of points the collection should hold: the sum of `vectors_created` over
    /// its completed files.
    pub async fn completed_vectors(&self, collection: &str) -> Result<u64> {
        self.retrying(|| async {
            let total: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(vectors_created), 0) AS BIGINT) FROM files
                 WHERE collection = $1 AND status = $2",
            )
            .bind(collection)
            .bind(FileStatus::Completed.as_str())
            .fetch_one(&self.pool)
            .await
            .context("summing the completed files' vectors")?;
            Ok(total.max(0) as u64)
        })
        .await
    }

    pub async fn job(&self, job_id: &str) -> Result<Option<JobRow>> {
        self.retrying(|| async {
            let row = sqlx::query(&format!("{JOB_COLUMNS} WHERE id = $1"))
                .bind(job_id)
                .fetch_optional(&self.pool)
                .await
                .context("reading a job")?;
            row.map(|r| job_row(&r)).transpose()
        })
        .await
    }

    /// The most recent jobs first.
    pub async fn jobs(&self, collection: Option<&str>, limit: i64) -> Result<Vec<JobRow>> {
        self.retrying(|| async {
            let rows = sqlx::query(&format!(
                "{JOB_COLUMNS} WHERE ($1 = '' OR collection = $1) ORDER BY created_at DESC LIMIT $2"
            ))
            .bind(collection.unwrap_or(""))
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .context("listing jobs")?;
            rows.iter().map(job_row).collect()
        })
        .await
    }

    /// Every file row of a collection, deleted ones included, by path.
    pub async fn files(&self, collection: &str) -> Result<Vec<FileRow>> {
        let mut files = self.files_in_any_order(collection).await?;
        files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    /// [`Self::files`] in the order the database returns them: for a caller that looks rows
    /// up by path, to which sorting 100,000 paths would add a tenth of a no-change re-run.
    pub async fn files_in_any_order(&self, collection: &str) -> Result<Vec<FileRow>> {
        self.file_rows(collection, "", &[]).await
    }

    /// The file rows of `collection` that `filter` (SQL starting with `AND`, its values bound
    /// from `$2` on) lets through, in any order.
    async fn file_rows(&self, collection: &str, filter: &str, values: &[String]) -> Result<Vec<FileRow>> {
        self.rows_as_json(FILE_FIELDS, collection, filter, values).await
    }

    /// What a run needs of each file `collection` holds (see [`KnownFile`]), in any order.
    pub async fn known_files(&self, collection: &str) -> Result<Vec<KnownFile>> {
        self.rows_as_json(KNOWN_FILE_FIELDS, collection, "", &[]).await
    }

    /// The `fields` of the file rows that `filter` lets through, decoded as `T`.
    async fn rows_as_json<T: serde::de::DeserializeOwned>(
        &self,
        fields: &str,
        collection: &str,
        filter: &str,
        values: &[String],
    ) -> Result<Vec<T>> {
        // The rows travel as one JSON array of arrays built by the database: decoding them
        // one by one through the `Any` driver costs about 15 µs a row, which would make a
        // no-change re-run over 100,000 files wait on the catalog rather than the disk.
        let sql = if self.is_postgres {
            format!("SELECT COALESCE(json_agg(json_build_array({fields})), '[]')::text AS rows FROM files WHERE collection = $1 {filter}")
        } else {
            format!("SELECT json_group_array(json_array({fields})) AS rows FROM files WHERE collection = $1 {filter}")
        };
        let text: String = self
            .retrying(|| async {
                let mut query = sqlx::query(&sql).bind(collection);
                for value in values {
                    query = query.bind(value);
                }
                let row = query.fetch_one(&self.pool).await.context("reading file rows")?;
                Ok(row.try_get("rows")?)
            })
            .await?;
        serde_json::from_str(&text).context("decoding file rows")
    }

    /// Records files as `processing` with their new content hash and fingerprint (step 1 of
    /// the write protocol), in one transaction. Returns the paths a fenced catalog did not
    /// write, their leases being lost.
    pub async fn mark_processing(&self, collection: &str, job_id: &str, files: &[FileFacts]) -> Result<Vec<String>> {
        self.retrying(|| async {
            let mut tx = self.pool.begin().await.context("starting a catalog transaction")?;
            let at = now();
            let mut lost = Vec::new();
            for file in files {
                if !self.holds(&mut tx, &file.path, false).await? {
                    lost.push(file.path.clone());
                    continue;
                }
                bind_facts(
                    sqlx::query(
                        "INSERT INTO files (collection, path, doc_id, size, modified_ns, extension, content_hash,
                        logic_fingerprint, status, job_id, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                     ON CONFLICT (collection, path) DO UPDATE SET doc_id = excluded.doc_id, size = excluded.size,
                        modified_ns = excluded.modified_ns, extension = excluded.extension,
                        content_hash = excluded.content_hash, logic_fingerprint = excluded.logic_fingerprint,
                        status = excluded.status, job_id = excluded.job_id, updated_at = excluded.updated_at",
                    ),
                    collection,
                    file,
                )
                .bind(FileStatus::Processing.as_str())
                .bind(job_id)
                .bind(&at)
                .execute(&mut *tx)
                .await
                .with_context(|| format!("marking {} processing", file.path))?;
            }
            tx.commit().await.context("committing processing marks")?;
            Ok(lost)
        })
        .await
    }

    /// Marks files `completed` once their points are acknowledged (the commit step).
    /// Returns the paths a fenced catalog did not write, their leases being lost.
    pub async fn mark_completed(&self, collection: &str, job_id: &str, done: &[Completion]) -> Result<Vec<String>> {
        let lost = self
            .retrying(|| async {
                let mut tx = self.pool.begin().await.context("starting a catalog transaction")?;
                let at = now();
                let mut lost = Vec::new();
                for file in done {
                    if !self.holds(&mut tx, &file.path, true).await? {
                        lost.push(file.path.clone());
                        continue;
                    }
                    sqlx::query(
                        "UPDATE files SET status = $1, error = NULL, retry_count = 0, chunks_created = $2,
                        vectors_created = $3, job_id = $4, embedded_job_id = $4, updated_at = $5
                     WHERE collection = $6 AND path = $7",
                    )
                    .bind(FileStatus::Completed.as_str())
                    .bind(file.chunks)
                    .bind(file.vectors)
                    .bind(job_id)
                    .bind(&at)
                    .bind(collection)
                    .bind(&file.path)
                    .execute(&mut *tx)
                    .await
                    .with_context(|| format!("marking {} completed", file.path))?;
                }
                tx.commit().await.context("committing completions")?;
                Ok(lost)
            })
            .await?;
        self.forget_claims(&done.iter().map(|f| f.path.clone()).collect::<Vec<_>>());
        Ok(lost)
    }

    /// Records a file that has no points, with the reason: `failed` (then `retry_count`
    /// counts consecutive failures) or `no_text`. Its points (if any) must already have been
    /// removed.
    pub async fn record_without_points(
        &self,
        collection: &str,
        job_id: &str,
        file: &FileFacts,
        status: FileStatus,
        reason: &str,
    ) -> Result<bool> {
        let counts_as_retry = (status == FileStatus::Failed) as i64;
        let held = self
            .retrying(|| async {
                let mut tx = self.pool.begin().await.context("starting a catalog transaction")?;
                if !self.holds(&mut tx, &file.path, true).await? {
                    return Ok(false);
                }
                bind_facts(
                    sqlx::query(
                        "INSERT INTO files (collection, path, doc_id, size, modified_ns, extension, content_hash,
                    logic_fingerprint, status, error, retry_count, job_id, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $13, $11, $12)
                 ON CONFLICT (collection, path) DO UPDATE SET size = excluded.size, modified_ns = excluded.modified_ns,
                    content_hash = excluded.content_hash, logic_fingerprint = excluded.logic_fingerprint,
                    status = excluded.status, error = excluded.error,
                    retry_count = (files.retry_count + 1) * excluded.retry_count,
                    chunks_created = 0, vectors_created = 0, embedded_job_id = NULL,
                    job_id = excluded.job_id, updated_at = excluded.updated_at",
                    ),
                    collection,
                    file,
                )
                .bind(status.as_str())
                .bind(reason)
                .bind(job_id)
                .bind(now())
                .bind(counts_as_retry)
                .execute(&mut *tx)
                .await
                .with_context(|| format!("marking {} {status}", file.path))?;
                tx.commit().await.context("committing a file's state")?;
                Ok(true)
            })
            .await?;
        self.forget_claims(std::slice::from_ref(&file.path));
        Ok(held)
    }

    /// Refreshes size and mtime of a file whose content turned out unchanged.
    pub async fn refresh_stat(&self, collection: &str, path: &str, size: i64, modified_ns: i64) -> Result<()> {
        self.retrying(|| async {
            sqlx::query(
                "UPDATE files SET size = $1, modified_ns = $2, updated_at = $3 WHERE collection = $4 AND path = $5",
            )
            .bind(size)
            .bind(modified_ns)
            .bind(now())
            .bind(collection)
            .bind(path)
            .execute(&self.pool)
            .await
            .with_context(|| format!("refreshing {path}"))?;
            Ok(())
        })
        .await
    }

    /// Marks files `deleted` after their points are gone. Returns the paths a fenced catalog
    /// did not write, their leases being lost.
    pub async fn mark_deleted(&self, collection: &str, job_id: &str, paths: &[String]) -> Result<Vec<String>> {
        self.clear_files(collection, Some(job_id), paths, FileStatus::Deleted).await
    }

    /// Returns files to `pending`, with no points of record, so that the next run embeds
    /// them again (used when their points and parquet rows are both gone).
    pub async fn mark_pending(&self, collection: &str, paths: &[String]) -> Result<()> {
        self.clear_files(collection, None, paths, FileStatus::Pending).await.map(drop)
    }

    async fn clear_files(
        &self,
        collection: &str,
        job_id: Option<&str>,
        paths: &[String],
        status: FileStatus,
    ) -> Result<Vec<String>> {
        let lost = self
            .retrying(|| async {
                let mut tx = self.pool.begin().await.context("starting a catalog transaction")?;
                let at = now();
                let mut lost = Vec::new();
                for path in paths {
                    if !self.holds(&mut tx, path, true).await? {
                        lost.push(path.clone());
                        continue;
                    }
                    sqlx::query(
                        "UPDATE files SET status = $1, chunks_created = 0, vectors_created = 0, embedded_job_id = NULL,
                    error = NULL, job_id = COALESCE($2, job_id), updated_at = $3 WHERE collection = $4 AND path = $5",
                    )
                    .bind(status.as_str())
                    .bind(job_id)
                    .bind(&at)
                    .bind(collection)
                    .bind(path)
                    .execute(&mut *tx)
                    .await
                    .with_context(|| format!("marking {path} {status}"))?;
                }
                tx.commit().await.context("committing file states")?;
                Ok(lost)
            })
            .await?;
        self.forget_claims(paths);
        Ok(lost)
    }
}

/// Binds `$1..$8` of a files upsert: the collection and the file's facts.
fn bind_facts<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    collection: &'q str,
    file: &'q FileFacts,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(collection)
        .bind(&file.path)
        .bind(&file.doc_id)
        .bind(file.size)
        .bind(file.modified_ns)
        .bind(&file.extension)
        .bind(&file.content_hash)
        .bind(&file.logic_fingerprint)
}

const JOB_COLUMNS: &str =
    "SELECT id, name, status, directory_path, collection, model_name, chunk_size, chunk_overlap, total_files,
    processed_files, failed_files, skipped_files, deleted_files, current_file, created_at, started_at,
    finished_at, error, verification FROM jobs";

/// The columns of [`FileRow`], in its field order.
const FILE_FIELDS: &str = "path, doc_id, size, modified_ns, extension, content_hash, logic_fingerprint, status,
    error, retry_count, chunks_created, vectors_created, job_id, embedded_job_id";
/// The columns of [`KnownFile`], in its field order.
const KNOWN_FILE_FIELDS: &str =
    "path, doc_id, size, modified_ns, extension, content_hash, logic_fingerprint, status, error, retry_count,
    vectors_created";

fn job_row(row: &AnyRow) -> Result<JobRow> {
    Ok(JobRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        status: row.try_get("status")?,
        directory_path: row.try_get("directory_path")?,
        collection: row.try_get("collection")?,
        model_name: row.try_get("model_name")?,
        chunk_size: row.try_get("chunk_size")?,
        chunk_overlap: row.try_get("chunk_overlap")?,
        counters: JobCounters {
            total_files: row.try_get("total_files")?,
            processed_files: row.try_get("processed_files")?,
            failed_files: row.try_get("failed_files")?,
            skipped_files: row.try_get("skipped_files")?,
            deleted_files: row.try_get("deleted_files")?,
        },
        current_file: row.try_get("current_file")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        error: row.try_get("error")?,
        verification: row
            .try_get::<Option<String>, _>("verification")?
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .context("reading a job's recorded verification")?,
    })
}

/// Marks errors that mean the connection, not the statement, failed, so they are retried.
fn mark_connection_loss(error: anyhow::Error) -> anyhow::Error {
    let lost = error.chain().filter_map(|cause| cause.downcast_ref::<sqlx::Error>()).any(|e| match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // connection exceptions, admin shutdown, cannot connect now, serialization failure, deadlock
            code.starts_with("08") || ["57P01", "57P02", "57P03", "40001", "40P01"].contains(&code.as_ref())
        }),
        _ => false,
    });
    if lost {
        error.context(Transient("the catalog connection was lost".into()))
    } else {
        error
    }
}

/// One sentence for a failed connection, without the URL's password.
fn describe_connect_error(url: &str, error: &sqlx::Error) -> String {
    let shown = redact_url(url);
    if url.starts_with("sqlite:") {
        format!("cannot open the embedded catalog {shown}: {error}")
    } else {
        format!(
            "cannot connect to PostgreSQL at {shown} ({error}); check --database-url and that the server is running"
        )
    }
}

/// Query parameters whose values are secrets, compared without regard to case.
const SECRET_PARAMETERS: &[&str] = &["password", "pass", "pwd", "secret", "token", "api_key", "apikey", "key"];

/// `url` fit to print: a password in the user-info and the value of every query parameter
/// named like a secret become `***`, and any fragment is dropped.
///
/// The user-info is taken to run to the last `@`. When it holds a `/`, `?` or `#` (an
/// unencoded password, or an `@` further on), the URL cannot be split reliably: none of the
/// user-info is shown, and after a `?` the `@` may sit inside a secret parameter, so then only
/// the scheme is. Text without a `scheme://` is shown only when it holds none of `@`, `?` and
/// `#`; otherwise it is `<unparseable URL>`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return if url.contains(['@', '?', '#']) { "<unparseable URL>".into() } else { url.to_string() };
    };
    let (user_info, tail) = match rest.rsplit_once('@') {
        Some((user_info, tail)) => (Some(user_info), tail),
        None => (None, rest),
    };
    let without_fragment = tail.split('#').next().unwrap_or_default();
    let (address, query) = match without_fragment.split_once('?') {
        Some((address, query)) => (address, Some(query)),
        None => (without_fragment, None),
    };
    let user_info = match user_info {
        Some(info) if info.contains('?') => return format!("{scheme}://***"),
        Some(info) if info.contains(['/', '#']) => "***@".to_string(),
        Some(info) => match info.split_once(':') {
            Some((user, _password)) => format!("{user}:***@"),
            None => format!("{info}@"),
        },
        None => String::new(),
    };
    let query = query.map(|query| format!("?{}", redact_query(query))).unwrap_or_default();
    format!("{scheme}://{user_info}{address}{query}")
}

/// A URL's query with the values of secret-named parameters replaced by `***`.
fn redact_query(query: &str) -> String {
    let redact_pair = |pair: &str| {
        let name = url::form_urlencoded::parse(pair.as_bytes()).next().map(|(name, _)| name.to_ascii_lowercase());
        match (pair.split_once('='), name) {
            (Some((raw_name, _value)), Some(name)) if SECRET_PARAMETERS.contains(&name.as_str()) => {
                format!("{raw_name}=***")
            }
            _ => pair.to_string(),
        }
    };
    query.split('&').map(redact_pair).collect::<Vec<_>>().join("&")
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_in_user_info_are_hidden() {
        assert_eq!(redact_url("postgres://u:hunter2@127.0.0.1:5432/db"), "postgres://u:***@127.0.0.1:5432/db");
        assert_eq!(redact_url("postgres://u@127.0.0.1/db"), "postgres://u@127.0.0.1/db");
        assert_eq!(redact_url("http://localhost:6334"), "http://localhost:6334");
        assert_eq!(redact_url("sqlite:///data/catalog.sqlite?mode=rwc"), "sqlite:///data/catalog.sqlite?mode=rwc");
    }

    #[test]
    fn secret_query_parameters_are_hidden_whatever_their_case() {
        let url = "postgres://u@h/db?sslmode=require&Password=hunter1&PWD=hunter2&pass=hunter3&secret=hunter4\
                   &token=hunter5&api_key=hunter6&ApiKey=hunter7&key=hunter8&pass%77ord=hunter9";
        assert_eq!(
            redact_url(url),
            "postgres://u@h/db?sslmode=require&Password=***&PWD=***&pass=***&secret=***&token=***&api_key=***\
             &ApiKey=***&key=***&pass%77ord=***"
        );
    }

    #[test]
    fn unparseable_user_info_is_hidden_whole() {
        for url in [
            "postgres://u:hun#ter2@127.0.0.1:1/db",
            "postgres://u:12#hunter@127.0.0.1:1/db",
            "postgres://u:hun/ter2@127.0.0.1:1/db",
            "postgres://u:hun://ter2@127.0.0.1:1/db",
        ] {
            assert_eq!(redact_url(url), "postgres://***@127.0.0.1:1/db", "{url}");
        }
        for url in ["postgres://u:hun?ter2@127.0.0.1:1/db", "postgres://h/db?password=a@hunter"] {
            assert_eq!(redact_url(url), "postgres://***", "{url}: the @ may be inside a query value");
        }
        assert_eq!(redact_url("http://h:6334/#hunter"), "http://h:6334/", "fragments are dropped");
        assert_eq!(redact_url("u:hunter2@host/db"), "<unparseable URL>");
        assert_eq!(redact_url("localhost:6334"), "localhost:6334");
    }
}
