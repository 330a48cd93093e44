//! # Collection locks
//!
//! In: a collection (or a queued job) to take PostgreSQL's session advisory lock on. Out: a
//! [`CollectionLock`] holding it on a connection of its own, able to confirm it still holds
//! it, or [`LockLost`] when it does not. The embedded catalog takes no such lock: the data
//! directory's lock file covers it.

use std::fmt;

use anyhow::{Context, Result};

use super::{Catalog, CollectionCatalog};

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

impl CollectionCatalog {
    /// Takes PostgreSQL's session advisory lock for the collection, so that runs on other
    /// machines sharing this catalog wait their turn. The lock lives on its own connection
    /// and is released when the returned [`CollectionLock`] is dropped, or when the process
    /// dies. The embedded catalog returns `None`: the data directory's lock file covers it.
    pub async fn lock_collection(&self) -> Result<Option<CollectionLock>> {
        if !self.is_postgres {
            return Ok(None);
        }
        match self.advisory_lock(format!("ingest:{}", self.name), false).await? {
            Some(lock) => Ok(Some(lock)),
            None => Err(crate::lock::Busy(self.name.clone()).into()),
        }
    }

    /// The collection lock shared with other workers: workers run side by side, and a run
    /// that takes the collection whole waits for them. `None` while such a run (or a planner)
    /// holds it.
    pub async fn lock_collection_shared(&self) -> Result<Option<CollectionLock>> {
        self.require_postgres()?;
        self.advisory_lock(format!("ingest:{}", self.name), true).await
    }
}

impl Catalog {
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
}
