//! # Generations
//!
//! In: a run's [`GenerationRecipe`] (model and chunking) and the collection's [`Workspace`]. Out: the
//! generation the run writes to, and, once a generation built beside the live one is ready,
//! the switch that makes the collection's name serve it; for `ingest rollback` and
//! `ingest gc`, the switch back and the deletion of generations no longer served.
//!
//! A run whose model and chunking are the live generation's updates it in place, as always.
//! Any other run builds a generation beside it, and never writes or deletes a point of the
//! live one: a new generation, or the one already being built (or served before) with the
//! same model and chunking, which the run brings up to date. The first generation of a
//! collection is live from its first run: there is nothing to protect yet.
//!
//! The switch happens only when the new generation is ready: its job completed, a full
//! check of its catalog rows, its collection and its parquet copy finds them in sync, and it
//! holds every file the live one holds outside the run's directory (files the live one
//! holds under other directories need a run over those first). The catalog's pointer
//! moves first, in one transaction: it is what `ingest search` reads. On a Qdrant server the
//! alias follows in one `update_aliases` call, so every client of the alias moves at once; a
//! run that finds the alias behind the catalog (a crash between the two) sets it again.
//!
//! On a Qdrant server an alias cannot share its name with a collection, so a collection
//! indexed before generations (generation 1, stored under the collection's own name) is
//! copied, points and vectors as stored, into `<collection>-g1` before its first switch,
//! and the old collection is dropped just before the alias takes its name. Clients that
//! read the name directly see no collection for that moment, once.

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::catalog::{live_generation, FileStatus, GenerationRecipe, GenerationRow, GenerationState, JobStatus};
use crate::consistency;
use crate::model::{self, ModelInfo};
use crate::pipeline::{JobReport, RunStatus};
use crate::store::for_each_page;
use crate::workspace::{generations_of, open_store, Workspace};

/// Enters the generation a run with `recipe` writes to. Returns whether it is one beside
/// the live generation, which the run must not touch. A dry run records nothing: where a
/// run would start a new generation, it enters that generation as it would be, empty.
pub async fn enter_for_run(workspace: &mut Workspace, recipe: &GenerationRecipe, dry_run: bool) -> Result<bool> {
    let generations = generations_of(workspace.named()).await?;
    let next = generations.last().map_or(1, |g| g.number + 1);
    let named = workspace.named().clone();
    let add = async |state| match dry_run {
        true => Ok(named.planned_generation(next, recipe)),
        false => named.add_generation(recipe, state).await,
    };
    let Some(live) = live_generation(&generations) else {
        let first = add(GenerationState::Live).await?;
        workspace.enter(first).await?;
        return Ok(false);
    };
    if !dry_run {
        align_alias(workspace, live).await?;
    }
    if live.recipe.same_vectors(recipe) {
        workspace.enter(live.clone()).await?;
        return Ok(false);
    }
    let resumed = generations.iter().rev().find(|g| g.state != GenerationState::Live && g.recipe.same_vectors(recipe));
    let beside = match resumed {
        Some(generation) => generation.clone(),
        None => add(GenerationState::Building).await?,
    };
    workspace.enter(beside).await?;
    Ok(true)
}

/// The installed model that builds `generation`, or one sentence saying it is not installed.
pub fn installed_model(generation: &GenerationRow) -> Result<ModelInfo> {
    model::installed_with_id(&generation.recipe.model_id)?.with_context(|| {
        format!(
            "generation {} of collection {:?} is built by model {}, which is not installed here; install it \
             (scripts/setup.sh --models NAME) or give --model-dir its directory",
            generation.number, generation.collection, generation.recipe.model_id
        )
    })
}

/// What became of a generation a run built beside the live one.
#[derive(Debug, Clone, Serialize)]
pub struct BuiltBeside {
    pub number: i64,
    pub model: String,
    pub chunk_size: i64,
    pub chunk_overlap: i64,
    /// Runs over the tree after the build, each catching up with files changed during the
    /// one before, until one found nothing changed.
    pub catch_up_passes: usize,
    /// Files those runs added, updated or deleted.
    pub caught_up_files: u64,
    /// Whether the collection's name serves it now.
    pub live: bool,
    /// The generation served before the switch.
    pub replaced: Option<i64>,
    /// Why it does not serve yet.
    pub waiting: Option<String>,
}

impl BuiltBeside {
    /// Nothing done yet for `generation`.
    pub fn of(generation: &GenerationRow) -> Self {
        Self {
            number: generation.number,
            model: generation.recipe.model_id.clone(),
            chunk_size: generation.recipe.chunk_size,
            chunk_overlap: generation.recipe.chunk_overlap,
            catch_up_passes: 0,
            caught_up_files: 0,
            live: false,
            replaced: None,
            waiting: None,
        }
    }
}

/// Why a generation built beside the live one is not ready to serve, or `None` when it is:
/// see the module's documentation.
pub async fn not_ready(workspace: &Workspace, report: &JobReport, root: &str) -> Result<Option<String>> {
    let generation = workspace.generation().context("a run's generation")?;
    if report.status != RunStatus::Job(JobStatus::Completed) {
        return Ok(Some(format!("its job ended {}; the next run with this model resumes it", report.status)));
    }
    let dim = generation.recipe.vector_dim as usize;
    let (catalog, index, dir) = (workspace.catalog(), workspace.index().as_ref(), workspace.parquet_dir());
    let health = consistency::verify(catalog, index, dir, dim, false, None).await?.0;
    if !health.is_clean() {
        return Ok(Some(format!(
            "its check found it out of sync ({} missing, {} orphan, {} stale points); run `ingest verify \
             --generation {} --repair`, then run again",
            health.missing_points, health.orphan_points, health.stale_points, generation.number
        )));
    }
    let generations = workspace.named().generations().await?;
    let Some(live) = live_generation(&generations) else {
        return Ok(None);
    };
    let built: std::collections::HashSet<String> =
        workspace.catalog().files_in_any_order().await?.into_iter().map(|f| f.path).collect();
    let elsewhere: Vec<String> = workspace
        .named()
        .collection(&live.name)
        .files_in_any_order()
        .await?
        .into_iter()
        .filter(|f| f.status() == FileStatus::Completed)
        .map(|f| f.path)
        .filter(|path| !crate::pipeline::is_under(path, root) && !built.contains(path))
        .collect();
    Ok(elsewhere.first().map(|example| {
        format!(
            "the live generation also holds {} files outside this directory (such as {example}); run `ingest DIR` with \
             this model over the directories they are in, and the switch happens when the new generation holds them",
            elsewhere.len()
        )
    }))
}

/// Makes the collection's name serve generation `number`: the catalog's pointer, then, on a
/// Qdrant server, the alias. Returns the generation that was live before, if another.
pub async fn switch(workspace: &Workspace, number: i64) -> Result<Option<i64>> {
    free_the_name(workspace).await?;
    let generations = workspace.named().generations().await?;
    let was_live = live_generation(&generations).map(|g| g.number);
    let to = generations.iter().find(|g| g.number == number).context("the generation to switch to")?;
    workspace.named().set_live_generation(number).await?;
    open_store(workspace.settings(), &to.store_collection).await?.serve_as(&workspace.settings().collection).await?;
    Ok(was_live.filter(|&n| n != number))
}

/// On a Qdrant server, points the alias at the live generation if it points elsewhere (a
/// switch interrupted between the catalog and the alias).
async fn align_alias(workspace: &Workspace, live: &GenerationRow) -> Result<()> {
    if workspace.settings().qdrant_url.is_some() && live.store_collection != workspace.settings().collection {
        open_store(workspace.settings(), &live.store_collection)
            .await?
            .serve_as(&workspace.settings().collection)
            .await?;
    }
    Ok(())
}

/// On a Qdrant server, moves a generation stored under the collection's own name into
/// `<collection>-g<number>`, so that the alias can take the name: its points are copied as
/// stored (vectors and payloads, no model), a page at a time, counted, the old collection dropped, and the
/// catalog told. Each step can be repeated after a crash.
async fn free_the_name(workspace: &Workspace) -> Result<()> {
    let settings = workspace.settings();
    if settings.qdrant_url.is_none() {
        return Ok(());
    }
    for generation in workspace.named().generations().await? {
        if generation.store_collection != settings.collection {
            continue;
        }
        let moved_to = format!("{}-g{}", settings.collection, generation.number);
        let source = open_store(settings, &generation.store_collection).await?;
        if source.exists().await? {
            let target = open_store(settings, &moved_to).await?;
            target.ensure_collection(generation.recipe.vector_dim as usize).await?;
            // A page at a time: a collection need not fit in memory to be moved.
            for_each_page(source.as_ref(), true, async |page| target.upsert(page).await).await?;
            let (copied, stored) = (target.count(None).await?, source.count(None).await?);
            if copied != stored {
                bail!(
                    "copying generation {} into {moved_to} left {copied} of its {stored} points; nothing was switched, \
                     run again",
                    generation.number
                );
            }
            source.drop_collection().await?;
        }
        workspace.named().set_generation_store(generation.number, &moved_to).await?;
    }
    Ok(())
}

/// What `ingest rollback` did.
#[derive(Debug, Clone, Serialize)]
pub struct RolledBack {
    pub collection: String,
    /// The generation served now.
    pub live: i64,
    pub model: String,
    /// The generation served before, now `previous`.
    pub was_live: Option<i64>,
}

/// Makes the collection's name serve the generation that was live most recently before the
/// live one.
pub async fn rollback(workspace: &Workspace) -> Result<RolledBack> {
    let collection = &workspace.settings().collection;
    let generations = generations_of(workspace.named()).await?;
    let Some(to) =
        generations.iter().filter(|g| g.state == GenerationState::Previous).max_by(|a, b| a.live_at.cmp(&b.live_at))
    else {
        bail!("collection {collection:?} has no previous generation to roll back to; `ingest status` lists its generations");
    };
    if !open_store(workspace.settings(), &to.store_collection).await?.exists().await? {
        bail!(
            "generation {}'s collection {:?} is gone from the store; run `ingest restore --generation {}` to rebuild it \
             from its parquet copy, then roll back",
            to.number,
            to.store_collection,
            to.number
        );
    }
    let was_live = switch(workspace, to.number).await?;
    Ok(RolledBack { collection: collection.clone(), live: to.number, model: to.recipe.model_id.clone(), was_live })
}

/// One generation `ingest gc` deleted, or would delete.
#[derive(Debug, Clone, Serialize)]
pub struct Collected {
    pub number: i64,
    pub model: String,
    pub store_collection: String,
    pub files: u64,
    pub points: u64,
}

/// Deletes every `previous` generation: its collection, its parquet copy, then its catalog
/// rows (so that an interrupted gc leaves rows that a second one finishes). With `dry_run`,
/// only says which. The live generation and any being built are kept.
pub async fn gc(workspace: &Workspace, dry_run: bool) -> Result<Vec<Collected>> {
    let mut collected = Vec::new();
    for generation in generations_of(workspace.named()).await? {
        if generation.state != GenerationState::Previous {
            continue;
        }
        let (files, points) = workspace.named().collection(&generation.name).completed_counts().await?;
        if !dry_run {
            open_store(workspace.settings(), &generation.store_collection).await?.drop_collection().await?;
            let dir = workspace.parquet_dir_of(&generation);
            match std::fs::remove_dir_all(&dir) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    return Err(error).with_context(|| format!("deleting the parquet copy {}", dir.display()));
                }
                _ => {}
            }
            workspace.named().delete_generation(&generation).await?;
        }
        collected.push(Collected {
            number: generation.number,
            model: generation.recipe.model_id.clone(),
            store_collection: generation.store_collection.clone(),
            files,
            points,
        });
    }
    Ok(collected)
}
