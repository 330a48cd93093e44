//! # Catalog
//!
//! In: job and file state changes from the job runner. Out: durable `jobs` and `files`
//! rows, the source of truth for what is indexed.
//!
//! One implementation serves both backends through sqlx's `Any` driver with portable SQL:
//! PostgreSQL (`--database-url postgres://...`) and the embedded default, a SQLite file
//! under the data directory. The schema comes from the versioned migrations in
//! `migrations/`, applied on connect.
//!
//! This module holds the [`Catalog`] handle itself (its pool, connection, migrations and
//! retries), and [`CollectionCatalog`], the same catalog bound to one collection
//! ([`Catalog::collection`]): what concerns one collection's files, queue and locks is asked
//! of that, and what concerns the whole catalog (jobs by id, claims, the embedding cache) of
//! either. Their methods and types are split by concern, and everything public is
//! re-exported here: `rows` (row types and statuses), `jobs`, `files`, `generations` (which
//! physical collection the collection's name serves), `locks` (the advisory collection
//! locks), `embedding_cache` (the cache's rows and vector codec), `queue` (PostgreSQL's work
//! queue).

use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};

use crate::retry::{OutageClock, RetryPolicy, Transient};

/// The schema migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// `as_str`, `Display` and `FromStr` for an enum recorded as text. Defined before the
/// modules that use it (`rows`, `queue`).
macro_rules! text_enum {
    ($ty:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),* }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
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

mod embedding_cache;
mod files;
mod generations;
mod jobs;
mod locks;
mod queue;
mod rows;

use crate::redact::redact_url;
pub use files::{JobFiles, KnownPage};
pub use generations::{
    generation_name, live_generation, GenerationMove, GenerationRecipe, GenerationRow, GenerationState, MoveStep,
    StoreNaming,
};
pub use locks::{CollectionLock, LockLost};
pub use queue::{Claim, Fence, ItemState, ParkedItem, QueueDepth, WorkItem, WorkKind, WorkerRow, WORK_CHANNEL};
pub use rows::{
    Completion, FileFacts, FileRow, FileStatus, JobCounters, JobRow, JobStatus, KnownFile, KnownStamp, NewJob,
    PreviousRow,
};

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The job and file store.
#[derive(Clone)]
pub struct Catalog {
    pool: AnyPool,
    is_postgres: bool,
    /// Retries calls through a lost PostgreSQL connection, up to the outage limit.
    outage_clock: Arc<OutageClock>,
    /// A worker's leases: with one, file rows are written only where it still holds their
    /// work items (see [`CollectionCatalog::fenced`]).
    fence: Option<Arc<Fence>>,
}

/// The catalog bound to one collection: its files, its queued work, its workers and its
/// locks. Cheap to clone, and a [`Catalog`] for everything that is not the collection's own.
#[derive(Clone)]
pub struct CollectionCatalog {
    catalog: Catalog,
    /// The collection's name, as its rows record it.
    name: String,
}

impl std::ops::Deref for CollectionCatalog {
    type Target = Catalog;

    fn deref(&self) -> &Catalog {
        &self.catalog
    }
}

/// Has PostgreSQL compare file paths by their bytes (collation `C`), as SQLite does and as
/// the walk yields them, whatever the database's own collation: a run reads the catalog's
/// rows alongside the walk in one pass (see `pipeline::known`). Done once, under a lock, on
/// the first connection to a catalog made before, which rebuilds the indexes on `path`.
async fn order_paths_by_bytes(pool: &AnyPool) -> Result<()> {
    let mut tx = pool.begin().await?;
    // A key of two halves: a space apart from the collection locks' single keys.
    sqlx::query("SELECT pg_advisory_xact_lock(4120517, 1)").execute(&mut *tx).await?;
    let collation: Option<String> = sqlx::query_scalar(
        "SELECT CAST(collation_name AS TEXT) FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = 'files' AND column_name = 'path'",
    )
    .fetch_one(&mut *tx)
    .await?;
    if collation.as_deref() != Some("C") {
        sqlx::query(r#"ALTER TABLE files ALTER COLUMN path TYPE TEXT COLLATE "C""#).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
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
        // No idle timeout and no lifetime: either starts sqlx's pool maintenance task, whose
        // sweep over idle connections can spin forever once a race in sqlx 0.8 wraps its count
        // of idle connections below zero (sqlx issue 3645), seen here as a run that finished
        // its job and never exited. A connection the server dropped is found by the ping
        // before each acquire, and replaced.
        let pool = AnyPoolOptions::new()
            .max_connections(if is_sqlite { 1 } else { 4 })
            .acquire_timeout(std::time::Duration::from_secs(30))
            .idle_timeout(None)
            .max_lifetime(None)
            .connect(url)
            .await
            .map_err(|e| anyhow!("{}", describe_connect_error(url, &e)))?;
        if is_sqlite {
            for pragma in ["PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL", "PRAGMA busy_timeout = 10000"] {
                sqlx::query(pragma).execute(&pool).await.with_context(|| format!("setting {pragma}"))?;
            }
        }
        MIGRATOR.run(&pool).await.context("applying catalog migrations")?;
        if !is_sqlite {
            order_paths_by_bytes(&pool).await.context("ordering the catalog's paths by their bytes")?;
        }
        let service = if is_sqlite { "the embedded catalog" } else { "PostgreSQL" };
        let outage_clock = Arc::new(OutageClock::new(service, RetryPolicy::default()));
        Ok(Self { pool, is_postgres: !is_sqlite, outage_clock, fence: None })
    }

    /// The catalog bound to the collection `name`.
    pub fn collection(&self, name: &str) -> CollectionCatalog {
        CollectionCatalog { catalog: self.clone(), name: name.to_string() }
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
