//! # Files
//!
//! In: the state changes of a collection's files from the job runner (`processing`,
//! `completed`, `failed`, `no_text`, `deleted`, back to `pending`), through the
//! [`CollectionCatalog`] bound to it; through a fenced one, only those whose leases it still
//! holds. Out: their `files` rows, and file rows read back as [`FileRow`]s or [`KnownFile`]s.

use anyhow::{Context, Result};
use sqlx::Row;

use super::{now, CollectionCatalog, Completion, FileFacts, FileRow, FileStatus, KnownFile};

/// How many of a collection's files a job embedded, and left failed and deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobFiles {
    pub embedded: i64,
    pub failed: i64,
    pub deleted: i64,
}

impl CollectionCatalog {
    /// The number of points the collection should hold: the sum of `vectors_created` over
    /// its completed files.
    pub async fn completed_vectors(&self) -> Result<u64> {
        Ok(self.completed_counts().await?.1)
    }

    /// Every file row of the collection, deleted ones included, by path.
    pub async fn files(&self) -> Result<Vec<FileRow>> {
        let mut files = self.files_in_any_order().await?;
        files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    /// [`Self::files`] in the order the database returns them: for a caller that looks rows
    /// up by path, to which sorting 100,000 paths would add a tenth of a no-change re-run.
    pub async fn files_in_any_order(&self) -> Result<Vec<FileRow>> {
        self.file_rows("", &[]).await
    }

    /// The collection's file rows that `filter` (SQL starting with `AND`, its values bound
    /// from `$2` on) lets through, in any order.
    pub(super) async fn file_rows(&self, filter: &str, values: &[String]) -> Result<Vec<FileRow>> {
        self.rows_as_json(FILE_FIELDS, filter, values).await
    }

    /// Hands every completed file to `each`, a page of at most `page` files at a time in
    /// `doc_id` order: the completed files without holding them all.
    pub async fn for_each_completed_file(&self, page: usize, mut each: impl FnMut(FileRow)) -> Result<()> {
        let filter = format!("AND status = $2 AND doc_id > $3 ORDER BY doc_id LIMIT {page}");
        let mut after = String::new();
        loop {
            let values = [FileStatus::Completed.as_str().to_string(), after];
            let mut files: Vec<FileRow> = self.rows_as_json(FILE_FIELDS, &filter, &values).await?;
            files.sort_unstable_by(|a, b| a.doc_id.cmp(&b.doc_id));
            let full = files.len() == page;
            let Some(last) = files.last() else { return Ok(()) };
            after = last.doc_id.clone();
            files.into_iter().for_each(&mut each);
            if !full {
                return Ok(());
            }
        }
    }

    /// The files job `job_id` embedded (`embedded_job_id`), and those it left failed and
    /// deleted, as the collection's file rows count them now.
    pub async fn job_file_counts(&self, job_id: &str) -> Result<JobFiles> {
        self.retrying(|| async {
            let row = sqlx::query(
                "SELECT CAST(COALESCE(SUM(CASE WHEN embedded_job_id = $2 THEN 1 ELSE 0 END), 0) AS BIGINT) AS embedded,
                        CAST(COALESCE(SUM(CASE WHEN job_id = $2 AND status = $3 THEN 1 ELSE 0 END), 0) AS BIGINT) AS failed,
                        CAST(COALESCE(SUM(CASE WHEN job_id = $2 AND status = $4 THEN 1 ELSE 0 END), 0) AS BIGINT) AS deleted
                 FROM files WHERE collection = $1",
            )
            .bind(&self.name)
            .bind(job_id)
            .bind(FileStatus::Failed.as_str())
            .bind(FileStatus::Deleted.as_str())
            .fetch_one(&self.pool)
            .await
            .context("counting a job's files")?;
            Ok(JobFiles { embedded: row.try_get("embedded")?, failed: row.try_get("failed")?, deleted: row.try_get("deleted")? })
        })
        .await
    }

    /// What a run needs of each file the collection holds (see [`KnownFile`]), in any order.
    pub async fn known_files(&self) -> Result<Vec<KnownFile>> {
        self.rows_as_json(KNOWN_FILE_FIELDS, "", &[]).await
    }

    /// The `fields` of the collection's file rows that `filter` lets through, decoded as `T`;
    /// `filter` may end in `ORDER BY` and `LIMIT`.
    pub(super) async fn rows_as_json<T: serde::de::DeserializeOwned>(
        &self,
        fields: &str,
        filter: &str,
        values: &[String],
    ) -> Result<Vec<T>> {
        // The rows travel as one JSON array of arrays built by the database: decoding them
        // one by one through the `Any` driver costs about 15 µs a row, which would make a
        // no-change re-run over 100,000 files wait on the catalog rather than the disk.
        let rows = format!("(SELECT * FROM files WHERE collection = $1 {filter}) AS files");
        let sql = if self.is_postgres {
            format!("SELECT COALESCE(json_agg(json_build_array({fields})), '[]')::text AS rows FROM {rows}")
        } else {
            format!("SELECT json_group_array(json_array({fields})) AS rows FROM {rows}")
        };
        let text: String = self
            .retrying(|| async {
                let mut query = sqlx::query(&sql).bind(&self.name);
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
    pub async fn mark_processing(&self, job_id: &str, files: &[FileFacts]) -> Result<Vec<String>> {
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
                    &self.name,
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
    pub async fn mark_completed(&self, job_id: &str, done: &[Completion]) -> Result<Vec<String>> {
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
                    .bind(&self.name)
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
                    &self.name,
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
    pub async fn refresh_stat(&self, path: &str, size: i64, modified_ns: i64) -> Result<()> {
        self.retrying(|| async {
            sqlx::query(
                "UPDATE files SET size = $1, modified_ns = $2, updated_at = $3 WHERE collection = $4 AND path = $5",
            )
            .bind(size)
            .bind(modified_ns)
            .bind(now())
            .bind(&self.name)
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
    pub async fn mark_deleted(&self, job_id: &str, paths: &[String]) -> Result<Vec<String>> {
        self.clear_files(Some(job_id), paths, FileStatus::Deleted).await
    }

    /// Returns files to `pending`, with no points of record, so that the next run embeds
    /// them again (used when their points and parquet rows are both gone).
    pub async fn mark_pending(&self, paths: &[String]) -> Result<()> {
        self.clear_files(None, paths, FileStatus::Pending).await.map(drop)
    }

    async fn clear_files(&self, job_id: Option<&str>, paths: &[String], status: FileStatus) -> Result<Vec<String>> {
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
                    .bind(&self.name)
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

/// The columns of [`FileRow`], in its field order.
const FILE_FIELDS: &str = "path, doc_id, size, modified_ns, extension, content_hash, logic_fingerprint, status,
    error, retry_count, chunks_created, vectors_created, job_id, embedded_job_id";
/// The columns of [`KnownFile`], in its field order.
pub(super) const KNOWN_FILE_FIELDS: &str =
    "path, doc_id, size, modified_ns, extension, content_hash, logic_fingerprint, status, error, retry_count,
    vectors_created";
