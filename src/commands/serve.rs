//! # `ingest serve`
//!
//! In: [`Settings`] and the service's options as given ([`ServeCommand`]: the address, the
//! file holding the token, the bounds). Out: the search service ([`crate::serve`]) running
//! until SIGINT or SIGTERM, then `Ok`: requests in flight are answered first.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::serve::ServeOptions;
use crate::settings::{in_range, Settings, DAY_SECONDS, MAX_PROCESSES};

/// The most searches `--queue` may let run at once.
const MOST_SEARCHES_AT_ONCE: usize = 100_000;

/// `ingest serve`'s options, before the token is read.
#[derive(Debug, Clone)]
pub struct ServeCommand {
    pub options: ServeOptions,
    /// The file holding the bearer token requests must carry.
    pub token_file: Option<PathBuf>,
}

/// Serves until a signal; `listening` hears the address once requests can arrive.
pub async fn serve(settings: &Settings, command: ServeCommand, listening: impl FnOnce(SocketAddr)) -> Result<()> {
    let mut options = command.options;
    in_range("queue", options.queue, 1..=MOST_SEARCHES_AT_ONCE)?;
    in_range("timeout", options.timeout.as_secs_f64(), 0.001..=DAY_SECONDS)?;
    in_range("model-threads", options.model_threads, 1..=MAX_PROCESSES)?;
    if let Some(file) = &command.token_file {
        let token = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read --token-file {}", file.display()))?
            .trim()
            .to_string();
        if token.is_empty() {
            bail!("--token-file {} is empty; write the token in it", file.display());
        }
        options.token = Some(token);
    }
    let shutdown = async {
        let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    crate::serve::serve(settings, options, listening, shutdown).await
}
