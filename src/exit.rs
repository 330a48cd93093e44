//! # Exit codes
//!
//! A command's outcome (or its error) → the process's exit code. The library reports what
//! happened; this edge of the binary alone decides the numbers. Every code `ingest` exits
//! with is numbered here, and only here; the README's "Exit codes" table lists the same.

use ingest::catalog::JobStatus;
use ingest::commands::CANCELLED_EXIT_CODE;
use ingest::lock::Busy;
use ingest::output::StdoutClosed;
use ingest::pipeline::worker::WorkerReport;
use ingest::pipeline::{JobReport, RunStatus};

/// How a command ended, as its exit code tells the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every file succeeded, or there was nothing to do but report (a dry run, `--help`), or
    /// the reader of the output went away before the end (`ingest status | head -1`).
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
            Exit::Cancelled => CANCELLED_EXIT_CODE,
        }
    }

    /// A command that ended in `error`: [`Exit::Busy`] when another run holds the
    /// collection, [`Exit::Ok`] when standard output's reader closed it, [`Exit::Failed`]
    /// otherwise.
    pub fn of_error(error: &anyhow::Error) -> Exit {
        if error.downcast_ref::<Busy>().is_some() {
            Exit::Busy
        } else if error.downcast_ref::<StdoutClosed>().is_some() {
            Exit::Ok
        } else {
            Exit::Failed
        }
    }

    /// A run: [`Exit::Ok`] when every file succeeded (or for a dry run);
    /// [`Exit::FilesNeedAttention`] when the job finished but some files failed, some could
    /// not be looked at, its end check found a disagreement or (queued for workers) some
    /// items were parked; [`Exit::Failed`] when the job itself did not finish, or refused to
    /// delete too many vanished files; [`Exit::Cancelled`] when it was cancelled.
    pub fn of_run(report: &JobReport) -> Exit {
        let needs_attention = !report.failed.is_empty()
            || !report.scan_problems.is_empty()
            || !report.not_checked.is_empty()
            || report.verified.as_ref().is_some_and(|v| !v.agree);
        let parked = report.queue.as_ref().is_some_and(|q| !q.parked.is_empty());
        match report.status {
            RunStatus::Job(JobStatus::Completed) | RunStatus::Queued if report.refused_deletes.is_some() => {
                Exit::Failed
            }
            RunStatus::DryRun => Exit::Ok,
            RunStatus::Job(JobStatus::Completed) | RunStatus::Queued if needs_attention || parked => {
                Exit::FilesNeedAttention
            }
            RunStatus::Job(JobStatus::Completed) | RunStatus::Queued => Exit::Ok,
            RunStatus::Job(JobStatus::Cancelled) => Exit::Cancelled,
            _ => Exit::Failed,
        }
    }

    /// A worker: [`Exit::Ok`], or [`Exit::Failed`] when it stopped on an error.
    pub fn of_worker(report: &WorkerReport) -> Exit {
        if report.error.is_some() {
            Exit::Failed
        } else {
            Exit::Ok
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
    fn a_busy_collection_and_a_closed_stdout_are_told_apart_from_other_errors() {
        assert_eq!(Exit::of_error(&Busy("documents".into()).into()), Exit::Busy);
        assert_eq!(Exit::of_error(&anyhow::anyhow!("the store is down")), Exit::Failed);
        assert_eq!(Exit::of_error(&anyhow::Error::from(Busy("documents".into())).context("opening")), Exit::Busy);
        assert_eq!(Exit::of_error(&StdoutClosed.into()), Exit::Ok);
        let dropped = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert_eq!(Exit::of_error(&anyhow::Error::from(dropped).context("talking to Qdrant")), Exit::Failed);
    }
}
