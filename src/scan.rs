//! # Scan
//!
//! In: a root directory and [`ScanOptions`] (extensions to keep, ignore globs, whether to
//! follow links out of the root).
//! Out: a stream of [`ScanItem`]s: every candidate file as a [`FileEntry`] (path, size,
//! mtime, extension; no content is read), every entry that could not be walked as a
//! [`ScanItem::Problem`] with its reason, every link left unfollowed as a
//! [`ScanItem::Skipped`], and every file the filters passed over as a
//! [`ScanItem::Filtered`], so that the summary can count them.
//!
//! Files without an extension (`README`, `NEWS`, `copyright`) are candidates by default:
//! extraction keeps them when their contents are text. Hidden ones, and those inside hidden
//! directories such as `.git`, are not.
//!
//! Symlinks that resolve inside the root are followed; those leading outside it are
//! followed only with [`ScanOptions::follow_external_links`]. A file reachable by several
//! paths is yielded once: under its own path when the walk looks there (a link to it gives
//! way), otherwise under the first path in walk order (hard links, and links to what the
//! walk does not reach by itself). Loops, unreadable directories and non-UTF-8 names are reported as problems, never
//! fatal. Entries come out in a stable order: paths in the byte order of their text (see
//! [`walk_order_key`]).

use std::collections::{HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{Context, Result};
use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::extract::{IMAGE_EXTENSIONS, KNOWN_EXTENSIONS};

/// What to keep while walking.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Lower-case extensions without the dot.
    pub extensions: Vec<String>,
    /// Files without an extension are candidates (the default set of extensions only).
    pub extensionless: bool,
    /// Files with an extension not in `extensions` are candidates too, kept if their contents
    /// are text.
    pub sniff_unknown: bool,
    /// Paths (relative to the root) matching any of these are skipped.
    pub ignore: GlobSet,
    /// Follow symlinks that resolve outside the root (otherwise they are skipped, with a note).
    pub follow_external_links: bool,
}

impl ScanOptions {
    /// Options for a walk. No `extensions` means [`KNOWN_EXTENSIONS`] and files without an
    /// extension, and [`IMAGE_EXTENSIONS`] with `images` (when the run reads them by OCR);
    /// `sniff_unknown` adds files of any other extension.
    pub fn new(
        extensions: &[String],
        ignore_globs: &[String],
        follow_external_links: bool,
        sniff_unknown: bool,
        images: bool,
    ) -> Result<Self> {
        let mut builder = GlobSetBuilder::new();
        for pattern in ignore_globs {
            builder.add(Glob::new(pattern).with_context(|| format!("invalid --ignore glob {pattern:?}"))?);
        }
        let extensionless = extensions.is_empty();
        let extensions = if extensions.is_empty() {
            let images = IMAGE_EXTENSIONS.iter().filter(|_| images);
            KNOWN_EXTENSIONS.iter().map(|(extension, _)| extension).chain(images).map(|e| e.to_string()).collect()
        } else {
            extensions.iter().map(|e| e.trim_start_matches('.').to_ascii_lowercase()).collect()
        };
        Ok(Self {
            extensions,
            extensionless,
            sniff_unknown,
            ignore: builder.build().context("building --ignore globs")?,
            follow_external_links,
        })
    }

    /// The lower-case extension ("" for none) of the file at `relative` (its path under the
    /// root) when this walk keeps it. A file without an extension, or of an unknown one, is
    /// kept only outside hidden directories and when not hidden itself.
    fn kept_extension(&self, relative: &Path) -> Option<String> {
        let hidden_above =
            relative.parent().is_some_and(|parent| parent.components().any(|c| is_hidden(c.as_os_str())));
        self.kept_name(relative.file_name()?, hidden_above)
    }

    /// [`Self::kept_extension`] for a file called `name`, below a hidden directory or not.
    fn kept_name(&self, name: &OsStr, hidden_above: bool) -> Option<String> {
        let extension =
            Path::new(name).extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        if self.extensions.contains(&extension) {
            return Some(extension);
        }
        let sniffed = if extension.is_empty() { self.extensionless || self.sniff_unknown } else { self.sniff_unknown };
        (sniffed && !hidden_above && !is_hidden(name)).then_some(extension)
    }

    /// Whether `relative` (a path under the root) matches an `--ignore` glob.
    fn ignores(&self, relative: &Path) -> bool {
        !self.ignore.is_empty() && self.ignore.is_match(relative)
    }

    /// Whether a walk of `root` with these options looks for `path`: it lies under `root`,
    /// has a kept extension, and neither it nor a directory above it is ignored. A known file
    /// out of scope was not looked for, so its absence from the walk proves nothing.
    pub fn in_scope(&self, root: &Path, path: &Path) -> bool {
        let Ok(relative) = path.strip_prefix(root) else { return false };
        !relative.as_os_str().is_empty()
            && self.kept_extension(relative).is_some()
            && !relative.ancestors().filter(|a| !a.as_os_str().is_empty()).any(|a| self.ignores(a))
    }
}

fn is_hidden(name: &OsStr) -> bool {
    name.as_bytes().starts_with(b".")
}

/// A candidate file, as seen by `stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// The path as walked (absolute when the root is absolute), as text: the catalog key and
    /// the `path` payload field.
    pub path_text: String,
    pub size: u64,
    /// Modification time in nanoseconds since the Unix epoch.
    pub modified_ns: i64,
    /// Lower-case extension without the dot.
    pub extension: String,
}

impl FileEntry {
    pub fn path(&self) -> &Path {
        Path::new(&self.path_text)
    }
}

/// One result of the walk.
#[derive(Debug, Clone)]
pub enum ScanItem {
    File(FileEntry),
    /// A file that matched the filters but cannot be indexed (for example a non-UTF-8 name).
    Rejected {
        path_text: String,
        extension: String,
        reason: String,
    },
    /// An entry that could not be walked at all (a symlink loop, an unreadable directory).
    Problem {
        path_text: String,
        reason: String,
    },
    /// An entry deliberately not followed (a symlink leading outside the root): a note, not
    /// a failure.
    Skipped {
        path_text: String,
        reason: String,
    },
    /// A file the extension filter passed over.
    Filtered,
}

/// Walks `root` and yields its candidate files.
pub fn scan<'a>(root: &'a Path, options: &'a ScanOptions) -> impl Iterator<Item = ScanItem> + 'a {
    Walk::new(root, options)
}

/// A directory being walked.
struct OpenDir {
    path: PathBuf,
    /// Its entries not yet walked, in walk order (see [`walk_order_key`]).
    entries: std::vec::IntoIter<(OsString, std::fs::DirEntry)>,
    /// (device, inode): a link below that leads back here is a loop.
    id: (u64, u64),
    /// It, or a directory above it under the root, is hidden.
    hidden: bool,
    /// It was reached through a symlink, its own or one above it under the root.
    through_link: bool,
}

/// A depth-first walk over the directories still open, innermost last. Each file is
/// `stat`ed relative to its open directory, so the kernel resolves one name, not the path.
struct Walk<'a> {
    root: &'a Path,
    /// The root resolved, to judge where links lead.
    real_root: PathBuf,
    options: &'a ScanOptions,
    open: Vec<OpenDir>,
    /// Items found while opening a directory, yielded before its entries.
    found: VecDeque<ScanItem>,
    /// The (device, inode) of every file yielded that another path may lead to (hard links,
    /// files reached through symlinks), so that each comes once. A file of one name reached
    /// without a link is not kept: no other path walked without links leads to it.
    seen_files: HashSet<(u64, u64)>,
}

impl<'a> Walk<'a> {
    fn new(root: &'a Path, options: &'a ScanOptions) -> Self {
        let mut walk = Walk {
            root,
            real_root: std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf()),
            options,
            open: Vec::new(),
            found: VecDeque::new(),
            seen_files: HashSet::new(),
        };
        match std::fs::metadata(root) {
            Ok(meta) if meta.is_dir() => walk.open_dir(root.to_path_buf(), &meta, false, false),
            Ok(_) => walk.found.push_back(problem(root, "not a directory")),
            Err(error) => walk.found.push_back(unreadable(root, &error)),
        }
        walk
    }

    /// Opens the directory at `path` (`meta` its metadata, links followed) for walking, or
    /// notes why it cannot be.
    fn open_dir(&mut self, path: PathBuf, meta: &std::fs::Metadata, hidden: bool, through_link: bool) {
        let id = (meta.dev(), meta.ino());
        if self.open.iter().any(|dir| dir.id == id) {
            self.found.push_back(problem(&path, "symbolic link loop"));
            return;
        }
        let listing = match std::fs::read_dir(&path) {
            Ok(listing) => listing,
            Err(error) => return self.found.push_back(unreadable(&path, &error)),
        };
        let mut entries = Vec::new();
        for entry in listing {
            match entry {
                Ok(entry) => entries.push((walk_order_key(&entry), entry)),
                Err(error) => self.found.push_back(unreadable(&path, &error)),
            }
        }
        entries.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
        let entries: Vec<_> = entries.into_iter().map(|(_, entry)| (entry.file_name(), entry)).collect();
        self.open.push(OpenDir { path, entries: entries.into_iter(), id, hidden, through_link });
    }

    /// The item for one entry of the innermost open directory; `None` when it yields nothing
    /// (an ignored entry, a directory now open, a file already seen, a socket).
    fn visit(&mut self, name: OsString, entry: std::fs::DirEntry) -> Option<ScanItem> {
        let dir = self.open.last()?;
        let (path, hidden_above, link_above) = (dir.path.join(&name), dir.hidden, dir.through_link);
        if self.options.ignores(path.strip_prefix(self.root).unwrap_or(&path)) {
            return None;
        }
        let file_type = match entry.file_type() {
            Ok(file_type) => file_type,
            Err(error) => return Some(unreadable(&path, &error)),
        };
        // A link is judged by what it leads to.
        let linked = if file_type.is_symlink() {
            match std::fs::metadata(&path) {
                Ok(meta) => Some(meta),
                Err(error) => return Some(unreadable(&path, &error)),
            }
        } else {
            None
        };
        let is_file = linked.as_ref().map_or(file_type.is_file(), |meta| meta.is_file());
        let is_dir = linked.as_ref().map_or(file_type.is_dir(), |meta| meta.is_dir());
        if !is_file && !is_dir {
            return None;
        }
        // A file's extension when the filters keep it; `None` for a directory.
        let extension = if is_file {
            match self.options.kept_name(&name, hidden_above) {
                Some(extension) => Some(extension),
                None => return Some(ScanItem::Filtered),
            }
        } else {
            None
        };
        if linked.is_some() && !self.options.follow_external_links {
            if let Some(skipped) = external_link(&path, &self.real_root) {
                return Some(skipped);
            }
        }
        let through_link = link_above || linked.is_some();
        let meta = linked.map_or_else(|| entry.metadata(), Ok);
        let Some(extension) = extension else {
            match meta {
                Ok(meta) => self.open_dir(path, &meta, hidden_above || is_hidden(&name), through_link),
                Err(error) => self.found.push_back(unreadable(&path, &error)),
            }
            return None;
        };
        let path_text = match path.into_os_string().into_string() {
            Ok(text) => text,
            Err(name) => {
                return Some(ScanItem::Rejected {
                    path_text: name.to_string_lossy().into_owned(),
                    extension,
                    reason: "file name is not valid UTF-8; rename the file to index it".into(),
                })
            }
        };
        match meta {
            Ok(meta) if !self.first_visit(&path_text, &meta, through_link) => None,
            Ok(meta) => Some(ScanItem::File(FileEntry {
                path_text,
                size: meta.len(),
                modified_ns: modified_ns(&meta),
                extension,
            })),
            Err(error) => {
                Some(ScanItem::Rejected { path_text, extension, reason: format!("cannot stat file: {error}") })
            }
        }
    }
}

impl Walk<'_> {
    /// Whether the file at `path` (`meta` its metadata, links followed) is yielded here: not
    /// when a link leads to it from within the root where the walk also looks under its own
    /// path, nor when another path yielded it already.
    fn first_visit(&mut self, path: &str, meta: &std::fs::Metadata, through_link: bool) -> bool {
        let id = (meta.dev(), meta.ino());
        if through_link {
            let target = std::fs::canonicalize(path);
            if target.is_ok_and(|target| self.options.in_scope(&self.real_root, &target)) {
                return false;
            }
        } else if meta.nlink() == 1 {
            return !self.seen_files.contains(&id);
        }
        self.seen_files.insert(id)
    }
}

impl Iterator for Walk<'_> {
    type Item = ScanItem;

    fn next(&mut self) -> Option<ScanItem> {
        loop {
            if let Some(found) = self.found.pop_front() {
                return Some(found);
            }
            let dir = self.open.last_mut()?;
            let Some((name, entry)) = dir.entries.next() else {
                self.open.pop();
                continue;
            };
            if let Some(item) = self.visit(name, entry) {
                return Some(item);
            }
        }
    }
}

/// What orders the entries of a directory: the name, and a `/` after a directory's (a link
/// to one included), so that the depth-first walk yields paths in the byte order of their
/// whole text, the order the catalog keeps its rows in (`a-b.txt`, `a.txt`, then `a/x.txt`:
/// `-` and `.` come before `/`). A run reads the catalog's rows alongside the walk, in one
/// pass, because of it.
fn walk_order_key(entry: &std::fs::DirEntry) -> Vec<u8> {
    let mut key = entry.file_name().into_vec();
    let is_dir = match entry.file_type() {
        Ok(file_type) if file_type.is_symlink() => std::fs::metadata(entry.path()).is_ok_and(|meta| meta.is_dir()),
        Ok(file_type) => file_type.is_dir(),
        Err(_) => false,
    };
    if is_dir {
        key.push(b'/');
    }
    key
}

/// A note for the symlink at `path` when it resolves outside `real_root`; `None` when it
/// stays inside (or no longer resolves, which the walk reports itself).
fn external_link(path: &Path, real_root: &Path) -> Option<ScanItem> {
    let target = std::fs::canonicalize(path).ok()?;
    if target.starts_with(real_root) {
        return None;
    }
    Some(ScanItem::Skipped {
        path_text: path.to_string_lossy().into_owned(),
        reason: format!(
            "symbolic link to {}, outside the root, not followed (--follow-external-links follows it)",
            target.display()
        ),
    })
}

fn problem(path: &Path, reason: impl Into<String>) -> ScanItem {
    ScanItem::Problem { path_text: path.to_string_lossy().into_owned(), reason: reason.into() }
}

fn unreadable(path: &Path, error: &std::io::Error) -> ScanItem {
    problem(path, format!("cannot read entry: {error}"))
}

/// Modification time in nanoseconds since the epoch (0 when the platform has none).
pub fn modified_ns(meta: &std::fs::Metadata) -> i64 {
    meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(root: &Path, options: &ScanOptions) -> Vec<String> {
        scan(root, options)
            .map(|item| match item {
                ScanItem::File(f) => f.path().strip_prefix(root).unwrap().to_string_lossy().into_owned(),
                ScanItem::Rejected { reason, .. } => format!("rejected: {reason}"),
                ScanItem::Problem { reason, .. } => format!("problem: {reason}"),
                ScanItem::Skipped { reason, .. } => format!("skipped: {reason}"),
                ScanItem::Filtered => "filtered".into(),
            })
            .filter(|item| item != "filtered")
            .collect()
    }

    #[test]
    fn keeps_wanted_extensions_and_skips_ignored_paths() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.txt", "b.MD", "c.rs", "skip/d.txt", "e.pdf"] {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        let options = ScanOptions::new(&[], &["skip/**".into()], false, false, false).unwrap();
        assert_eq!(files(dir.path(), &options), vec!["a.txt", "b.MD", "e.pdf"]);
        let only_txt = ScanOptions::new(&[".TXT".into()], &[], false, false, false).unwrap();
        assert_eq!(files(dir.path(), &only_txt), vec!["a.txt", "skip/d.txt"]);
    }

    #[test]
    fn paths_come_in_the_byte_order_of_their_text() {
        let dir = tempfile::tempdir().unwrap();
        let names = ["a/x.txt", "a.txt", "a-b.txt", "a b/y.txt", "a0.txt", "Z.txt", "é.txt", "a/b/c.txt", "a/b.txt"];
        for name in names {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        std::os::unix::fs::symlink(dir.path().join("a/b"), dir.path().join("a/b-link")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("a"), dir.path().join("a.link")).unwrap();
        let options = ScanOptions::new(&[], &[], false, false, false).unwrap();
        let walked: Vec<String> = scan(dir.path(), &options)
            .filter_map(|item| match item {
                ScanItem::File(file) => Some(file.path_text),
                _ => None,
            })
            .collect();
        let mut sorted = walked.clone();
        sorted.sort();
        assert_eq!(walked, sorted);
        assert_eq!(walked.len(), names.len(), "{walked:?}");
    }

    #[test]
    fn files_without_an_extension_are_candidates_unless_hidden() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["README", "a.txt", "notes.rst", "b.xyz", ".hidden", ".git/objects/ab/cdef", "sub/NEWS"] {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        let defaults = ScanOptions::new(&[], &[], false, false, false).unwrap();
        assert_eq!(files(dir.path(), &defaults), vec!["README", "a.txt", "notes.rst", "sub/NEWS"]);
        let filtered = scan(dir.path(), &defaults).filter(|item| matches!(item, ScanItem::Filtered)).count();
        assert_eq!(filtered, 3, "b.xyz, .hidden and the object under .git are counted as filtered");
        let sniffing = ScanOptions::new(&[], &[], false, true, false).unwrap();
        assert_eq!(files(dir.path(), &sniffing), vec!["README", "a.txt", "b.xyz", "notes.rst", "sub/NEWS"]);
        let explicit = ScanOptions::new(&["txt".into()], &[], false, false, false).unwrap();
        assert_eq!(files(dir.path(), &explicit), vec!["a.txt"], "an explicit filter takes no extensionless files");
        std::fs::write(dir.path().join("scan.TIF"), "x").unwrap();
        assert!(!files(dir.path(), &defaults).contains(&"scan.TIF".to_string()), "images only when OCR reads them");
        let with_images = ScanOptions::new(&[], &[], false, false, true).unwrap();
        assert!(files(dir.path(), &with_images).contains(&"scan.TIF".to_string()));
        assert!(defaults.in_scope(dir.path(), &dir.path().join("sub/NEWS")));
        assert!(!defaults.in_scope(dir.path(), &dir.path().join(".git/HEAD")));
    }

    #[test]
    fn scope_follows_root_extensions_and_ignored_directories() {
        let options = ScanOptions::new(&["txt".into()], &["skip".into()], false, false, false).unwrap();
        let root = Path::new("/docs");
        assert!(options.in_scope(root, Path::new("/docs/a.txt")));
        assert!(options.in_scope(root, Path::new("/docs/sub/A.TXT")));
        assert!(!options.in_scope(root, Path::new("/docs/a.md")), "another extension");
        assert!(!options.in_scope(root, Path::new("/docs/skip/a.txt")), "under an ignored directory");
        assert!(!options.in_scope(root, Path::new("/docs2/a.txt")), "outside the root");
    }

    #[test]
    fn symlink_loops_and_bad_names_are_reported_not_fatal() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("sub/loop")).unwrap();
        std::fs::write(dir.path().join("sub/ok.txt"), "x").unwrap();
        std::fs::write(dir.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt")), "x").unwrap();
        let seen = files(dir.path(), &ScanOptions::new(&[], &[], false, false, false).unwrap());
        assert!(seen.contains(&"sub/ok.txt".to_string()), "{seen:?}");
        assert!(seen.iter().any(|s| s == "problem: symbolic link loop"), "{seen:?}");
        assert!(seen.iter().any(|s| s.starts_with("rejected: file name is not valid UTF-8")), "{seen:?}");
    }

    #[test]
    fn links_out_of_the_root_are_skipped_unless_asked_for() {
        use std::os::unix::fs::symlink;
        let (root, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::create_dir(outside.path().join("dir")).unwrap();
        std::fs::write(outside.path().join("dir/x.txt"), "x").unwrap();
        std::fs::write(outside.path().join("y.txt"), "y").unwrap();
        std::fs::write(outside.path().join("z.rs"), "z").unwrap();
        std::fs::write(root.path().join("a.txt"), "a").unwrap();
        symlink(outside.path().join("dir"), root.path().join("linked_dir")).unwrap();
        symlink(outside.path().join("y.txt"), root.path().join("linked_file.txt")).unwrap();
        symlink(outside.path().join("z.rs"), root.path().join("unwanted.rs")).unwrap();

        let seen = files(root.path(), &ScanOptions::new(&[], &[], false, false, false).unwrap());
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert_eq!(seen[0], "a.txt");
        let note = |target: &Path| {
            format!(
                "skipped: symbolic link to {}, outside the root, not followed (--follow-external-links follows it)",
                target.canonicalize().unwrap().display()
            )
        };
        assert_eq!(seen[1], note(&outside.path().join("dir")), "a directory link is noted once, not per file");
        assert_eq!(seen[2], note(&outside.path().join("y.txt")));

        let followed = files(root.path(), &ScanOptions::new(&[], &[], true, false, false).unwrap());
        assert_eq!(followed, vec!["a.txt", "linked_dir/x.txt", "linked_file.txt"]);
    }

    #[test]
    fn a_file_reached_through_links_inside_the_root_comes_once() {
        use std::os::unix::fs::symlink;
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("real/sub")).unwrap();
        std::fs::write(root.path().join("real/a.txt"), "a").unwrap();
        std::fs::write(root.path().join("real/sub/b.txt"), "b").unwrap();
        symlink(root.path().join("real/a.txt"), root.path().join("real/a_link.txt")).unwrap();
        symlink(root.path().join("real"), root.path().join("alias")).unwrap();
        let seen = files(root.path(), &ScanOptions::new(&[], &[], false, false, false).unwrap());
        assert_eq!(seen, vec!["real/a.txt", "real/sub/b.txt"], "each under its own path, not a link's");
    }

    #[test]
    fn a_file_reached_only_through_links_or_hard_links_comes_once_under_its_first_path() {
        use std::os::unix::fs::symlink;
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("skipped")).unwrap();
        std::fs::create_dir_all(root.path().join("m")).unwrap();
        std::fs::write(root.path().join("skipped/c.txt"), "c").unwrap();
        std::fs::write(root.path().join("m/d.txt"), "d").unwrap();
        std::fs::hard_link(root.path().join("m/d.txt"), root.path().join("b-hard.txt")).unwrap();
        // The walk does not look in `skipped` by itself: the links to it lead there twice.
        symlink(root.path().join("skipped"), root.path().join("a-link")).unwrap();
        symlink(root.path().join("skipped/c.txt"), root.path().join("c-link.txt")).unwrap();
        let options = ScanOptions::new(&[], &["skipped".to_string()], false, false, false).unwrap();
        let seen = files(root.path(), &options);
        assert_eq!(seen, vec!["a-link/c.txt", "b-hard.txt"], "each under the first path walked");
    }
}
