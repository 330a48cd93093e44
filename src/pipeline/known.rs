//! # Known files
//!
//! In: the catalog's rows of a collection, read a page at a time. Out: [`KnownFiles`], what
//! change detection needs of each row, held in about 48 bytes a file instead of the row
//! itself (a path, two hashes and a fingerprint: over a kilobyte), so that a nightly run
//! over a million files holds tens of megabytes, not a gigabyte. Each walked path is looked
//! up by its doc id ([`KnownFiles::take`]); once the walk is done, the rows of the files it
//! did not find are read from the catalog again ([`KnownFiles::unseen_rows`]), whole.
//!
//! Two things are kept shorter than the row: the content hash, by its first 64 bits (a
//! file whose size or mtime moved and whose new hash shares them with the old is taken as
//! unchanged: one chance in 2^64), and the logic fingerprint and failure reason, by one
//! copy of each distinct text (a collection has a handful of fingerprints) and the reasons
//! of failed files only.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Result;

use crate::catalog::{CollectionCatalog, FileStatus, KnownFile, KnownStamp, PreviousRow};
use crate::hash;

/// The catalog's view of a collection, compact, for one walk (see the module doc).
pub(super) struct KnownFiles {
    rows: Rows,
    /// Where the rows came from, to read the unseen ones again.
    source: (CollectionCatalog, tokio::runtime::Handle),
}

/// The rows, compact.
#[derive(Default)]
struct Rows {
    /// One a row, sorted by doc id once loaded.
    files: Vec<Compact>,
    /// Where the rows of each bucket of doc ids (by their top bits) start in `files`, and
    /// one past the last bucket's end: a lookup searches a bucket of a few rows, a cache
    /// line or two, where a search of the whole array would miss the cache at each of its
    /// twenty steps (a quarter of a no-change re-run's time at a million files).
    bucket_starts: Vec<u32>,
    /// The shift that leaves a doc id's bucket.
    bucket_shift: u32,
    /// Each distinct logic fingerprint, once; [`Compact::fingerprint`] indexes it.
    fingerprints: Vec<Box<str>>,
    /// The number of each fingerprint, while the rows load.
    fingerprint_numbers: HashMap<String, u32>,
    /// The failure reasons of failed files, by doc id.
    errors: HashMap<u64, Box<str>>,
}

/// One row of the catalog, as change detection needs it.
#[derive(Debug, Clone, Copy)]
struct Compact {
    doc_id: u64,
    size: i64,
    modified_ns: i64,
    /// The first 64 bits of the content hash, when [`HAS_CONTENT`] is set.
    content: u64,
    vectors_created: i64,
    /// Index into [`Rows::fingerprints`], or [`NO_FINGERPRINT`].
    fingerprint: u32,
    retry_count: u16,
    status: FileStatus,
    flags: u8,
}

const NO_FINGERPRINT: u32 = u32::MAX;
/// [`Compact::content`] holds a content hash.
const HAS_CONTENT: u8 = 1;
/// The file is indexed (not deleted) and lies within the walk's scope.
const IN_SCOPE: u8 = 2;
/// The walk found the file.
const SEEN: u8 = 4;

/// A known file's row as change detection reads it, found by [`KnownFiles::take`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Recorded<'a> {
    pub(super) size: i64,
    pub(super) modified_ns: i64,
    pub(super) status: FileStatus,
    pub(super) retry_count: i64,
    pub(super) vectors_created: i64,
    pub(super) logic_fingerprint: Option<&'a str>,
    /// Why the file failed, when it did.
    pub(super) error: Option<&'a str>,
    content: Option<u64>,
}

impl Recorded<'_> {
    /// Whether `content_hash` (lower-case hex, as [`hash::sha256_hex`] writes it) is the
    /// recorded content hash, as far as its first 64 bits tell.
    pub(super) fn same_content(&self, content_hash: &str) -> bool {
        self.content.is_some() && self.content == hash_prefix(content_hash)
    }

    /// What the stages after change detection need of the row.
    pub(super) fn previous(&self) -> PreviousRow {
        PreviousRow { status: self.status, vectors_created: self.vectors_created }
    }
}

impl KnownFiles {
    /// Loads the rows of `catalog`'s collection a page at a time; `in_scope` says which
    /// paths the walk looks at (deleted files are never in scope).
    pub(super) async fn load(catalog: &CollectionCatalog, in_scope: impl Fn(&Path) -> bool) -> Result<Self> {
        let mut rows = Rows::default();
        catalog.for_each_known_file(|row| rows.add(row, &in_scope)).await?;
        let source = (catalog.clone(), tokio::runtime::Handle::current());
        Ok(KnownFiles { rows: rows.loaded(), source })
    }

    /// How many indexed files lie within the walk's scope.
    pub(super) fn in_scope(&self) -> usize {
        self.rows.files.iter().filter(|f| f.flags & IN_SCOPE != 0).count()
    }

    /// The row of the file at `path`, marked as found by the walk; `None` when the catalog
    /// has none.
    pub(super) fn take(&mut self, path: &str) -> Option<Recorded<'_>> {
        self.rows.take(path)
    }

    /// The whole rows of the indexed files within scope that the walk did not find, by path:
    /// read from the catalog again (blocking the calling thread, which must not be one of
    /// the runtime's own).
    pub(super) fn unseen_rows(&self) -> Result<Vec<KnownFile>> {
        let unseen = self.rows.unseen_doc_ids();
        if unseen.is_empty() {
            return Ok(Vec::new());
        }
        let (catalog, runtime) = &self.source;
        let mut rows = runtime.block_on(catalog.known_files_with_doc_ids(&unseen))?;
        rows.retain(|row| row.status != FileStatus::Deleted);
        rows.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(rows)
    }
}

impl Rows {
    /// Adds `row`, as the catalog hands it over.
    fn add(&mut self, row: KnownStamp<'_>, in_scope: &impl Fn(&Path) -> bool) {
        // Every doc id is 16 hex digits (see `hash::doc_id`); a row with another would be
        // found by no walked path, nor read again as unseen.
        let doc_id = doc_id_number(row.doc_id).unwrap_or(u64::MAX);
        let fingerprint = match row.logic_fingerprint {
            Some(text) => match self.fingerprint_numbers.get(text) {
                Some(number) => *number,
                None => {
                    let number = self.fingerprints.len() as u32;
                    self.fingerprints.push(text.into());
                    self.fingerprint_numbers.insert(text.to_string(), number);
                    number
                }
            },
            None => NO_FINGERPRINT,
        };
        let content = row.content_prefix.and_then(hash_prefix);
        let mut flags = if content.is_some() { HAS_CONTENT } else { 0 };
        if row.status != FileStatus::Deleted && in_scope(Path::new(row.path)) {
            flags |= IN_SCOPE;
        }
        if row.status == FileStatus::Failed {
            if let Some(error) = row.error {
                self.errors.insert(doc_id, error.into());
            }
        }
        self.files.push(Compact {
            doc_id,
            size: row.size,
            modified_ns: row.modified_ns,
            content: content.unwrap_or(0),
            vectors_created: row.vectors_created,
            fingerprint,
            retry_count: row.retry_count.clamp(0, u16::MAX.into()) as u16,
            status: row.status,
            flags,
        });
    }

    /// The rows, all added: sorted by doc id, without what only loading needed.
    fn loaded(mut self) -> Self {
        self.files.sort_by_key(|f| f.doc_id);
        self.files.shrink_to_fit();
        // About eight rows a bucket; doc ids are hashes, so the buckets fill evenly.
        let buckets = (self.files.len() / 8).next_power_of_two();
        self.bucket_shift = u64::BITS - buckets.trailing_zeros();
        let mut starts = vec![0u32; buckets + 1];
        for file in &self.files {
            starts[self.bucket(file.doc_id) + 1] += 1;
        }
        for bucket in 1..starts.len() {
            starts[bucket] += starts[bucket - 1];
        }
        self.bucket_starts = starts;
        self.fingerprint_numbers = HashMap::new();
        self
    }

    fn take(&mut self, path: &str) -> Option<Recorded<'_>> {
        let doc_id = doc_id_number(&hash::doc_id(path))?;
        let bucket = self.bucket(doc_id);
        let (start, end) = (self.bucket_starts[bucket] as usize, self.bucket_starts[bucket + 1] as usize);
        let first = start + self.files[start..end].partition_point(|f| f.doc_id < doc_id);
        let sharing = self.files[first..end].iter().take_while(|f| f.doc_id == doc_id).count();
        // Paths that share a doc id share their points in the store too: the walk finding one
        // keeps both, so that neither is taken for vanished.
        self.files[first..first + sharing].iter_mut().for_each(|f| f.flags |= SEEN);
        let file = *self.files.get(first).filter(|_| sharing > 0)?;
        Some(Recorded {
            size: file.size,
            modified_ns: file.modified_ns,
            status: file.status,
            retry_count: file.retry_count.into(),
            vectors_created: file.vectors_created,
            logic_fingerprint: self.fingerprints.get(file.fingerprint as usize).map(|f| &**f),
            error: self.errors.get(&doc_id).map(|e| &**e),
            content: (file.flags & HAS_CONTENT != 0).then_some(file.content),
        })
    }

    /// The bucket of `doc_id` (see [`Rows::bucket_starts`]).
    fn bucket(&self, doc_id: u64) -> usize {
        doc_id.checked_shr(self.bucket_shift).unwrap_or(0) as usize
    }

    /// The doc ids of the indexed files within scope that the walk did not find.
    fn unseen_doc_ids(&self) -> Vec<String> {
        let unseen = self.files.iter().filter(|f| f.flags & (IN_SCOPE | SEEN) == IN_SCOPE);
        unseen.map(|f| format!("{:016x}", f.doc_id)).collect()
    }
}

/// A doc id's 16 hex digits as a number.
fn doc_id_number(doc_id: &str) -> Option<u64> {
    (doc_id.len() == 16).then(|| u64::from_str_radix(doc_id, 16).ok()).flatten()
}

/// The first 64 bits of a hex content hash.
fn hash_prefix(content_hash: &str) -> Option<u64> {
    content_hash.get(..16).and_then(|digits| u64::from_str_radix(digits, 16).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(path: &str, status: FileStatus) -> KnownFile {
        KnownFile {
            path: path.to_string(),
            doc_id: hash::doc_id(path),
            size: 10,
            modified_ns: 20,
            extension: "txt".into(),
            content_hash: Some(hash::sha256_hex(path.as_bytes())),
            logic_fingerprint: Some("model|500|50".into()),
            status,
            error: (status == FileStatus::Failed).then(|| "no text layer".to_string()),
            retry_count: 2,
            vectors_created: 3,
        }
    }

    /// `file` as the catalog reads it for a run.
    fn stamp(file: &KnownFile) -> KnownStamp<'_> {
        KnownStamp {
            path: &file.path,
            doc_id: &file.doc_id,
            size: file.size,
            modified_ns: file.modified_ns,
            content_prefix: file.content_hash.as_deref().map(|hash| &hash[..16]),
            logic_fingerprint: file.logic_fingerprint.as_deref(),
            status: file.status,
            error: file.error.as_deref(),
            retry_count: file.retry_count,
            vectors_created: file.vectors_created,
        }
    }

    fn rows(files: Vec<KnownFile>) -> Rows {
        let mut rows = Rows::default();
        files.iter().for_each(|file| rows.add(stamp(file), &|path: &Path| !path.starts_with("/elsewhere")));
        rows.loaded()
    }

    #[test]
    fn a_walked_path_finds_its_row_and_the_rest_are_unseen() {
        let mut known = rows(vec![
            row("/docs/a.txt", FileStatus::Completed),
            row("/docs/b.txt", FileStatus::Failed),
            row("/docs/gone.txt", FileStatus::Completed),
            row("/docs/deleted.txt", FileStatus::Deleted),
            row("/elsewhere/c.txt", FileStatus::Completed),
        ]);
        assert_eq!(known.fingerprints.len(), 1, "one copy of a fingerprint the rows share");
        let a = known.take("/docs/a.txt").expect("a.txt has a row");
        assert_eq!((a.size, a.modified_ns, a.status, a.vectors_created), (10, 20, FileStatus::Completed, 3));
        assert_eq!(a.logic_fingerprint, Some("model|500|50"));
        assert!(a.same_content(&hash::sha256_hex(b"/docs/a.txt")));
        assert!(!a.same_content(&hash::sha256_hex(b"other bytes")));
        assert_eq!(a.error, None);
        let b = known.take("/docs/b.txt").expect("b.txt has a row");
        assert_eq!((b.status, b.retry_count, b.error), (FileStatus::Failed, 2, Some("no text layer")));
        assert!(known.take("/docs/new.txt").is_none());
        // Neither the deleted row nor the one outside the walk's scope is unseen.
        assert_eq!(known.unseen_doc_ids(), vec![hash::doc_id("/docs/gone.txt")]);
    }

    #[test]
    fn every_row_of_many_is_found_in_its_bucket() {
        let paths: Vec<String> = (0..5_000).map(|n| format!("/docs/{n}.txt")).collect();
        let mut known = rows(paths.iter().map(|path| row(path, FileStatus::Completed)).collect());
        assert_eq!(known.bucket_starts.len(), 1024 + 1, "5,000 / 8 rows a bucket, up to a power of two");
        for path in paths.iter().filter(|path| !path.ends_with("7.txt")) {
            assert!(known.take(path).is_some(), "{path}");
        }
        assert!(known.take("/docs/5000.txt").is_none());
        let mut unseen = known.unseen_doc_ids();
        let mut expected: Vec<String> =
            paths.iter().filter(|p| p.ends_with("7.txt")).map(|p| hash::doc_id(p)).collect();
        unseen.sort();
        expected.sort();
        assert_eq!(unseen, expected);
    }

    #[test]
    fn paths_that_share_a_doc_id_are_both_kept_when_one_is_found() {
        let mut twin = row("/docs/twin.txt", FileStatus::Completed);
        twin.doc_id = hash::doc_id("/docs/a.txt");
        let mut known = rows(vec![row("/docs/a.txt", FileStatus::Completed), twin]);
        assert!(known.take("/docs/a.txt").is_some());
        assert!(known.unseen_doc_ids().is_empty());
    }

    #[test]
    fn a_row_without_a_content_hash_never_matches_one() {
        let mut file = row("/docs/a.txt", FileStatus::Completed);
        file.content_hash = None;
        let mut known = rows(vec![file]);
        let a = known.take("/docs/a.txt").expect("a.txt has a row");
        assert!(!a.same_content(&hash::sha256_hex(b"/docs/a.txt")));
    }
}
