-- The work queue that `ingest worker` processes share through PostgreSQL: one row per file a
-- queued job must embed or delete, claimed under a lease. Portable SQL so that the embedded
-- catalog migrates alike, but only PostgreSQL catalogs ever hold rows here.
-- Times are milliseconds since the Unix epoch, compared with the database's own clock.

CREATE TABLE work_items (
    job_id      TEXT NOT NULL,
    -- The item's place in its job's queue, from 0; claims take the lowest first.
    seq         BIGINT NOT NULL,
    collection  TEXT NOT NULL,
    path        TEXT NOT NULL,
    -- The lower-case extension the walk judged the file by ('' for none or a sniffed one).
    extension   TEXT NOT NULL,
    -- 'embed' or 'delete'
    kind        TEXT NOT NULL,
    -- 'pending' → 'leased' → 'done', or 'parked' after too many lost leases
    state       TEXT NOT NULL,
    owner       TEXT,
    lease_until BIGINT,
    attempts    BIGINT NOT NULL DEFAULT 0,
    error       TEXT,
    PRIMARY KEY (job_id, seq)
);

CREATE INDEX work_items_job_state ON work_items (job_id, state, seq);
CREATE INDEX work_items_owner ON work_items (owner, state);

-- Workers, live or gone: each registers on start and heartbeats while it runs.
CREATE TABLE workers (
    id             TEXT PRIMARY KEY,
    collection     TEXT NOT NULL,
    host           TEXT NOT NULL,
    pid            BIGINT NOT NULL,
    started_at     TEXT NOT NULL,
    last_heartbeat BIGINT NOT NULL,
    items_done     BIGINT NOT NULL DEFAULT 0,
    stopped        BIGINT NOT NULL DEFAULT 0
);

-- A job planned into the queue (1) rather than run by one process (0).
ALTER TABLE jobs ADD COLUMN queued BIGINT NOT NULL DEFAULT 0;
