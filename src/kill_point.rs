//! # Kill points
//!
//! In: the name of a step that a crash test interrupts. Out: in builds with the
//! `fault-injection` feature (`scripts/test.sh` builds with it), the process killed with
//! SIGKILL right there when `INGEST_KILL_AT` names that step, as a power cut would; in any
//! other build, nothing.

/// Kills the process here when `INGEST_KILL_AT` is `step` (fault-injection builds only).
pub fn kill_point(step: &str) {
    #[cfg(feature = "fault-injection")]
    if std::env::var("INGEST_KILL_AT").is_ok_and(|at| at == step) {
        // SAFETY: kill with this process's own id and a valid signal number.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
    #[cfg(not(feature = "fault-injection"))]
    let _ = step;
}
