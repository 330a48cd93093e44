//! # `ingest switch`, `ingest rollback` and `ingest gc`
//!
//! `switch`: in, [`Settings`] (with `--generation N`) and the operator's confirmation; out,
//! [`Switched`]: generation N served, or the files it lacks of the live generation.
//! `rollback`: in, [`Settings`]; out, [`RolledBack`]: the collection's name serving again
//! the generation that was live before the live one. `gc`: in, [`Settings`] and whether only
//! to say; out, the [`Collected`] generations: every one no longer served (`previous`), or
//! the one `--generation N` names when it is not live (an abandoned build), deleted with its
//! collection, its parquet copy and its catalog rows. Both hold the
//! collection's locks, as a run does.

use anyhow::Result;

use crate::generations::{self, Collected, RolledBack, Switched};
use crate::settings::Settings;
use crate::workspace::Workspace;

/// Serves generation `--generation N`, when it lacks nothing the live one serves or `confirm`.
pub async fn switch(settings: &Settings, confirm: bool) -> Result<Switched> {
    generations::switch_asked(&Workspace::exclusive(settings).await?, confirm).await
}

/// Serves the previous generation again.
pub async fn rollback(settings: &Settings) -> Result<RolledBack> {
    generations::rollback(&Workspace::exclusive(settings).await?).await
}

/// Deletes the generations no longer served, or, with `dry_run`, says which it would.
pub async fn gc(settings: &Settings, dry_run: bool) -> Result<Vec<Collected>> {
    generations::gc(&Workspace::exclusive(settings).await?, dry_run).await
}
