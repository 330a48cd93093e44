-- The result of the check a job runs on what it touched, as JSON text:
-- {"files": N, "agree": true|false, "seconds": S, "disagreements": [...]}.
-- NULL for jobs that changed nothing, or that did not finish.
ALTER TABLE jobs ADD COLUMN verification TEXT;
