-- A job's end check, and the end of a job queued for workers, page through the file rows
-- the job touched (`job_id`) in path order: without this index each check would read every
-- row of the collection to find them, seconds at a million files for a nightly run that
-- touched ten.
CREATE INDEX files_collection_job_path ON files (collection, job_id, path);
