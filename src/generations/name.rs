//! # The collection's name on a Qdrant server
//!
//! In: a [`Workspace`] on a Qdrant server. Out: the collection's name kept an alias of the
//! live generation's store collection: set at the first run ([`name_the_live`]), set
//! right by every command that finds it behind the catalog ([`align_alias`],
//! [`check_alias`]), and, for a collection indexed before generations, freed once by moving
//! generation 1 out of it ([`free_the_name`]). The embedded engine has no aliases: there
//! the catalog's pointer is all there is, and each function here does nothing.
//!
//! A collection created on a server stores every generation as `<collection>-g<N>`,
//! generation 1 included, so no switch ever takes the name from the applications that
//! query it. A collection from before stores generation 1 under its own name, and an alias
//! cannot share a name with a collection: its first switch (or `ingest migrate`) copies
//! generation 1 into `<collection>-g1`, compares the copy point for point, drops the old
//! collection and gives its name to the alias. Each step is recorded in the catalog before
//! it is taken, so the next command finishes a move a crash interrupted; the moment the
//! name names nothing, between the drop and the alias, is measured and reported.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::catalog::{live_generation, GenerationMove, GenerationRow, MoveStep};
use crate::kill_point::kill_point;
use crate::lock::Busy;
use crate::store::{first_difference, for_each_page, upsert_in_batches, VectorIndex};
use crate::workspace::{open_store, open_store_like, Workspace};

/// The one-time move of a generation out of the collection's name.
#[derive(Debug, Clone, Serialize)]
pub struct Moved {
    pub generation: i64,
    pub from: String,
    pub to: String,
    /// Points copied and compared; 0 when a crash came after the copy was checked.
    pub points: u64,
    /// How long the name named no collection: from the drop of the old collection (by this
    /// process or one a crash stopped) to the alias.
    pub name_missing_seconds: f64,
    /// The step a crash had interrupted, which this move finished.
    pub resumed_from: Option<String>,
}

impl Moved {
    /// One line for the operator.
    pub fn summary(&self) -> String {
        let resumed = self.resumed_from.as_ref().map(|step| format!(", finishing a move stopped while {step}"));
        format!(
            "generation {} moved from collection {:?} into {:?} ({} points copied and compared point for point{}); \
             the name {:?} named no collection for {:.3} s, until the alias took it",
            self.generation,
            self.from,
            self.to,
            self.points,
            resumed.unwrap_or_default(),
            self.from,
            self.name_missing_seconds
        )
    }
}

fn on_server(workspace: &Workspace) -> bool {
    workspace.settings().qdrant_url.is_some()
}

/// Before a run writes to the live generation (the first one included, just recorded): on a
/// server, creates its store collection if it is missing and makes the collection's name an
/// alias of it, so that a run killed in between leaves no collection without its name.
pub async fn name_the_live(workspace: &Workspace) -> Result<()> {
    let Some(live) = workspace.generation() else { return Ok(()) };
    if !on_server(workspace) || live.store_collection == workspace.settings().collection {
        return Ok(());
    }
    workspace.index().ensure_collection(live.recipe.vector_dim as usize).await?;
    align_alias(workspace).await
}

/// On a server, points the collection's name at the live generation's store collection if
/// it points elsewhere or nowhere (a switch interrupted between the catalog and the alias, a
/// collection rebuilt by `ingest restore`). Nothing when that collection is not in the store
/// (a restore brings it back, then names it). The caller holds the collection's locks.
pub async fn align_alias(workspace: &Workspace) -> Result<()> {
    let settings = workspace.settings();
    let generations = workspace.named().generations().await?;
    let Some(live) = live_generation(&generations).filter(|live| live.store_collection != settings.collection) else {
        return Ok(());
    };
    if !on_server(workspace) {
        return Ok(());
    }
    let name = open_store(settings, &settings.collection).await?;
    let named = name.aliased_to().await?;
    if named.as_deref() == Some(live.store_collection.as_str()) {
        return Ok(());
    }
    let store = open_store(settings, &live.store_collection).await?;
    if !store.exists().await? {
        return Ok(());
    }
    if named.is_none() && name.exists().await? {
        bail!(
            "the Qdrant server holds a collection named {:?}, which this catalog does not know: its name must be \
             the alias of generation {} ({:?}); move that collection away (or use another --collection)",
            settings.collection,
            live.number,
            live.store_collection
        );
    }
    workspace.ensure_locks_held().await?;
    store.serve_as(&settings.collection).await
}

/// For a command that only reads: whether the collection's name serves the live
/// generation, setting it right when it does not and no other process holds the
/// collection. `None` when all is well; else one sentence saying why it was left as it is.
pub async fn check_alias(workspace: &Workspace) -> Result<Option<String>> {
    let settings = workspace.settings();
    let generations = workspace.named().generations().await?;
    let Some(live) = live_generation(&generations).filter(|live| live.store_collection != settings.collection) else {
        return Ok(None);
    };
    if !on_server(workspace) {
        return Ok(None);
    }
    let named = open_store(settings, &settings.collection).await?.aliased_to().await?;
    if named.as_deref() == Some(live.store_collection.as_str()) {
        return Ok(None);
    }
    // Set right under the collection's locks, so that it never races a switch.
    match Workspace::exclusive(settings).await {
        Ok(locked) => {
            align_alias(&locked).await?;
            Ok(None)
        }
        Err(error) if error.downcast_ref::<Busy>().is_some() => Ok(Some(format!(
            "the name {:?} names {} on the Qdrant server, not generation {}'s {:?}, while another process holds the \
             collection; that process sets it right",
            settings.collection,
            named.map_or("no collection".to_string(), |c| format!("{c:?}")),
            live.number,
            live.store_collection
        ))),
        Err(error) => Err(error),
    }
}

/// On a server, moves each generation stored under the collection's own name into
/// `<collection>-g<number>` and gives the name to the alias; finishes a move a crash
/// interrupted. The caller holds the collection's locks. Returns the move, if one was made.
pub async fn free_the_name(workspace: &Workspace) -> Result<Option<Moved>> {
    let settings = workspace.settings();
    if !on_server(workspace) {
        return Ok(None);
    }
    let mut moved = None;
    for generation in workspace.named().generations().await? {
        if generation.store_collection == settings.collection {
            moved = move_out(workspace, &generation).await?.or(moved);
        }
    }
    Ok(moved)
}

/// Whether a move out of the collection's name was interrupted: the next command that
/// writes finishes it first.
pub async fn move_pending(workspace: &Workspace) -> Result<bool> {
    for generation in workspace.named().generations().await? {
        if workspace.named().generation_move(generation.number).await?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The recorded steps of one generation's move: see the module's documentation. `None` when
/// there was nothing to move: the name was an alias already, which the catalog now records.
async fn move_out(workspace: &Workspace, generation: &GenerationRow) -> Result<Option<Moved>> {
    let (settings, named) = (workspace.settings(), workspace.named());
    let number = generation.number;
    let target = format!("{}-g{number}", settings.collection);
    let pending = named.generation_move(number).await?;
    let mut moved = Moved {
        generation: number,
        from: settings.collection.clone(),
        to: target.clone(),
        points: 0,
        name_missing_seconds: 0.0,
        resumed_from: pending.as_ref().map(|m| m.step.as_str().to_string()),
    };
    let source = open_store(settings, &settings.collection).await?;
    // The name is an alias already: a crash came after the alias, before the catalog knew.
    if let Some(aliased) = source.aliased_to().await? {
        named.finish_move(number, &aliased).await?;
        moved.to = aliased;
        return Ok(pending.is_some().then_some(moved));
    }
    let gone_since = if source.exists().await? {
        let copy = open_store_like(settings, &target, Some(&settings.collection)).await?;
        // A copy checked before a crash is checked again, not made again: writes since
        // would show.
        if pending.as_ref().is_none_or(|m| m.step != MoveStep::Dropping) {
            named.record_move_step(number, &target, MoveStep::Copying).await?;
            kill_point("move:copying");
            copy_into(source.as_ref(), copy.as_ref(), generation).await?;
        }
        named.record_move_step(number, &target, MoveStep::Checking).await?;
        kill_point("move:checking");
        if let Some(difference) = first_difference(source.as_ref(), copy.as_ref()).await? {
            // Copied again from the start next time.
            named.record_move_step(number, &target, MoveStep::Copying).await?;
            bail!(
                "the copy of generation {number} into {target:?} is not the same as {:?}: {difference}; nothing was \
                 switched, run again",
                settings.collection
            );
        }
        moved.points = copy.count(None).await?;
        let dropping = named.record_move_step(number, &target, MoveStep::Dropping).await?;
        kill_point("move:dropping");
        workspace.ensure_locks_held().await?;
        source.drop_collection().await?;
        kill_point("move:dropped");
        (Instant::now(), dropping)
    } else {
        match pending {
            // Dropped by the process a crash stopped, which had checked the copy.
            Some(dropping @ GenerationMove { step: MoveStep::Dropping, .. }) => (Instant::now(), dropping),
            // Never copied, and gone from the store: nothing to move; `ingest restore` rebuilds
            // it under its new name from the parquet copy.
            _ => {
                named.finish_move(number, &target).await?;
                return Ok(None);
            }
        }
    };
    let (clock, dropping) = gone_since;
    // The alias first, then the catalog: a crash between the two leaves an alias that the
    // next command finds and records.
    let generations = named.generations().await?;
    let serving = match live_generation(&generations) {
        Some(live) if live.number != number => live.store_collection.clone(),
        _ => target.clone(),
    };
    workspace.ensure_locks_held().await?;
    open_store(settings, &serving).await?.serve_as(&settings.collection).await?;
    moved.name_missing_seconds = missing_for(&dropping, clock);
    kill_point("move:aliased");
    named.finish_move(number, &target).await?;
    Ok(Some(moved))
}

/// Points a copy writes in one request, and requests in flight.
const COPY_BATCH: usize = 4000;
const COPY_PARALLELISM: usize = 2;

/// Empties `copy`, lays it out as `source` and copies every point of `source` into it, as
/// stored: read a page at a time, written in parallel batches.
async fn copy_into(source: &dyn VectorIndex, copy: &dyn VectorIndex, generation: &GenerationRow) -> Result<()> {
    if copy.exists().await? {
        copy.drop_collection().await.with_context(|| format!("emptying {:?} before the copy", copy.collection()))?;
    }
    copy.ensure_collection(generation.recipe.vector_dim as usize).await?;
    let mut read = Vec::new();
    for_each_page(source, true, async |page| {
        read.extend(page);
        if read.len() >= COPY_BATCH * COPY_PARALLELISM {
            upsert_in_batches(copy, std::mem::take(&mut read), COPY_BATCH, COPY_PARALLELISM, |_| {}).await?;
        }
        Ok(())
    })
    .await?;
    upsert_in_batches(copy, read, COPY_BATCH, COPY_PARALLELISM, |_| {}).await
}

/// Seconds from the recorded drop (taken just before it) to now; `clock` measures this
/// process's part, the record's time a crashed process's.
fn missing_for(dropping: &GenerationMove, clock: Instant) -> f64 {
    let recorded = chrono::DateTime::parse_from_rfc3339(&dropping.step_at)
        .map(|at| (chrono::Utc::now() - at.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0)
        .unwrap_or(0.0);
    recorded.max(clock.elapsed().as_secs_f64())
}
