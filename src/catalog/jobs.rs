//! # Jobs
//!
//! In: a job's settings, status changes, progress counters and end check from the job
//! runner. Out: its `jobs` row, and job rows read back as [`JobRow`]s: by id, the latest of a
//! collection (through its [`CollectionCatalog`]), or the latest of all.

use anyhow::{Context, Result};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{now, Catalog, CollectionCatalog, JobCounters, JobRow, JobStatus, NewJob};

impl Catalog {
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

    /// The most recent jobs of every collection, latest first.
    pub async fn all_jobs(&self, limit: i64) -> Result<Vec<JobRow>> {
        self.recent_jobs(None, limit).await
    }

    /// The most recent jobs of `collection` (of every collection with `None`), latest first.
    pub(super) async fn recent_jobs(&self, collection: Option<&str>, limit: i64) -> Result<Vec<JobRow>> {
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
}

impl CollectionCatalog {
    /// The collection's most recent jobs, latest first.
    pub async fn jobs(&self, limit: i64) -> Result<Vec<JobRow>> {
        self.recent_jobs(Some(&self.name), limit).await
    }
}

const JOB_COLUMNS: &str =
    "SELECT id, name, status, directory_path, collection, model_name, vector_dim, chunk_size, chunk_overlap,
    total_files, processed_files, failed_files, skipped_files, deleted_files, current_file, created_at, started_at,
    finished_at, error, verification FROM jobs";

fn job_row(row: &AnyRow) -> Result<JobRow> {
    Ok(JobRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        status: row.try_get::<String, _>("status")?.parse()?,
        directory_path: row.try_get("directory_path")?,
        collection: row.try_get("collection")?,
        model_name: row.try_get("model_name")?,
        vector_dim: row.try_get("vector_dim")?,
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
