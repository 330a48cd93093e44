-- A job's end check, and the end of a job queued for workers, page through the file rows
-- the job touched (`job_id`) in path order: without this index each page would read every
-- row of the collection, and a nightly run that touched ten files of a million would read
-- them all two hundred times over.
CREATE INDEX files_collection_job_path ON files (collection, job_id, path);
