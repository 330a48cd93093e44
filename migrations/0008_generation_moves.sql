-- The one-time move, on a Qdrant server, of a generation stored under the collection's own
-- name into `<collection>-g<number>`, so that the name can become an alias. `step` is the
-- step it has reached ('copying', 'checking', 'dropping'), recorded before that step is
-- taken, at `step_at` (RFC 3339), so that the next command finishes a move a crash
-- interrupted. The row goes when the generation's `store_collection` names the target.
CREATE TABLE generation_moves (
    collection TEXT NOT NULL,
    number     BIGINT NOT NULL,
    target     TEXT NOT NULL,
    step       TEXT NOT NULL,
    step_at    TEXT NOT NULL,
    PRIMARY KEY (collection, number)
);
