//! # Exit codes
//!
//! How a command ended → the process's exit code. Every code `ingest` exits with is
//! numbered here, and only here; the README's "Exit codes" table lists the same.

use crate::lock::Busy;

/// How a command ended, as its exit code tells the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every file succeeded, or there was nothing to do but report (a dry run, `--help`).
    Ok,
    /// The command could not run or stopped: bad flags, a missing directory or model, a
    /// store error, too many vanished files to delete, a worker's error, a failed `check`.
    Failed,
    /// The job finished, but some files failed, could not be checked or were parked, or its
    /// end check found a disagreement; `verify` found the index out of sync, or `restore`
    /// skipped parquet files it could not read.
    FilesNeedAttention,
    /// Another run holds the collection.
    Busy,
    /// Cancelled by SIGINT or SIGTERM; the next run resumes.
    Cancelled,
}

impl Exit {
    /// The process's exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failed => 1,
            Exit::FilesNeedAttention => 2,
            Exit::Busy => 3,
            Exit::Cancelled => 130,
        }
    }

    /// A command that ended in `error`: [`Exit::Busy`] when another run holds the
    /// collection, [`Exit::Failed`] otherwise.
    pub fn of_error(error: &anyhow::Error) -> Exit {
        if error.downcast_ref::<Busy>().is_some() {
            Exit::Busy
        } else {
            Exit::Failed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones() {
        let codes: Vec<u8> =
            [Exit::Ok, Exit::Failed, Exit::FilesNeedAttention, Exit::Busy, Exit::Cancelled].map(Exit::code).into();
        assert_eq!(codes, [0, 1, 2, 3, 130]);
    }

    #[test]
    fn a_busy_collection_is_told_apart_from_other_errors() {
        assert_eq!(Exit::of_error(&Busy("documents".into()).into()), Exit::Busy);
        assert_eq!(Exit::of_error(&anyhow::anyhow!("the store is down")), Exit::Failed);
        assert_eq!(Exit::of_error(&anyhow::Error::from(Busy("documents".into())).context("opening")), Exit::Busy);
    }
}
