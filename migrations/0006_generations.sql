-- Generations: the collection name users search is an alias for one generation, a physical
-- collection with its own catalog rows and parquet copy, built by one model and one chunking.
-- `name` is what the generation's `files` and `jobs` rows and its parquet copy are kept under
-- (the collection's own name for generation 1, so that collections from before generations
-- keep their rows); `store_collection` is its collection in the vector store.
-- `state`: 'building' (never live yet), 'live' (the one the alias names), 'previous'.
CREATE TABLE generations (
    collection       TEXT NOT NULL,
    number           BIGINT NOT NULL,
    name             TEXT NOT NULL,
    store_collection TEXT NOT NULL,
    model_id         TEXT NOT NULL,
    vector_dim       BIGINT NOT NULL,
    chunk_size       BIGINT NOT NULL,
    chunk_overlap    BIGINT NOT NULL,
    state            TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    -- When it last went live; NULL while building.
    live_at          TEXT,
    PRIMARY KEY (collection, number)
);
