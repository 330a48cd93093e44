//! # Files
//!
//! In: the state changes of a collection's files from the job runner (`processing`,
//! `completed`, `failed`, `no_text`, `deleted`, back to `pending`), through the
//! [`CollectionCatalog`] bound to it; through a fenced one, only those whose leases it still
//! holds. Out: their `files` rows, and file rows read back as [`FileRow`]s or [`KnownFile`]s.

use anyhow::{Context, Result};
use sqlx::Row;

use super::{now, CollectionCatalog, Completion, FileFacts, FileRow, FileStatus, KnownFile, KnownStamp};

/// How many of a collection's files a job embedded, and left failed and deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobFiles {
    pub embedded: i64,
    pub failed: i64,
    pub deleted: i64,
}

impl CollectionCatalog {
    /// The number of points the collection should hold: the sum of `vectors_created` over
    /// its completed files.
    pub async fn completed_vectors(&self) -> Result<u64> {
        Ok(self.completed_counts().await?.1)
    }

    /// Every file row of the collection, deleted ones included, by path.
    pub async fn files(&self) -> Result<Vec<FileRow>> {
        let mut files = self.files_in_any_order().await?;
        files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    /// [`Self::files`] in the order the database returns them: for a caller that looks rows
    /// up by path, to which sorting 100,000 paths would add a tenth of a no-change re-run.
    pub async fn files_in_any_order(&self) -> Result<Vec<FileRow>> {
        self.file_rows("", &[]).await
    }

    /// The collection's file rows that `filter` (SQL starting with `AND`, its values bound
    /// from `$2` on) lets through, in any order.
    pub(super) async fn file_rows(&self, filter: &str, values: &[String]) -> Result<Vec<FileRow>> {
        self.rows_as_json(FILE_FIELDS, filter, values).await
    }

    /// Hands every completed file to `each`, a page of `FILE_ROWS_PER_PAGE` (5,000) files at a
    /// time in `path` order: the completed files without holding them all.
    pub async fn for_each_completed_file(&self, mut each: impl FnMut(FileRow)) -> Result<()> {
        let completed = [FileStatus::Completed.as_str().to_string()];
        let each_page = async |rows: Vec<FileRow>| {
            rows.into_iter().for_each(&mut each);
            Ok(())
        };
        self.for_each_page(FILE_FIELDS, "AND status = $2", &completed, each_page).await
    }

    /// What a run's change detection needs of the file rows (see [`KnownStamp`]), deleted
    /// ones included: the first `FILE_ROWS_PER_PAGE` (5,000) whose paths follow `after` in
    /// byte order. The rows travel as [`KNOWN_STAMPS`] writes them, not as JSON: building
    /// the JSON took PostgreSQL about three times as long as reading the rows, and this is the
    /// one read whose length follows the whole collection on every run.
    pub async fn known_files_after(&self, after: &str) -> Result<KnownPage> {
        let (text, next_after) = self.page_after(KNOWN_STAMPS, "", &[], after).await?;
        Ok(KnownPage { text, next_after })
    }

    /// Hands the rows of the files job `job_id` was the last to touch and left completed,
    /// failed, without text or deleted to `each_page`, `FILE_ROWS_PER_PAGE` (5,000) rows at a
    /// time in `path` order: what the job did, without holding it all.
    pub async fn for_each_page_of_job(
        &self,
        job_id: &str,
        each_page: impl AsyncFnMut(Vec<FileRow>) -> Result<()>,
    ) -> Result<()> {
        let ended = [FileStatus::Completed, FileStatus::Failed, FileStatus::NoText, FileStatus::Deleted];
        let values: Vec<String> =
            std::iter::once(job_id.to_string()).chain(ended.iter().map(|s| s.as_str().to_string())).collect();
        let filter = "AND job_id = $2 AND status IN ($3, $4, $5, $6)";
        self.for_each_page(FILE_FIELDS, filter, &values, each_page).await
    }

    /// Hands the `fields` of the file rows `filter` lets through (its values bound from `$2`
    /// on) to `each_page`, decoded as `T`, a page of at most `FILE_ROWS_PER_PAGE` (5,000) rows
    /// at a time (see [`Self::for_each_page_text`]).
    async fn for_each_page<T: serde::de::DeserializeOwned>(
        &self,
        fields: &str,
        filter: &str,
        values: &[String],
        mut each_page: impl AsyncFnMut(Vec<T>) -> Result<()>,
    ) -> Result<()> {
        let rows = self.json_rows(fields);
        let each_text = async |text: String| each_page(decode_json_rows(&text)?).await;
        self.for_each_page_text(&rows, filter, values, each_text).await
    }

    /// Hands the file rows `filter` lets through (its values bound from `$2` on), as the
    /// aggregate `rows` makes one text of them, to `each_page`, a page of at most
    /// `FILE_ROWS_PER_PAGE` (5,000) rows at a time, so that no more than a page is ever held.
    /// Pages follow the primary key, `path` in byte order (see `Catalog::connect`; the page's
    /// last path comes from the database too): rows lie on disk about in the order the walk first
    /// recorded them, so a page is read nearly in sequence, where pages in `doc_id` order
    /// would read rows scattered over the table.
    async fn for_each_page_text(
        &self,
        rows: &str,
        filter: &str,
        values: &[String],
        mut each_page: impl AsyncFnMut(String) -> Result<()>,
    ) -> Result<()> {
        let mut after = String::new();
        loop {
            let (text, next_after) = self.page_after(rows, filter, values, &after).await?;
            each_page(text).await?;
            match next_after {
                Some(next) => after = next,
                None => return Ok(()),
            }
        }
    }

    /// The first `FILE_ROWS_PER_PAGE` (5,000) file rows that `filter` lets through (its
    /// values bound from `$2` on) whose paths follow `after`, as the aggregate `rows` makes
    /// one text of them, and where the next page starts (`None` after the last page).
    async fn page_after(
        &self,
        rows: &str,
        filter: &str,
        values: &[String],
        after: &str,
    ) -> Result<(String, Option<String>)> {
        let filter = format!("{filter} AND path > ${} ORDER BY path LIMIT {FILE_ROWS_PER_PAGE}", values.len() + 2);
        let values: Vec<String> = values.iter().cloned().chain([after.to_string()]).collect();
        let page = self.page_text(rows, &filter, &values).await?;
        let full = page.rows == FILE_ROWS_PER_PAGE as i64;
        Ok((page.text, page.last_path.filter(|_| full)))
    }

    /// Has PostgreSQL learn the file rows' statistics again, after a job that wrote many of
    /// them: without, its planner may take a page of rows in `path` order (as
    /// [`Self::for_each_known_file`] reads them) for a few hundred rows and sort the whole
    /// collection's for each page, until autovacuum comes by. SQLite keeps to the index.
    pub async fn refresh_statistics(&self) -> Result<()> {
        if !self.is_postgres {
            return Ok(());
        }
        self.retrying(|| async {
            sqlx::query("ANALYZE files").execute(&self.pool).await.context("refreshing the catalog's statistics")?;
            Ok(())
        })
        .await
    }

    /// What a run needs of the rows whose `column` holds one of `values`, at most
    /// [`ROWS_PER_STATEMENT`] values a query.
    pub(super) async fn known_files_where(&self, column: &str, values: &[String]) -> Result<Vec<KnownFile>> {
        let mut found = Vec::with_capacity(values.len());
        for group in values.chunks(ROWS_PER_STATEMENT) {
            let placeholders: Vec<String> = (0..group.len()).map(|i| format!("${}", i + 2)).collect();
            let filter = format!("AND {column} IN ({})", placeholders.join(", "));
            found.extend(self.rows_as_json::<KnownFile>(KNOWN_FILE_FIELDS, &filter, group).await?);
        }
        Ok(found)
    }

    /// The files job `job_id` embedded (`embedded_job_id`), and those it left failed and
    /// deleted, as the collection's file rows count them now.
    pub async fn job_file_counts(&self, job_id: &str) -> Result<JobFiles> {
        self.retrying(|| async {
            let row = sqlx::query(
                "SELECT CAST(COALESCE(SUM(CASE WHEN embedded_job_id = $2 THEN 1 ELSE 0 END), 0) AS BIGINT) AS embedded,
                        CAST(COALESCE(SUM(CASE WHEN job_id = $2 AND status = $3 THEN 1 ELSE 0 END), 0) AS BIGINT) AS failed,
                        CAST(COALESCE(SUM(CASE WHEN job_id = $2 AND status = $4 THEN 1 ELSE 0 END), 0) AS BIGINT) AS deleted
                 FROM files WHERE collection = $1",
            )
            .bind(&self.name)
            .bind(job_id)
            .bind(FileStatus::Failed.as_str())
            .bind(FileStatus::Deleted.as_str())
            .fetch_one(&self.pool)
            .await
            .context("counting a job's files")?;
            Ok(JobFiles { embedded: row.try_get("embedded")?, failed: row.try_get("failed")?, deleted: row.try_get("deleted")? })
        })
        .await
    }

    /// The `fields` of the collection's file rows that `filter` lets through, decoded as `T`;
    /// `filter` may end in `ORDER BY` and `LIMIT`.
    pub(super) async fn rows_as_json<T: serde::de::DeserializeOwned>(
        &self,
        fields: &str,
        filter: &str,
        values: &[String],
    ) -> Result<Vec<T>> {
        Ok(self.page_as_json(fields, filter, values).await?.0)
    }

    /// [`Self::rows_as_json`], and the greatest path among the rows as the database orders
    /// paths (`None` for no rows): where the next page starts.
    async fn page_as_json<T: serde::de::DeserializeOwned>(
        &self,
        fields: &str,
        filter: &str,
        values: &[String],
    ) -> Result<(Vec<T>, Option<String>)> {
        let page = self.page_text(&self.json_rows(fields), filter, values).await?;
        Ok((decode_json_rows(&page.text)?, page.last_path))
    }

    /// The aggregate that makes one JSON array of arrays of the rows' `fields`: decoding
    /// rows one by one through the `Any` driver costs about 15 µs a row, which would make a
    /// no-change re-run over 100,000 files wait on the catalog rather than the disk.
    fn json_rows(&self, fields: &str) -> String {
        match self.is_postgres {
            true => format!("COALESCE(json_agg(json_build_array({fields})), '[]')::text"),
            false => format!("json_group_array(json_array({fields}))"),
        }
    }

    /// The collection's file rows that `filter` lets through, as the aggregate `rows` makes
    /// one text of them, with their number and greatest path.
    async fn page_text(&self, rows: &str, filter: &str, values: &[String]) -> Result<Page> {
        let sql = format!(
            "SELECT {rows} AS rows, CAST(COUNT(*) AS BIGINT) AS count, MAX(path) AS last_path
             FROM (SELECT * FROM files WHERE collection = $1 {filter}) AS files"
        );
        self.retrying(|| async {
            let mut query = sqlx::query(&sql).bind(&self.name);
            for value in values {
                query = query.bind(value);
            }
            let row = query.fetch_one(&self.pool).await.context("reading file rows")?;
            Ok(Page { text: row.try_get("rows")?, rows: row.try_get("count")?, last_path: row.try_get("last_path")? })
        })
        .await
    }

    /// Records files as `processing` with their new content hash and fingerprint (step 1 of
    /// the write protocol), in one transaction. Returns the paths a fenced catalog did not
    /// write, their leases being lost.
    pub async fn mark_processing(&self, job_id: &str, files: &[FileFacts]) -> Result<Vec<String>> {
        self.retrying(|| async {
            let mut tx = self.pool.begin().await.context("starting a catalog transaction")?;
            let at = now();
            let (held, lost) = self.held(&mut tx, files, |file| &file.path, false).await?;
            for group in held.chunks(ROWS_PER_STATEMENT) {
                // $1..$4 are shared; each file's facts take 7 more.
                let rows = value_rows(group.len(), 7, |at| {
                    format!(
                        "($1, ${at}, ${}, ${}, ${}, ${}, ${}, ${}, $2, $3, $4)",
                        at + 1,
                        at + 2,
                        at + 3,
                        at + 4,
                        at + 5,
                        at + 6
                    )
                });
                let sql = format!(
                    "INSERT INTO files (collection, path, doc_id, size, modified_ns, extension, content_hash,
                        logic_fingerprint, status, job_id, updated_at)
                     VALUES {rows}
                     ON CONFLICT (collection, path) DO UPDATE SET doc_id = excluded.doc_id, size = excluded.size,
                        modified_ns = excluded.modified_ns, extension = excluded.extension,
                        content_hash = excluded.content_hash, logic_fingerprint = excluded.logic_fingerprint,
                        status = excluded.status, job_id = excluded.job_id, updated_at = excluded.updated_at"
                );
                let query =
                    sqlx::query(&sql).bind(&self.name).bind(FileStatus::Processing.as_str()).bind(job_id).bind(&at);
                let query = group.iter().fold(query, |query, file| bind_file_facts(query, file));
                query.execute(&mut *tx).await.context("marking files processing")?;
            }
            tx.commit().await.context("committing processing marks")?;
            Ok(lost)
        })
        .await
    }

    /// Marks files `completed` once their points are acknowledged (the commit step).
    /// Returns the paths a fenced catalog did not write, their leases being lost.
    pub async fn mark_completed(&self, job_id: &str, done: &[Completion]) -> Result<Vec<String>> {
        let lost = self
            .retrying(|| async {
                let mut tx = self.pool.begin().await.context("starting a catalog transaction")?;
                let at = now();
                let (held, lost) = self.held(&mut tx, done, |file| &file.path, true).await?;
                for group in held.chunks(ROWS_PER_STATEMENT) {
                    // $1..$4 are shared; each file takes 3 more.
                    let rows = value_rows(group.len(), 3, |at| format!("(${at}, ${}, ${})", at + 1, at + 2));
                    let sql = format!(
                        "UPDATE files SET status = $1, error = NULL, retry_count = 0, chunks_created = done.chunks,
                            vectors_created = done.vectors, job_id = $2, embedded_job_id = $2, updated_at = $3
                         FROM (SELECT column1 AS path, column2 AS chunks, column3 AS vectors FROM (VALUES {rows}) AS rows)
                            AS done
                         WHERE files.collection = $4 AND files.path = done.path"
                    );
                    let query = sqlx::query(&sql).bind(FileStatus::Completed.as_str()).bind(job_id).bind(&at).bind(&self.name);
                    let query =
                        group.iter().fold(query, |query, file| query.bind(&file.path).bind(file.chunks).bind(file.vectors));
                    query.execute(&mut *tx).await.context("marking files completed")?;
                }
                tx.commit().await.context("committing completions")?;
                Ok(lost)
            })
            .await?;
        self.forget_claims(&done.iter().map(|f| f.path.clone()).collect::<Vec<_>>());
        Ok(lost)
    }

    /// Of `files`, those whose leases a fenced catalog still holds (all, unfenced), checked
    /// inside `tx` (`finish`: as [`Self::holds`] takes it); and the paths of the others.
    async fn held<'f, T>(
        &self,
        tx: &mut sqlx::AnyConnection,
        files: &'f [T],
        path_of: impl Fn(&T) -> &String,
        finish: bool,
    ) -> Result<(Vec<&'f T>, Vec<String>)> {
        let (mut held, mut lost) = (Vec::with_capacity(files.len()), Vec::new());
        for file in files {
            match self.holds(tx, path_of(file), finish).await? {
                true => held.push(file),
                false => lost.push(path_of(file).clone()),
            }
        }
        Ok((held, lost))
    }

    /// Records a file that has no points, with the reason: `failed` (then `retry_count`
    /// counts consecutive failures) or `no_text`. Its points (if any) must already have been
    /// removed.
    pub async fn record_without_points(
        &self,
        job_id: &str,
        file: &FileFacts,
        status: FileStatus,
        reason: &str,
    ) -> Result<bool> {
        let counts_as_retry = (status == FileStatus::Failed) as i64;
        let held = self
            .retrying(|| async {
                let mut tx = self.pool.begin().await.context("starting a catalog transaction")?;
                if !self.holds(&mut tx, &file.path, true).await? {
                    return Ok(false);
                }
                bind_facts(
                    sqlx::query(
                        "INSERT INTO files (collection, path, doc_id, size, modified_ns, extension, content_hash,
                    logic_fingerprint, status, error, retry_count, job_id, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $13, $11, $12)
                 ON CONFLICT (collection, path) DO UPDATE SET size = excluded.size, modified_ns = excluded.modified_ns,
                    content_hash = excluded.content_hash, logic_fingerprint = excluded.logic_fingerprint,
                    status = excluded.status, error = excluded.error,
                    retry_count = (files.retry_count + 1) * excluded.retry_count,
                    chunks_created = 0, vectors_created = 0, embedded_job_id = NULL,
                    job_id = excluded.job_id, updated_at = excluded.updated_at",
                    ),
                    &self.name,
                    file,
                )
                .bind(status.as_str())
                .bind(reason)
                .bind(job_id)
                .bind(now())
                .bind(counts_as_retry)
                .execute(&mut *tx)
                .await
                .with_context(|| format!("marking {} {status}", file.path))?;
                tx.commit().await.context("committing a file's state")?;
                Ok(true)
            })
            .await?;
        self.forget_claims(std::slice::from_ref(&file.path));
        Ok(held)
    }

    /// Refreshes size and mtime of a file whose content turned out unchanged.
    pub async fn refresh_stat(&self, path: &str, size: i64, modified_ns: i64) -> Result<()> {
        self.retrying(|| async {
            sqlx::query(
                "UPDATE files SET size = $1, modified_ns = $2, updated_at = $3 WHERE collection = $4 AND path = $5",
            )
            .bind(size)
            .bind(modified_ns)
            .bind(now())
            .bind(&self.name)
            .bind(path)
            .execute(&self.pool)
            .await
            .with_context(|| format!("refreshing {path}"))?;
            Ok(())
        })
        .await
    }

    /// Marks files `deleted` after their points are gone. Returns the paths a fenced catalog
    /// did not write, their leases being lost.
    pub async fn mark_deleted(&self, job_id: &str, paths: &[String]) -> Result<Vec<String>> {
        self.clear_files(Some(job_id), paths, FileStatus::Deleted).await
    }

    /// Returns files to `pending`, with no points of record, so that the next run embeds
    /// them again (used when their points and parquet rows are both gone).
    pub async fn mark_pending(&self, paths: &[String]) -> Result<()> {
        self.clear_files(None, paths, FileStatus::Pending).await.map(drop)
    }

    async fn clear_files(&self, job_id: Option<&str>, paths: &[String], status: FileStatus) -> Result<Vec<String>> {
        let lost = self
            .retrying(|| async {
                let mut tx = self.pool.begin().await.context("starting a catalog transaction")?;
                let at = now();
                let mut lost = Vec::new();
                for path in paths {
                    if !self.holds(&mut tx, path, true).await? {
                        lost.push(path.clone());
                        continue;
                    }
                    sqlx::query(
                        "UPDATE files SET status = $1, chunks_created = 0, vectors_created = 0, embedded_job_id = NULL,
                    error = NULL, job_id = COALESCE($2, job_id), updated_at = $3 WHERE collection = $4 AND path = $5",
                    )
                    .bind(status.as_str())
                    .bind(job_id)
                    .bind(&at)
                    .bind(&self.name)
                    .bind(path)
                    .execute(&mut *tx)
                    .await
                    .with_context(|| format!("marking {path} {status}"))?;
                }
                tx.commit().await.context("committing file states")?;
                Ok(lost)
            })
            .await?;
        self.forget_claims(paths);
        Ok(lost)
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Files one statement names at most: writes of 500 files of 7 values each, and reads of 500
/// paths or doc ids, stay far within SQLite's and PostgreSQL's limits on bound values.
const ROWS_PER_STATEMENT: usize = 500;

/// File rows read at a time by the readers that page through many
/// ([`CollectionCatalog::known_files_after`] and its kin): a page is a few MiB at most.
const FILE_ROWS_PER_PAGE: usize = 5_000;

/// `rows` rows of a multi-row statement, each of `width` values bound from `$5` on; `row`
/// writes one, given the number of its first value.
fn value_rows(rows: usize, width: usize, row: impl Fn(usize) -> String) -> String {
    (0..rows).map(|n| row(5 + n * width)).collect::<Vec<_>>().join(", ")
}

/// Binds `$1..$8` of a files upsert: the collection and the file's facts.
fn bind_facts<'q>(query: AnyQuery<'q>, collection: &'q str, file: &'q FileFacts) -> AnyQuery<'q> {
    bind_file_facts(query.bind(collection), file)
}

/// Binds the file's facts, from its path to its logic fingerprint: seven values.
fn bind_file_facts<'q>(query: AnyQuery<'q>, file: &'q FileFacts) -> AnyQuery<'q> {
    query
        .bind(&file.path)
        .bind(&file.doc_id)
        .bind(file.size)
        .bind(file.modified_ns)
        .bind(&file.extension)
        .bind(&file.content_hash)
        .bind(&file.logic_fingerprint)
}

/// The columns of [`FileRow`], in its field order.
const FILE_FIELDS: &str = "path, doc_id, size, modified_ns, extension, content_hash, logic_fingerprint, status,
    error, retry_count, chunks_created, vectors_created, job_id, embedded_job_id";
/// A page of file rows as the database sends it: one text of them all.
struct Page {
    text: String,
    rows: i64,
    last_path: Option<String>,
}

fn decode_json_rows<T: serde::de::DeserializeOwned>(text: &str) -> Result<Vec<T>> {
    serde_json::from_str(text).context("decoding file rows")
}

/// A page of what a run's change detection reads of the file rows, as the catalog sent it
/// (see [`CollectionCatalog::known_files_after`]).
pub struct KnownPage {
    text: String,
    /// Where the next page starts: the page's last path, unless it was the last page.
    pub next_after: Option<String>,
}

impl KnownPage {
    /// Hands each row of the page to `each`, borrowed from the page, in no given order.
    pub fn for_each(&self, mut each: impl FnMut(KnownStamp<'_>)) -> Result<()> {
        read_known_stamps(&self.text, &mut each)
    }
}

/// The aggregate that makes one text of the rows' [`KnownStamp`]s, in PostgreSQL and SQLite
/// alike: for each row, `size,modified_ns,hash,status,retry_count,vectors_created,`
/// then the lengths in bytes of the logic fingerprint, the error and the path (-1 for none),
/// a colon, and those three texts one after the other. `hash` is the content hash's first
/// 16 digits, empty for none. Read by [`read_known_stamps`].
const KNOWN_STAMPS: &str = "COALESCE(string_agg(size || ',' || modified_ns || ','
    || COALESCE(substr(content_hash, 1, 16), '') || ',' || status || ',' || retry_count || ',' || vectors_created
    || ',' || COALESCE(octet_length(logic_fingerprint), -1) || ',' || COALESCE(octet_length(error), -1)
    || ',' || octet_length(path) || ':' || COALESCE(logic_fingerprint, '') || COALESCE(error, '') || path, ''), '')";

/// Hands each row of a page that [`KNOWN_STAMPS`] wrote to `each`.
fn read_known_stamps<'a>(page: &'a str, each: &mut impl FnMut(KnownStamp<'a>)) -> Result<()> {
    let mut rest = page;
    while !rest.is_empty() {
        let (head, mut texts) = rest.split_once(':').context("a file row without its lengths")?;
        let broken = || format!("a file row that does not read as a known file: {head:?}");
        let mut fields = head.split(',');
        let mut field = || fields.next().with_context(broken);
        let (size, modified_ns, content_prefix, status, retry_count, vectors_created) =
            (field()?, field()?, field()?, field()?, field()?, field()?);
        let mut text = |length: &str| -> Result<Option<&'a str>> {
            let Ok(length) = usize::try_from(length.parse::<i64>().with_context(broken)?) else { return Ok(None) };
            let (text, after) = texts.split_at_checked(length).with_context(broken)?;
            texts = after;
            Ok(Some(text))
        };
        let (logic_fingerprint, error) = (text(field()?)?, text(field()?)?);
        let path = text(field()?)?.with_context(broken)?;
        let number = |text: &str| text.parse::<i64>().with_context(broken);
        each(KnownStamp {
            path,
            size: number(size)?,
            modified_ns: number(modified_ns)?,
            content_prefix: Some(content_prefix).filter(|prefix| !prefix.is_empty()),
            logic_fingerprint,
            status: FileStatus::recorded(status),
            error,
            retry_count: number(retry_count)?,
            vectors_created: number(vectors_created)?,
        });
        rest = texts;
    }
    Ok(())
}

/// The columns of [`KnownFile`], in its field order.
const KNOWN_FILE_FIELDS: &str =
    "path, doc_id, size, modified_ns, extension, content_hash, logic_fingerprint, status, error, retry_count,
    vectors_created";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_stamps_read_back_texts_of_any_bytes() {
        let page = concat!(
            "12,-5,0123456789abcdef,completed,0,3,9,-1,15:m@1|chunk/docs/a,b:c.txt",
            "0,7,,failed,2,0,-1,13,11:no text\nhere:/d/é€.md",
        );
        let mut stamps = Vec::new();
        read_known_stamps(page, &mut |stamp| stamps.push(stamp)).unwrap();
        assert_eq!(stamps.len(), 2);
        let (a, b) = (stamps[0], stamps[1]);
        assert_eq!((a.path, a.size, a.modified_ns), ("/docs/a,b:c.txt", 12, -5));
        assert_eq!(
            (a.content_prefix, a.logic_fingerprint, a.error),
            (Some("0123456789abcdef"), Some("m@1|chunk"), None)
        );
        assert_eq!((a.status, a.retry_count, a.vectors_created), (FileStatus::Completed, 0, 3));
        assert_eq!((b.path, b.content_prefix, b.logic_fingerprint), ("/d/é€.md", None, None));
        assert_eq!((b.status, b.error, b.retry_count), (FileStatus::Failed, Some("no text\nhere:"), 2));
        for broken in ["1,2,,completed,0,0,-1,-1,99:/short", "1,2:/a", "x,2,,completed,0,0,-1,-1,2:/a"] {
            assert!(read_known_stamps(broken, &mut |_| {}).is_err(), "{broken}");
        }
    }
}
