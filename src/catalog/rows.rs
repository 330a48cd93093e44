//! # Catalog rows
//!
//! In: the text of `jobs` and `files` rows as the catalog reads them, and what the job runner
//! knows of a job or a file before writing it. Out: the typed values passed between the
//! catalog and the rest of the program: statuses, job settings and counters, job and file
//! rows, the facts of a file about to be written, and a file whose points are acknowledged.

use anyhow::{bail, Result};

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

text_enum!(JobStatus { Created => "created", Scanning => "scanning", Processing => "processing",
    Completed => "completed", Failed => "failed", Cancelled => "cancelled" });

/// Serialized as recorded.
impl serde::Serialize for JobStatus {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Compares with a status as recorded.
impl PartialEq<&str> for JobStatus {
    fn eq(&self, text: &&str) -> bool {
        self.as_str() == *text
    }
}

impl FileStatus {
    /// A status as a row records it; an unknown one reads as `pending`, so that the file is
    /// looked at again.
    pub fn recorded(text: &str) -> Self {
        text.parse().unwrap_or(Self::Pending)
    }
}

text_enum!(FileStatus { Pending => "pending", Processing => "processing", Completed => "completed",
    Failed => "failed", NoText => "no_text", Deleted => "deleted" });

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
    pub status: JobStatus,
    pub directory_path: String,
    pub collection: String,
    pub model_name: String,
    pub vector_dim: i64,
    pub chunk_size: i64,
    pub chunk_overlap: i64,
    pub counters: JobCounters,
    pub current_file: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub error: Option<String>,
    /// The job's check of what it touched, as recorded JSON (see
    /// [`Catalog::record_verification`](super::Catalog::record_verification)).
    pub verification: Option<serde_json::Value>,
}

/// A file row. Its fields are in `FILE_FIELDS` order, which is also the order of the
/// arrays [`Catalog::files`](super::Catalog::files) reads.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileRow {
    pub path: String,
    pub doc_id: String,
    pub size: i64,
    pub modified_ns: i64,
    pub extension: String,
    pub content_hash: Option<String>,
    pub logic_fingerprint: Option<String>,
    /// The status as recorded, shown as is by `ingest status --json`; [`FileRow::status`]
    /// reads it as a [`FileStatus`].
    pub status: String,
    pub error: Option<String>,
    pub retry_count: i64,
    pub chunks_created: i64,
    pub vectors_created: i64,
    pub job_id: Option<String>,
    pub embedded_job_id: Option<String>,
}

impl FileRow {
    /// The file's status, read as [`FileStatus::recorded`] reads it.
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

/// What a run's change detection reads of every one of a collection's file rows: a
/// [`KnownFile`] without the doc id and the extension, with the content hash cut to its
/// first 16 hex digits, borrowed from the page of rows the catalog read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownStamp<'a> {
    pub path: &'a str,
    pub size: i64,
    pub modified_ns: i64,
    /// The content hash's first 16 hex digits.
    pub content_prefix: Option<&'a str>,
    pub logic_fingerprint: Option<&'a str>,
    pub status: FileStatus,
    pub error: Option<&'a str>,
    pub retry_count: i64,
    pub vectors_created: i64,
}

/// What the stages after change detection need of a changed file's row: whether the file
/// was indexed before, and what of its points the store may still hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreviousRow {
    pub status: FileStatus,
    pub vectors_created: i64,
}

impl PreviousRow {
    /// Whether the store may hold points of this file: it has vectors of record, or it did
    /// not complete (a run may have stopped between its upsert and its completion).
    pub fn may_have_points(&self) -> bool {
        self.vectors_created > 0 || self.status != FileStatus::Completed
    }
}

impl KnownFile {
    /// The row as a run's change detection reads it.
    pub fn stamp(&self) -> KnownStamp<'_> {
        KnownStamp {
            path: &self.path,
            size: self.size,
            modified_ns: self.modified_ns,
            content_prefix: self.content_hash.as_deref().map(|hash| hash.get(..16).unwrap_or(hash)),
            logic_fingerprint: self.logic_fingerprint.as_deref(),
            status: self.status,
            error: self.error.as_deref(),
            retry_count: self.retry_count,
            vectors_created: self.vectors_created,
        }
    }
}

impl From<&KnownFile> for PreviousRow {
    fn from(file: &KnownFile) -> Self {
        PreviousRow { status: file.status, vectors_created: file.vectors_created }
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
