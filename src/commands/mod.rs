//! # Commands
//!
//! In: validated [`Settings`](crate::settings::Settings) and a command's own options. Out: what
//! the command found or did, as a typed outcome, for [`crate::output`] to print and the
//! `ingest` binary to turn into an exit code. Each command wires the catalog, the vector
//! store and the model together ([`crate::workspace`]) and checks what it was given before it
//! takes any lock.
//!
//! One file per command: `run` (`ingest DIR`), `worker`, `search`, `status`, `check`,
//! `migrate`, `export`, `models` and `serve`; `consistency` holds `restore` and `verify`, and
//! `generations` holds `switch`, `rollback` and `gc`. Here: the signal
//! handling of the commands that can be cancelled.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

mod check;
mod consistency;
mod export;
mod generations;
mod migrate;
mod models;
mod run;
mod search;
mod serve;
mod status;
mod worker;

pub use check::{check, CheckReport};
pub use consistency::{restore, verify, Restored, VerifyReport};
pub use export::{export, Exported};
pub use generations::{gc, rollback, switch};
pub use migrate::{migrate, Migrated};
pub use models::{models, Models};
pub use run::run;
pub use search::search;
pub use serve::{serve, ServeCommand};
pub use status::{status, GenerationStatus, Status};
pub use worker::worker;

/// The status a process stopped at once by a second signal exits with, the same as a
/// cancelled job's (the `ingest` binary's table of exit codes has it).
pub const CANCELLED_EXIT_CODE: u8 = 130;

/// Cancels the job on SIGINT or SIGTERM: stages stop taking new work and in-flight commits
/// finish. A second signal ends the process at once ([`CANCELLED_EXIT_CODE`]); the catalog's
/// rows say where the next run resumes, and extractor processes die with this one.
fn cancel_on_signals() -> Arc<AtomicBool> {
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return,
        };
        let mut signal = async || {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        signal().await;
        eprintln!(
            "ingest: stopping after the work in flight (signal again to stop at once); the next run resumes from here"
        );
        flag.store(true, Ordering::SeqCst);
        signal().await;
        eprintln!("ingest: stopped at once; the next run resumes from here");
        std::process::exit(CANCELLED_EXIT_CODE.into());
    });
    cancel
}
