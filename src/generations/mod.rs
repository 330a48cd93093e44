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
//! check of its catalog rows, its collection and its parquet copy finds them in sync, and
//! every file the live generation serves is completed in it too. A file that failed in it,
//! one left parked or unfinished, and one its runs never indexed (another directory, a
//! narrower `--extension`) each keep the switch from happening: the run lists them, and
//! `ingest switch --generation N --confirm` switches without them when that is wanted. The
//! catalog's pointer moves first, in one transaction: it is what `ingest search` reads. On a Qdrant server the
//! alias follows in one `update_aliases` call, so every client of the alias moves at once; a
//! run that finds the alias behind the catalog (a crash between the two) sets it again.
//!
//! On a Qdrant server the collection's name is an alias ([`name`]): of `<collection>-g1`
//! from the first run, or, for a collection indexed before generations, once its first switch
//! has moved generation 1 out of the name.

use anyhow::{bail, Context, Result};
use serde::Serialize;

use std::collections::HashMap;

use crate::catalog::{
    live_generation, FileRow, FileStatus, GenerationRecipe, GenerationRow, GenerationState, JobStatus,
};
use crate::consistency;
use crate::model::{self, ModelInfo};
use crate::pipeline::{FailedFile, JobReport, RunStatus};
use crate::workspace::{generations_of, open_store, Workspace};

pub mod name;

pub use name::Moved;

/// Enters the generation a run with `recipe` writes to. Returns whether it is one beside
/// the live generation, which the run must not touch. A dry run records nothing: where a
/// run would start a new generation, it enters that generation as it would be, empty.
pub async fn enter_for_run(workspace: &mut Workspace, recipe: &GenerationRecipe, dry_run: bool) -> Result<bool> {
    if !dry_run && name::move_pending(workspace).await? {
        // A move out of the name that a crash interrupted is finished before anything is written.
        name::free_the_name(workspace).await?;
    }
    let generations = generations_of(workspace.named()).await?;
    let next = generations.last().map_or(1, |g| g.number + 1);
    let (named, naming) = (workspace.named().clone(), workspace.store_naming());
    let add = async |state| match dry_run {
        true => Ok(named.planned_generation(next, recipe, naming)),
        false => named.add_generation(recipe, state, naming).await,
    };
    let Some(live) = live_generation(&generations) else {
        let first = add(GenerationState::Live).await?;
        workspace.enter(first).await?;
        if !dry_run {
            name::name_the_live(workspace).await?;
        }
        return Ok(false);
    };
    if !dry_run {
        name::align_alias(workspace).await?;
    }
    if live.recipe.same_vectors(recipe) {
        workspace.enter(live.clone()).await?;
        if !dry_run {
            name::name_the_live(workspace).await?;
        }
        return Ok(false);
    }
    let resumed = generations.iter().rev().find(|g| g.state != GenerationState::Live && g.recipe.same_vectors(recipe));
    let beside = match resumed {
        Some(generation) => generation.clone(),
        None => add(GenerationState::Building).await?,
    };
    workspace.enter_beside(beside, &live.store_collection).await?;
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
    /// The files the live generation serves that it lacks, when that is why.
    #[serde(skip_serializing_if = "Missing::is_empty")]
    pub missing: Missing,
    /// The move of generation 1 out of the collection's name that its switch made first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved: Option<Moved>,
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
            missing: Missing::default(),
            moved: None,
        }
    }
}

/// The files a generation would stop serving if it replaced the live one: each completed in
/// the live generation and not completed in it, by why.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Missing {
    /// Failed in the new generation (over `--max-file-chunks` with its shorter chunks, say),
    /// with the reason.
    pub failed: Vec<FailedFile>,
    /// Known to the new generation but not finished: parked by workers, or left pending.
    pub unfinished: Vec<String>,
    /// Never indexed into it: outside the directories its runs covered, or left out by their
    /// `--extension` or `--ignore`.
    pub absent: Vec<String>,
}

impl Missing {
    pub fn is_empty(&self) -> bool {
        self.failed.is_empty() && self.unfinished.is_empty() && self.absent.is_empty()
    }

    pub fn len(&self) -> usize {
        self.failed.len() + self.unfinished.len() + self.absent.len()
    }

    /// Each file, with why it is missing.
    pub fn by_file(&self) -> Vec<FailedFile> {
        let with = |paths: &[String], reason: &str| {
            paths.iter().map(|path| FailedFile { path: path.clone(), reason: reason.to_string() }).collect::<Vec<_>>()
        };
        let failed =
            self.failed.iter().map(|f| FailedFile { path: f.path.clone(), reason: format!("failed: {}", f.reason) });
        failed
            .chain(with(&self.unfinished, "parked or unfinished"))
            .chain(with(&self.absent, "never indexed into it"))
            .collect()
    }

    /// One sentence without its subject (`lacks N files …`): how many, by why, with an
    /// example of each.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(first) = self.failed.first() {
            parts.push(format!("{} failed in it (such as {}: {})", self.failed.len(), first.path, first.reason));
        }
        if let Some(first) = self.unfinished.first() {
            parts.push(format!("{} parked or unfinished (such as {first})", self.unfinished.len()));
        }
        if let Some(first) = self.absent.first() {
            parts.push(format!(
                "{} never indexed into it, outside the directories its runs covered or left out by their filters (such \
                 as {first})",
                self.absent.len()
            ));
        }
        format!("lacks {} files the live generation serves: {}", self.len(), parts.join("; "))
    }
}

/// What `generation`'s catalog lacks of the files `live`'s serves.
pub async fn missing_from(workspace: &Workspace, generation: &GenerationRow, live: &GenerationRow) -> Result<Missing> {
    let named = workspace.named();
    let built: HashMap<String, FileRow> = named
        .collection(&generation.name)
        .files_in_any_order()
        .await?
        .into_iter()
        .map(|f| (f.path.clone(), f))
        .collect();
    let mut missing = Missing::default();
    for served in named.collection(&live.name).files_in_any_order().await? {
        if served.status() != FileStatus::Completed {
            continue;
        }
        match built.get(&served.path) {
            None => missing.absent.push(served.path),
            Some(file) => match file.status() {
                FileStatus::Completed => {}
                FileStatus::Failed => missing.failed.push(FailedFile {
                    path: served.path,
                    reason: file.error.clone().unwrap_or_else(|| "failed".to_string()),
                }),
                _ => missing.unfinished.push(served.path),
            },
        }
    }
    for list in [&mut missing.unfinished, &mut missing.absent] {
        list.sort();
    }
    missing.failed.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(missing)
}

/// Why a generation built beside the live one is not ready to serve, or `None` when it is:
/// see the module's documentation. What it lacks of the live generation goes into `missing`.
pub async fn not_ready(workspace: &Workspace, report: &JobReport, missing: &mut Missing) -> Result<Option<String>> {
    let generation = workspace.generation().context("a run's generation")?;
    if report.status != RunStatus::Job(JobStatus::Completed) {
        return Ok(Some(format!("its job ended {}; the next run with this model resumes it", report.status)));
    }
    if let Some(unsynced) = out_of_sync(workspace, generation).await? {
        return Ok(Some(unsynced));
    }
    let generations = workspace.named().generations().await?;
    let Some(live) = live_generation(&generations) else {
        return Ok(None);
    };
    *missing = missing_from(workspace, generation, live).await?;
    Ok((!missing.is_empty()).then(|| {
        format!(
            "it {}; run `ingest DIR` with this model over them, or switch without them with `ingest switch --generation \
             {} --confirm`",
            missing.summary(),
            generation.number
        )
    }))
}

/// Why `generation` (the one `workspace` works on) is out of sync, from a full check of its
/// catalog rows, its collection and its parquet copy; `None` when they agree.
async fn out_of_sync(workspace: &Workspace, generation: &GenerationRow) -> Result<Option<String>> {
    let dim = generation.recipe.vector_dim as usize;
    let (catalog, index, dir) = (workspace.catalog(), workspace.index().as_ref(), workspace.parquet_dir());
    let health = consistency::verify(catalog, index, dir, dim, false, None).await?.0;
    Ok((!health.is_clean()).then(|| {
        format!(
            "its check found it out of sync ({} missing, {} orphan, {} stale points); run `ingest verify \
             --generation {} --repair`, then run again",
            health.missing_points, health.orphan_points, health.stale_points, generation.number
        )
    }))
}

/// What a switch did.
#[derive(Debug, Clone, Default)]
pub struct Served {
    /// The generation that was live before, if another.
    pub replaced: Option<i64>,
    /// The move of generation 1 out of the collection's name, made first.
    pub moved: Option<Moved>,
}

/// Makes the collection's name serve generation `number`: on a Qdrant server, a generation
/// still stored under the name is moved out of it first; then the catalog's pointer moves,
/// then the alias.
pub async fn switch(workspace: &Workspace, number: i64) -> Result<Served> {
    let moved = name::free_the_name(workspace).await?;
    let generations = workspace.named().generations().await?;
    let was_live = live_generation(&generations).map(|g| g.number);
    let to = generations.iter().find(|g| g.number == number).context("the generation to switch to")?;
    workspace.ensure_locks_held().await?;
    workspace.named().set_live_generation(number).await?;
    crate::kill_point::kill_point("switch:pointer");
    workspace.ensure_locks_held().await?;
    open_store(workspace.settings(), &to.store_collection).await?.serve_as(&workspace.settings().collection).await?;
    Ok(Served { replaced: was_live.filter(|&n| n != number), moved })
}

/// What `ingest switch --generation N` found and did.
#[derive(Debug, Clone, Serialize)]
pub struct Switched {
    pub collection: String,
    pub generation: i64,
    pub model: String,
    /// Whether the collection's name serves it now.
    pub switched: bool,
    /// The generation served before, now `previous`.
    pub replaced: Option<i64>,
    /// What it lacks of the live generation: served no more after the switch.
    pub missing: Missing,
    /// The move of generation 1 out of the collection's name, made first.
    pub moved: Option<Moved>,
}

/// Makes the collection's name serve the generation `workspace` works on (`--generation N`),
/// an operator's switch: its catalog rows, collection and parquet copy must agree, and when it
/// lacks files the live generation serves, it switches only with `confirm`, the operator's
/// word that those files may go out of search.
pub async fn switch_asked(workspace: &Workspace, confirm: bool) -> Result<Switched> {
    let collection = workspace.settings().collection.clone();
    let Some(number) = workspace.settings().generation else {
        bail!("ingest switch needs --generation N, the generation to serve; `ingest status` lists them");
    };
    let generation = workspace.generation().context("the generation to switch to")?.clone();
    let mut switched = Switched {
        collection,
        generation: number,
        model: generation.recipe.model_id.clone(),
        switched: false,
        replaced: None,
        missing: Missing::default(),
        moved: None,
    };
    let generations = workspace.named().generations().await?;
    let live = live_generation(&generations);
    if live.is_some_and(|live| live.number == number) {
        bail!("generation {number} is already the live one of collection {:?}", switched.collection);
    }
    if !workspace.index().exists().await? {
        bail!(
            "generation {number}'s collection {:?} is not in the store; run `ingest restore --generation {number}` to \
             rebuild it from its parquet copy first",
            generation.store_collection
        );
    }
    if let Some(unsynced) = out_of_sync(workspace, &generation).await? {
        bail!("generation {number} cannot serve yet: {unsynced}");
    }
    if let Some(live) = live {
        switched.missing = missing_from(workspace, &generation, live).await?;
    }
    if switched.missing.is_empty() || confirm {
        let served = switch(workspace, number).await?;
        (switched.replaced, switched.moved) = (served.replaced, served.moved);
        switched.switched = true;
    }
    Ok(switched)
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
    let was_live = switch(workspace, to.number).await?.replaced;
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

/// Deletes every `previous` generation, or with `--generation N` that one generation when it
/// is not live (an abandoned build among them): its collection, its parquet copy, then its
/// catalog rows (so that an interrupted gc leaves rows that a second one finishes). With
/// `dry_run`, only says which. On a Qdrant server the alias is first aligned with the live
/// generation, so that gc never drops the collection the alias names.
pub async fn gc(workspace: &Workspace, dry_run: bool) -> Result<Vec<Collected>> {
    let generations = generations_of(workspace.named()).await?;
    let asked = workspace.settings().generation;
    if let Some(live) = live_generation(&generations) {
        if asked == Some(live.number) {
            bail!(
                "generation {} is the live one of collection {:?}; switch to another (`ingest rollback`) before deleting it",
                live.number,
                workspace.settings().collection
            );
        }
        if !dry_run {
            name::align_alias(workspace).await?;
        }
    }
    let doomed = |g: &GenerationRow| match asked {
        Some(number) => g.number == number,
        None => g.state == GenerationState::Previous,
    };
    let mut collected = Vec::new();
    for generation in generations.iter().filter(|g| doomed(g)) {
        let (files, points) = workspace.named().collection(&generation.name).completed_counts().await?;
        if !dry_run {
            workspace.ensure_locks_held().await?;
            open_store(workspace.settings(), &generation.store_collection).await?.drop_collection().await?;
            let dir = workspace.parquet_dir_of(generation);
            match std::fs::remove_dir_all(&dir) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    return Err(error).with_context(|| format!("deleting the parquet copy {}", dir.display()));
                }
                _ => {}
            }
            workspace.named().delete_generation(generation).await?;
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
