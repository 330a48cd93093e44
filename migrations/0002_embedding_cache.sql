-- Vectors by chunk content and model: a renamed, copied or partly edited file reuses the
-- vectors of chunks the model has already embedded. Portable: SQLite stores the BYTEA
-- column's values as blobs.

CREATE TABLE embedding_cache (
    model TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    vector BYTEA NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (model, content_hash)
);
