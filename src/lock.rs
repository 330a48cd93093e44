//! # Run lock
//!
//! In: a directory of lock files and a collection. Out: a [`RunLock`] held for the life of a run,
//! or [`Busy`] when another run holds it. The lock is an advisory `flock` on
//! `<data dir>/locks/<collection>.lock` ([`File::try_lock`]), released when the file is closed,
//! which the kernel does even when the holder is killed, so a crash never leaves a stale lock
//! behind. With a PostgreSQL catalog, runs on other machines are kept out by a session
//! advisory lock as well ([`crate::catalog::CollectionCatalog::lock_collection`]).

use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result};

/// Another run holds the collection.
#[derive(Debug, thiserror::Error)]
#[error("another ingest run is already working on collection {0:?}; wait for it to finish (or stop it) and retry")]
pub struct Busy(pub String);

/// Held while a run works on a collection.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    pub fn acquire(dir: &Path, collection: &str) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{collection}.lock"));
        let file = File::create(&path).with_context(|| format!("opening {}", path.display()))?;
        file.try_lock().map_err(|_| Busy(collection.to_string()))?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path(), "c").unwrap();
        let error = RunLock::acquire(dir.path(), "c").unwrap_err();
        assert!(error.downcast_ref::<Busy>().is_some(), "{error}");
        assert!(RunLock::acquire(dir.path(), "other").is_ok());
        drop(first);
        assert!(RunLock::acquire(dir.path(), "c").is_ok());
    }
}
