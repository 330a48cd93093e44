-- Jobs and files: the source of truth for what is indexed.
-- Portable SQL: the same migration runs on PostgreSQL and on the embedded SQLite catalog.
-- Ids are UUID text; timestamps are RFC 3339 UTC text (which sorts by time).

CREATE TABLE jobs (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    status          TEXT NOT NULL,
    directory_path  TEXT NOT NULL,
    collection      TEXT NOT NULL,
    model_name      TEXT NOT NULL,
    vector_dim      BIGINT NOT NULL,
    chunk_size      BIGINT NOT NULL,
    chunk_overlap   BIGINT NOT NULL,
    batch_size      BIGINT NOT NULL,
    total_files     BIGINT NOT NULL DEFAULT 0,
    processed_files BIGINT NOT NULL DEFAULT 0,
    failed_files    BIGINT NOT NULL DEFAULT 0,
    skipped_files   BIGINT NOT NULL DEFAULT 0,
    deleted_files   BIGINT NOT NULL DEFAULT 0,
    current_file    TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    started_at      TEXT,
    finished_at     TEXT,
    error           TEXT
);

CREATE INDEX jobs_collection_created ON jobs (collection, created_at);

CREATE TABLE files (
    collection        TEXT NOT NULL,
    path              TEXT NOT NULL,
    doc_id            TEXT NOT NULL,
    size              BIGINT NOT NULL,
    modified_ns       BIGINT NOT NULL,
    extension         TEXT NOT NULL,
    content_hash      TEXT,
    logic_fingerprint TEXT,
    status            TEXT NOT NULL,
    error             TEXT,
    retry_count       BIGINT NOT NULL DEFAULT 0,
    chunks_created    BIGINT NOT NULL DEFAULT 0,
    vectors_created   BIGINT NOT NULL DEFAULT 0,
    -- The job that last touched the row.
    job_id            TEXT,
    -- The job whose parquet rows hold this file's live vectors.
    embedded_job_id   TEXT,
    updated_at        TEXT NOT NULL,
    PRIMARY KEY (collection, path)
);

CREATE INDEX files_collection_doc_id ON files (collection, doc_id);
CREATE INDEX files_collection_status ON files (collection, status);
