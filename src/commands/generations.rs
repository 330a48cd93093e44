//! # `ingest rollback` and `ingest gc`
//!
//! `rollback`: in, [`Settings`]; out, [`RolledBack`]: the collection's name serving again
//! the generation that was live before the live one. `gc`: in, [`Settings`] and whether only
//! to say; out, the [`Collected`] generations: every one no longer served (`previous`),
//! deleted with its collection, its parquet copy and its catalog rows. Both hold the
//! collection's locks, as a run does.

use anyhow::Result;

use crate::generations::{self, Collected, RolledBack};
use crate::settings::Settings;
use crate::workspace::Workspace;

/// Serves the previous generation again.
pub async fn rollback(settings: &Settings) -> Result<RolledBack> {
    generations::rollback(&Workspace::exclusive(settings).await?).await
}

/// Deletes the generations no longer served, or, with `dry_run`, says which it would.
pub async fn gc(settings: &Settings, dry_run: bool) -> Result<Vec<Collected>> {
    generations::gc(&Workspace::exclusive(settings).await?, dry_run).await
}
