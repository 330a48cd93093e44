//! # Known files
//!
//! In: the walk's paths, in the byte order of their text (see `scan::walk_order_key`), and
//! the catalog's rows of the collection under the walk's root, read a page at a time in the
//! same order. Out: for each walked path, its row as change detection reads it
//! ([`KnownFiles::take`]), and at the end the whole rows of the indexed files within scope
//! that the walk did not find ([`KnownFiles::finish`]).
//!
//! The two sorted sequences are merged: a row whose path comes before the walked path was
//! not walked, and only those of them that are indexed and within scope are kept, to be
//! proven vanished. A run holds a page or two of rows and the vanished ones, however large
//! the collection: a nightly run over ten million files holds what one over a thousand does.
//! The next page is read while the walk goes through the one before.
//!
//! Nothing depends on the walk's order for being right, only for being cheap: a path that
//! comes before one already looked up (which the walk never gives) is looked for among the
//! passed rows kept, then in the catalog.
//!
//! The content hash is kept by its first 64 bits: a file whose size or mtime moved and whose
//! new hash shares them with the old is taken as unchanged (one chance in 2^64).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::catalog::{CollectionCatalog, FileStatus, KnownFile, KnownPage, KnownStamp, PreviousRow};
use crate::scan::ScanOptions;

/// The catalog's rows of a collection, read alongside a walk (see the module doc).
pub(super) struct KnownFiles {
    rows: Rows,
    pages: Box<dyn Pages>,
}

/// Where the rows come from, a page at a time, in the byte order of their paths.
trait Pages: Send {
    /// Hands the rows of the next page to `each`; `false` once there are no more pages.
    fn next(&mut self, each: &mut dyn FnMut(KnownStamp<'_>)) -> Result<bool>;

    /// The whole rows at `paths`, where they exist.
    fn rows_at(&mut self, paths: &[String]) -> Result<Vec<KnownFile>>;
}

/// The catalog's pages, the next one read while the one before is merged.
struct CatalogPages {
    catalog: CollectionCatalog,
    runtime: Handle,
    next: Option<JoinHandle<Result<KnownPage>>>,
}

impl CatalogPages {
    /// Pages of the rows whose paths follow `after`, the first one on its way.
    fn new(catalog: CollectionCatalog, runtime: Handle, after: String) -> Self {
        let mut pages = CatalogPages { catalog, runtime, next: None };
        pages.read_after(after);
        pages
    }

    fn read_after(&mut self, after: String) {
        let catalog = self.catalog.clone();
        self.next = Some(self.runtime.spawn(async move { catalog.known_files_after(&after).await }));
    }
}

impl Pages for CatalogPages {
    fn next(&mut self, each: &mut dyn FnMut(KnownStamp<'_>)) -> Result<bool> {
        let Some(next) = self.next.take() else { return Ok(false) };
        let page = self.runtime.block_on(next).context("reading the catalog's file rows")??;
        if let Some(after) = &page.next_after {
            self.read_after(after.clone());
        }
        page.for_each(each)?;
        Ok(true)
    }

    fn rows_at(&mut self, paths: &[String]) -> Result<Vec<KnownFile>> {
        Ok(self.runtime.block_on(self.catalog.known_files_at(paths))?.into_values().collect())
    }
}

impl Drop for CatalogPages {
    fn drop(&mut self) {
        if let Some(next) = &self.next {
            next.abort();
        }
    }
}

/// The merge's state (see the module doc).
struct Rows {
    /// The rows of the walk's root, in the scope the walk looks at.
    root: PathBuf,
    scope: ScanOptions,
    /// What every path under the root starts with; rows are read from here on, and no
    /// further than the last that starts with it.
    prefix: String,
    /// The rows of the page being merged not yet passed, the next one last.
    page: Vec<Row>,
    /// No page is left to read, or the rows have left the root.
    pages_done: bool,
    /// The greatest path of the pages read.
    page_end: Option<String>,
    /// The greatest path looked up in walk order so far.
    last_taken: Option<String>,
    /// Rows passed without being walked, indexed and within scope, by path: vanished, unless
    /// a path out of order finds one yet.
    unseen: BTreeMap<String, Row>,
    /// Paths looked up aside (see [`KnownFiles::take_aside`]): not vanished when passed.
    taken_aside: HashSet<String>,
    /// The row a [`Recorded`] borrows.
    taken: Option<Row>,
    /// How many indexed files within scope the rows read hold.
    indexed_in_scope: usize,
    /// Each distinct logic fingerprint, once; [`Row::fingerprint`] indexes it.
    fingerprints: Vec<Box<str>>,
    fingerprint_numbers: HashMap<Box<str>, u32>,
}

/// One row of the catalog, as change detection needs it.
#[derive(Debug, Clone)]
struct Row {
    path: String,
    size: i64,
    modified_ns: i64,
    /// The first 64 bits of the content hash.
    content: Option<u64>,
    vectors_created: i64,
    /// Index into [`Rows::fingerprints`].
    fingerprint: Option<u32>,
    retry_count: i64,
    status: FileStatus,
    error: Option<Box<str>>,
    /// The file is indexed (not deleted) and lies within the walk's scope.
    in_scope: bool,
}

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
    /// Whether `content_hash` (lower-case hex, as [`crate::hash::sha256_hex`] writes it) is
    /// the recorded content hash, as far as its first 64 bits tell.
    pub(super) fn same_content(&self, content_hash: &str) -> bool {
        self.content.is_some() && self.content == hash_prefix(content_hash)
    }

    /// What the stages after change detection need of the row.
    pub(super) fn previous(&self) -> PreviousRow {
        PreviousRow { status: self.status, vectors_created: self.vectors_created }
    }
}

/// What the walk left: the indexed files within scope it did not find, whole, by path, and
/// how many indexed files within scope there were.
pub(super) struct Unwalked {
    pub(super) rows: Vec<KnownFile>,
    pub(super) indexed_in_scope: usize,
}

impl KnownFiles {
    /// Starts reading the rows of `catalog`'s collection under `root`, for a walk of it with
    /// `scope` (deleted files are never in scope). Must be called within the runtime; the
    /// other methods block the calling thread, which must not be one of the runtime's own.
    pub(super) fn read(catalog: &CollectionCatalog, root: &Path, scope: &ScanOptions) -> Self {
        let rows = Rows::new(root, scope.clone());
        let pages = CatalogPages::new(catalog.clone(), Handle::current(), rows.prefix.clone());
        KnownFiles { rows, pages: Box::new(pages) }
    }

    /// The row of the file at `path`, walked; `None` when the catalog has none.
    pub(super) fn take(&mut self, path: &str) -> Result<Option<Recorded<'_>>> {
        let in_order = self.rows.last_taken.as_deref().is_none_or(|last| path > last);
        let row = match in_order {
            true => self.take_in_order(path)?,
            false => self.take_out_of_order(path)?,
        };
        Ok(self.rows.hold(row))
    }

    /// The row of the file at `path`, walked, whose path is not in walk order (a name that
    /// is not UTF-8, written lossily): looked for without moving the merge.
    pub(super) fn take_aside(&mut self, path: &str) -> Result<Option<Recorded<'_>>> {
        self.rows.taken_aside.insert(path.to_string());
        let row = self.take_out_of_order(path)?;
        Ok(self.rows.hold(row))
    }

    /// The indexed files within scope that the walk did not find, read whole: the rest of
    /// the rows are read to the end of the root.
    pub(super) fn finish(mut self) -> Result<Unwalked> {
        while let Some(row) = self.next_row()? {
            self.rows.pass(row);
        }
        let paths: Vec<String> = std::mem::take(&mut self.rows.unseen).into_keys().collect();
        let mut rows = self.pages.rows_at(&paths)?;
        rows.retain(|row| row.status != FileStatus::Deleted);
        rows.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Unwalked { rows, indexed_in_scope: self.rows.indexed_in_scope })
    }

    /// Passes the rows before `path`, and takes its own if it is next.
    fn take_in_order(&mut self, path: &str) -> Result<Option<Row>> {
        let last = self.rows.last_taken.get_or_insert_with(String::new);
        last.clear();
        last.push_str(path);
        while self.peek()?.is_some_and(|next| next.path.as_str() < path) {
            let passed = self.rows.page.pop().expect("a row was peeked");
            self.rows.pass(passed);
        }
        Ok(match self.peek()? {
            Some(next) if next.path == path => self.rows.page.pop(),
            _ => None,
        })
    }

    /// The row at `path`, which comes before rows already passed: among those kept, or else
    /// read from the catalog on its own.
    fn take_out_of_order(&mut self, path: &str) -> Result<Option<Row>> {
        if let Some(row) = self.rows.unseen.remove(path) {
            return Ok(Some(row));
        }
        if self.peek()?.is_some_and(|next| next.path == path) {
            return Ok(self.rows.page.pop());
        }
        let read = self.pages.rows_at(&[path.to_string()])?;
        Ok(read.first().map(|file| self.rows.row(file.stamp())))
    }

    /// The next row not yet passed, reading pages as needed.
    fn peek(&mut self) -> Result<Option<&Row>> {
        while self.rows.page.is_empty() && !self.rows.pages_done {
            let Self { rows, pages } = self;
            let mut page = Vec::new();
            // Rows come in path order: once one lies past the root, all that follow do.
            let mut past_the_root = false;
            let read = pages.next(&mut |stamp| match stamp.path.starts_with(rows.prefix.as_str()) {
                true => page.push(rows.row(stamp)),
                false => past_the_root = true,
            })?;
            rows.pages_done = !read || past_the_root;
            rows.load(page)?;
        }
        Ok(self.rows.page.last())
    }

    fn next_row(&mut self) -> Result<Option<Row>> {
        self.peek()?;
        Ok(self.rows.page.pop())
    }
}

impl Rows {
    fn new(root: &Path, scope: ScanOptions) -> Self {
        let prefix = format!("{}/", root.to_string_lossy().trim_end_matches('/'));
        Rows {
            root: root.to_path_buf(),
            scope,
            prefix,
            page: Vec::new(),
            pages_done: false,
            page_end: None,
            last_taken: None,
            unseen: BTreeMap::new(),
            taken_aside: HashSet::new(),
            taken: None,
            indexed_in_scope: 0,
            fingerprints: Vec::new(),
            fingerprint_numbers: HashMap::new(),
        }
    }

    /// `stamp`, as the merge keeps it.
    fn row(&mut self, stamp: KnownStamp<'_>) -> Row {
        let fingerprint = stamp.logic_fingerprint.map(|text| match self.fingerprint_numbers.get(text) {
            Some(number) => *number,
            None => {
                let number = self.fingerprints.len() as u32;
                self.fingerprints.push(text.into());
                self.fingerprint_numbers.insert(text.into(), number);
                number
            }
        });
        let in_scope = stamp.status != FileStatus::Deleted && self.scope.in_scope(&self.root, Path::new(stamp.path));
        Row {
            path: stamp.path.to_string(),
            size: stamp.size,
            modified_ns: stamp.modified_ns,
            content: stamp.content_prefix.and_then(hash_prefix),
            vectors_created: stamp.vectors_created,
            fingerprint,
            retry_count: stamp.retry_count,
            status: stamp.status,
            error: stamp.error.map(Into::into),
            in_scope,
        }
    }

    /// Makes `page` the page being merged, its rows in path order. Pages that overlap would
    /// have the merge take a row for vanished that a later path finds: refused.
    fn load(&mut self, mut page: Vec<Row>) -> Result<()> {
        page.sort_unstable_by(|a, b| b.path.cmp(&a.path));
        if let (Some(first), Some(end)) = (page.last(), &self.page_end) {
            anyhow::ensure!(
                first.path > *end,
                "the catalog's file rows did not come in the byte order of their paths ({:?} after {end:?})",
                first.path
            );
        }
        if let Some(last) = page.first() {
            self.page_end = Some(last.path.clone());
        }
        self.indexed_in_scope += page.iter().filter(|row| row.in_scope).count();
        self.page = page;
        Ok(())
    }

    /// `row` was not walked: kept when it may have vanished.
    fn pass(&mut self, row: Row) {
        if row.in_scope && !self.taken_aside.contains(&row.path) {
            self.unseen.insert(row.path.clone(), row);
        }
    }

    /// Holds `row` for the [`Recorded`] that borrows it.
    fn hold(&mut self, row: Option<Row>) -> Option<Recorded<'_>> {
        self.taken = row;
        let row = self.taken.as_ref()?;
        Some(Recorded {
            size: row.size,
            modified_ns: row.modified_ns,
            status: row.status,
            retry_count: row.retry_count,
            vectors_created: row.vectors_created,
            logic_fingerprint: row.fingerprint.map(|number| &*self.fingerprints[number as usize]),
            error: row.error.as_deref(),
            content: row.content,
        })
    }
}

/// The first 64 bits of a hex content hash.
fn hash_prefix(content_hash: &str) -> Option<u64> {
    content_hash.get(..16).and_then(|digits| u64::from_str_radix(digits, 16).ok())
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::hash;

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

    /// Rows held in memory, handed over in pages as the catalog hands them: each page in no
    /// order of its own, the pages in path order.
    struct ListedPages {
        pages: VecDeque<Vec<KnownFile>>,
        all: Vec<KnownFile>,
    }

    impl Pages for ListedPages {
        fn next(&mut self, each: &mut dyn FnMut(KnownStamp<'_>)) -> Result<bool> {
            let Some(page) = self.pages.pop_front() else { return Ok(false) };
            page.iter().rev().for_each(|file| each(file.stamp()));
            Ok(true)
        }

        fn rows_at(&mut self, paths: &[String]) -> Result<Vec<KnownFile>> {
            Ok(self.all.iter().filter(|file| paths.contains(&file.path)).cloned().collect())
        }
    }

    /// The rows of `files` under `/docs` (those after `/docs/`, as the catalog reads them),
    /// `per_page` a page.
    fn known(files: Vec<KnownFile>, per_page: usize) -> KnownFiles {
        let mut read: Vec<KnownFile> = files.iter().filter(|file| file.path.as_str() > "/docs/").cloned().collect();
        read.sort_by(|a, b| a.path.cmp(&b.path));
        let pages = read.chunks(per_page).map(<[KnownFile]>::to_vec).collect();
        known_in_pages(pages, files)
    }

    fn known_in_pages(pages: VecDeque<Vec<KnownFile>>, all: Vec<KnownFile>) -> KnownFiles {
        let scope = ScanOptions::new(&[], &[], false, false, false).unwrap();
        KnownFiles { rows: Rows::new(Path::new("/docs"), scope), pages: Box::new(ListedPages { pages, all }) }
    }

    fn paths(rows: &[KnownFile]) -> Vec<&str> {
        rows.iter().map(|row| row.path.as_str()).collect()
    }

    #[test]
    fn a_walked_path_finds_its_row_and_the_rest_are_unseen() {
        let mut known = known(
            vec![
                row("/docs/a.txt", FileStatus::Completed),
                row("/docs/b.txt", FileStatus::Failed),
                row("/docs/gone.txt", FileStatus::Completed),
                row("/docs/deleted.txt", FileStatus::Deleted),
                row("/docs/image.png", FileStatus::Completed),
                row("/docs-old/c.txt", FileStatus::Completed),
                row("/docs0/c.txt", FileStatus::Completed),
                row("/elsewhere/c.txt", FileStatus::Completed),
            ],
            2,
        );
        let a = known.take("/docs/a.txt").unwrap().expect("a.txt has a row");
        assert_eq!((a.size, a.modified_ns, a.status, a.vectors_created), (10, 20, FileStatus::Completed, 3));
        assert_eq!(a.logic_fingerprint, Some("model|500|50"));
        assert!(a.same_content(&hash::sha256_hex(b"/docs/a.txt")));
        assert!(!a.same_content(&hash::sha256_hex(b"other bytes")));
        assert_eq!(a.error, None);
        let b = known.take("/docs/b.txt").unwrap().expect("b.txt has a row");
        assert_eq!((b.status, b.retry_count, b.error), (FileStatus::Failed, 2, Some("no text layer")));
        assert!(known.take("/docs/c.txt").unwrap().is_none());
        assert!(known.take("/docs/new.txt").unwrap().is_none());
        assert_eq!(known.rows.fingerprints.len(), 1, "one copy of a fingerprint the rows share");
        // Neither the deleted row, nor one out of the walk's scope or outside its root, is
        // unseen.
        let unwalked = known.finish().unwrap();
        assert_eq!(paths(&unwalked.rows), ["/docs/gone.txt"]);
        assert_eq!(unwalked.indexed_in_scope, 3);
    }

    #[test]
    fn every_row_of_many_pages_is_found_and_the_rest_are_unseen() {
        let mut all: Vec<String> = (0..5_000).map(|n| format!("/docs/{n}.txt")).collect();
        all.sort();
        let mut known = known(all.iter().map(|path| row(path, FileStatus::Completed)).collect(), 64);
        let mut skipped = 0;
        for path in &all {
            if path.ends_with("7.txt") {
                skipped += 1;
                continue;
            }
            assert!(known.take(path).unwrap().is_some(), "{path}");
            assert!(known.rows.page.len() <= 64, "a page at a time");
            assert_eq!(known.rows.unseen.len(), skipped, "of the rows passed, only those not walked are kept");
        }
        assert!(known.take("/docs/9999.txt").unwrap().is_none());
        let unwalked = known.finish().unwrap();
        let expected: Vec<&str> = all.iter().filter(|p| p.ends_with("7.txt")).map(String::as_str).collect();
        assert_eq!(paths(&unwalked.rows), expected);
        assert_eq!(unwalked.indexed_in_scope, 5_000);
    }

    #[test]
    fn a_path_out_of_walk_order_still_finds_its_row() {
        let mut known = known(
            vec![
                row("/docs/a.txt", FileStatus::Completed),
                row("/docs/b.txt", FileStatus::Deleted),
                row("/docs/c.txt", FileStatus::Completed),
            ],
            1,
        );
        assert!(known.take("/docs/c.txt").unwrap().is_some());
        assert_eq!(known.take("/docs/a.txt").unwrap().map(|a| a.status), Some(FileStatus::Completed));
        assert_eq!(known.take("/docs/b.txt").unwrap().map(|b| b.status), Some(FileStatus::Deleted));
        assert!(known.take("/docs/0.txt").unwrap().is_none());
        assert!(known.finish().unwrap().rows.is_empty());
    }

    #[test]
    fn a_path_taken_aside_is_never_unseen() {
        let lossy = "/docs/z\u{FFFD}.txt";
        let mut known = known(vec![row("/docs/a.txt", FileStatus::Completed), row(lossy, FileStatus::Failed)], 1);
        assert_eq!(known.take_aside(lossy).unwrap().map(|z| z.status), Some(FileStatus::Failed));
        assert!(known.take("/docs/a.txt").unwrap().is_some());
        let unwalked = known.finish().unwrap();
        assert!(unwalked.rows.is_empty());
        assert_eq!(unwalked.indexed_in_scope, 2);
    }

    #[test]
    fn pages_out_of_path_order_are_refused() {
        let (a, b) = (row("/docs/a.txt", FileStatus::Completed), row("/docs/b.txt", FileStatus::Completed));
        let mut known = known_in_pages(VecDeque::from([vec![b.clone()], vec![a.clone()]]), vec![a, b]);
        let error = known.take("/docs/z.txt").expect_err("pages out of order");
        assert!(error.to_string().contains("byte order"), "{error}");
    }

    #[test]
    fn a_row_without_a_content_hash_never_matches_one() {
        let mut file = row("/docs/a.txt", FileStatus::Completed);
        file.content_hash = None;
        let mut known = known(vec![file], 8);
        let a = known.take("/docs/a.txt").unwrap().expect("a.txt has a row");
        assert!(!a.same_content(&hash::sha256_hex(b"/docs/a.txt")));
    }
}
