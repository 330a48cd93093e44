//! # Scan
//!
//! In: a root directory and [`ScanOptions`] (extensions to keep, ignore globs).
//! Out: a stream of [`ScanItem`]s: every candidate file as a [`FileEntry`] (path, size,
//! mtime, extension; no content is read), and every entry that could not be walked as a
//! [`ScanItem::Problem`] with its reason.
//!
//! Symlinks are followed; loops, unreadable directories and non-UTF-8 names are reported
//! as problems, never fatal. Entries come out in a stable order (sorted by file name).

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{Context, Result};
use globset::{Glob, GlobSet, GlobSetBuilder};
use walkdir::WalkDir;

/// The extensions indexed when none are given.
pub const DEFAULT_EXTENSIONS: &[&str] = &["txt", "md", "markdown", "pdf", "docx"];

/// What to keep while walking.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Lower-case extensions without the dot.
    pub extensions: Vec<String>,
    /// Paths (relative to the root) matching any of these are skipped.
    pub ignore: GlobSet,
}

impl ScanOptions {
    pub fn new(extensions: &[String], ignore_globs: &[String]) -> Result<Self> {
        let mut builder = GlobSetBuilder::new();
        for pattern in ignore_globs {
            builder.add(Glob::new(pattern).with_context(|| format!("invalid --ignore glob {pattern:?}"))?);
        }
        let extensions = if extensions.is_empty() {
            DEFAULT_EXTENSIONS.iter().map(|e| e.to_string()).collect()
        } else {
            extensions.iter().map(|e| e.trim_start_matches('.').to_ascii_lowercase()).collect()
        };
        Ok(Self { extensions, ignore: builder.build().context("building --ignore globs")? })
    }
}

/// A candidate file, as seen by `stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// The path as walked (absolute when the root is absolute).
    pub path: PathBuf,
    /// The path as text: the catalog key and the `path` payload field.
    pub path_text: String,
    pub size: u64,
    /// Modification time in nanoseconds since the Unix epoch.
    pub modified_ns: i64,
    /// Lower-case extension without the dot.
    pub extension: String,
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
}

/// Walks `root` and yields its candidate files.
pub fn scan<'a>(root: &'a Path, options: &'a ScanOptions) -> impl Iterator<Item = ScanItem> + 'a {
    WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(move |entry| {
            let relative = entry.path().strip_prefix(root).unwrap_or(entry.path());
            relative.as_os_str().is_empty() || !options.ignore.is_match(relative)
        })
        .filter_map(move |entry| match entry {
            Err(error) => Some(walk_problem(&error)),
            Ok(entry) if !entry.file_type().is_file() => None,
            Ok(entry) => classify(entry.path(), options),
        })
}

fn walk_problem(error: &walkdir::Error) -> ScanItem {
    let path_text = error.path().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    let reason = if error.loop_ancestor().is_some() {
        "symbolic link loop".to_string()
    } else if let Some(io) = error.io_error() {
        format!("cannot read entry: {io}")
    } else {
        error.to_string()
    };
    ScanItem::Problem { path_text, reason }
}

fn classify(path: &Path, options: &ScanOptions) -> Option<ScanItem> {
    let extension = path.extension()?.to_string_lossy().to_ascii_lowercase();
    if !options.extensions.contains(&extension) {
        return None;
    }
    let Some(path_text) = path.to_str().map(str::to_owned) else {
        return Some(ScanItem::Rejected {
            path_text: path.to_string_lossy().into_owned(),
            extension,
            reason: "file name is not valid UTF-8; rename the file to index it".into(),
        });
    };
    match std::fs::metadata(path) {
        Ok(meta) => Some(ScanItem::File(FileEntry {
            path: path.to_path_buf(),
            path_text,
            size: meta.len(),
            modified_ns: modified_ns(&meta),
            extension,
        })),
        Err(error) => Some(ScanItem::Rejected { path_text, extension, reason: format!("cannot stat file: {error}") }),
    }
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
                ScanItem::File(f) => f.path.strip_prefix(root).unwrap().to_string_lossy().into_owned(),
                ScanItem::Rejected { reason, .. } => format!("rejected: {reason}"),
                ScanItem::Problem { reason, .. } => format!("problem: {reason}"),
            })
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
        let options = ScanOptions::new(&[], &["skip/**".into()]).unwrap();
        assert_eq!(files(dir.path(), &options), vec!["a.txt", "b.MD", "e.pdf"]);
        let only_txt = ScanOptions::new(&[".TXT".into()], &[]).unwrap();
        assert_eq!(files(dir.path(), &only_txt), vec!["a.txt", "skip/d.txt"]);
    }

    #[test]
    fn symlink_loops_and_bad_names_are_reported_not_fatal() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("sub/loop")).unwrap();
        std::fs::write(dir.path().join("sub/ok.txt"), "x").unwrap();
        std::fs::write(dir.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt")), "x").unwrap();
        let seen = files(dir.path(), &ScanOptions::new(&[], &[]).unwrap());
        assert!(seen.contains(&"sub/ok.txt".to_string()), "{seen:?}");
        assert!(seen.iter().any(|s| s == "problem: symbolic link loop"), "{seen:?}");
        assert!(seen.iter().any(|s| s.starts_with("rejected: file name is not valid UTF-8")), "{seen:?}");
    }
}
