//! # Workspace
//!
//! In: resolved [`Settings`]. Out: one collection's parts, opened together: the catalog
//! bound to its name (its generations and its locks), the generation a command works on
//! (`--generation N`, else the live one) with that generation's catalog rows, vector store
//! and parquet copy, and, for commands that change it, its locks ([`Workspace::exclusive`]).
//! This is the one place that lays out the data directory: `catalog.sqlite` (the embedded
//! catalog), `locks/<collection>.lock`, `parquet/<generation name>/` (unless
//! `--parquet-dir` puts the copies elsewhere, for workers on many machines), and the
//! embedded engine's own directory, which [`crate::store`] keeps.
//!
//! A collection indexed before generations existed has no `generations` rows: opening it
//! records its catalog rows and store collection as generation 1, live, with the model and
//! chunking of its latest job, and nothing is re-embedded or moved.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::catalog::{
    live_generation, Catalog, CollectionCatalog, CollectionLock, GenerationRecipe, GenerationRow, GenerationState,
    JobStatus, StoreNaming,
};
use crate::lock::RunLock;
use crate::parquet_copy::ParquetCopy;
use crate::settings::Settings;
use crate::store::VectorIndex;

/// One collection's catalog, and the generation a command works on: its catalog rows, its
/// store and its parquet copy, and the locks held on the collection.
pub struct Workspace {
    settings: Settings,
    /// The catalog bound to the collection's name: its generations, its locks.
    named: CollectionCatalog,
    /// The generation worked on; `None` for a collection that has never been run.
    generation: Option<GenerationRow>,
    /// The catalog bound to the generation's name: its files and jobs.
    catalog: CollectionCatalog,
    index: Arc<dyn VectorIndex>,
    parquet_dir: PathBuf,
    locks: Option<Locks>,
}

/// The locks that keep other runs off a collection: the data directory's lock file and,
/// with PostgreSQL, its advisory lock.
struct Locks {
    _file: RunLock,
    shared_catalog: Option<CollectionLock>,
}

impl Locks {
    /// The data directory's lock file, then, with PostgreSQL, the advisory lock of `named`;
    /// [`crate::lock::Busy`] when another process holds either.
    async fn take(settings: &Settings, named: &CollectionCatalog) -> Result<Self> {
        let file = RunLock::acquire(&settings.data_dir.join("locks"), &settings.collection)?;
        Ok(Self { _file: file, shared_catalog: named.lock_collection().await? })
    }
}

impl Workspace {
    /// Opens the collection's catalog and the generation asked for, taking no lock: for
    /// commands that only read.
    pub async fn open(settings: &Settings) -> Result<Self> {
        let named = open_catalog(settings).await?.collection(&settings.collection);
        Self::at(settings, named, None).await
    }

    /// Takes the collection's locks, then opens its catalog and the generation asked for,
    /// held by this process alone until dropped (or [`Self::release_locks`]). Where the
    /// vectors are to live is checked first, so that a wrong store layout is refused before
    /// any lock is taken.
    pub async fn exclusive(settings: &Settings) -> Result<Self> {
        settings.store_location().check()?;
        create_data_dir(settings)?;
        let named = open_catalog(settings).await?.collection(&settings.collection);
        let locks = Locks::take(settings, &named).await?;
        Self::at(settings, named, Some(locks)).await
    }

    async fn at(settings: &Settings, named: CollectionCatalog, locks: Option<Locks>) -> Result<Self> {
        let generations = generations_of(&named).await?;
        let generation = match settings.generation {
            Some(number) => Some(generations.into_iter().find(|g| g.number == number).with_context(|| {
                format!(
                    "collection {:?} has no generation {number}; `ingest status` lists its generations",
                    settings.collection
                )
            })?),
            None => live_generation(&generations).cloned(),
        };
        let name = generation.as_ref().map_or(settings.collection.as_str(), |g| g.name.as_str()).to_string();
        let store = generation.as_ref().map_or(settings.collection.as_str(), |g| g.store_collection.as_str());
        let index = open_store(settings, store).await?;
        Ok(Self {
            settings: settings.clone(),
            catalog: named.collection(&name),
            named,
            generation,
            index,
            parquet_dir: parquet_dir(settings, &name),
            locks,
        })
    }

    /// Works on `generation` from now on: its catalog rows, its store, its parquet copy.
    pub async fn enter(&mut self, generation: GenerationRow) -> Result<()> {
        self.enter_like(generation, None).await
    }

    /// Works on `generation`, built beside the live generation whose store collection is
    /// `live_store`: a collection created for it copies that one's layout.
    pub async fn enter_beside(&mut self, generation: GenerationRow, live_store: &str) -> Result<()> {
        self.enter_like(generation, Some(live_store)).await
    }

    async fn enter_like(&mut self, generation: GenerationRow, like: Option<&str>) -> Result<()> {
        self.index = open_store_like(&self.settings, &generation.store_collection, like).await?;
        self.catalog = self.named.collection(&generation.name);
        self.parquet_dir = parquet_dir(&self.settings, &generation.name);
        self.generation = Some(generation);
        Ok(())
    }

    /// How a new generation's store collection is named: behind the collection's name as an
    /// alias on a Qdrant server, under it in the embedded engine.
    pub fn store_naming(&self) -> StoreNaming {
        match self.settings.qdrant_url {
            Some(_) => StoreNaming::BehindAlias,
            None => StoreNaming::OwnNameFirst,
        }
    }

    /// The generation worked on; `None` until the collection's first run records one.
    pub fn generation(&self) -> Option<&GenerationRow> {
        self.generation.as_ref()
    }

    /// The catalog bound to the collection's name, which serves its generations.
    pub fn named(&self) -> &CollectionCatalog {
        &self.named
    }

    /// The catalog bound to the generation worked on.
    pub fn catalog(&self) -> &CollectionCatalog {
        &self.catalog
    }

    pub fn index(&self) -> &Arc<dyn VectorIndex> {
        &self.index
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The width of the generation's vectors; for a collection never run, the model's
    /// (`--model-dir`, else the default).
    pub fn vector_dim(&self) -> Result<usize> {
        match &self.generation {
            Some(generation) => Ok(generation.recipe.vector_dim as usize),
            None => Ok(crate::model::ModelInfo::load(self.settings.model_dir.as_deref())?.dim),
        }
    }

    /// The parquet copy, for vectors of `dim` dimensions.
    pub fn parquet(&self, dim: usize) -> ParquetCopy {
        ParquetCopy::at(self.parquet_dir.clone(), dim)
    }

    pub fn parquet_dir(&self) -> &Path {
        &self.parquet_dir
    }

    /// Where a generation's parquet copy lives.
    pub fn parquet_dir_of(&self, generation: &GenerationRow) -> PathBuf {
        parquet_dir(&self.settings, &generation.name)
    }

    /// PostgreSQL's lock on the collection, when this workspace holds it.
    pub fn collection_lock(&self) -> Option<&CollectionLock> {
        self.locks.as_ref().and_then(|locks| locks.shared_catalog.as_ref())
    }

    /// Lets other processes at the collection: a planner does, once its job is queued, so
    /// that workers can share it.
    pub fn release_locks(&mut self) {
        self.locks = None;
    }

    /// Takes the collection's locks again after [`Self::release_locks`]: a planner does before
    /// it switches generations, which is one process's alone. Workers that have finished the
    /// job let go of their shared lock within moments, so a busy collection is tried again for
    /// half a minute before [`crate::lock::Busy`] is returned.
    pub async fn lock_again(&mut self) -> Result<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match Locks::take(&self.settings, &self.named).await {
                Ok(locks) => {
                    self.locks = Some(locks);
                    return Ok(());
                }
                Err(error)
                    if error.downcast_ref::<crate::lock::Busy>().is_some() && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Confirms that this process still holds the collection's locks, immediately before a
    /// step that cannot be undone (a switch, a drop): PostgreSQL's lock can be lost with its
    /// connection during a copy that takes hours. A workspace that took no lock has none to
    /// lose, and neither has the embedded catalog, whose lock file holds for the process.
    pub async fn ensure_locks_held(&self) -> Result<()> {
        match self.collection_lock() {
            Some(lock) => lock.ensure_held().await,
            None => Ok(()),
        }
    }
}

/// The collection's generations, oldest first. A collection indexed before generations,
/// which has jobs but no generations, is recorded as generation 1, live, with the model and
/// chunking of its latest completed job (or its latest job).
pub async fn generations_of(named: &CollectionCatalog) -> Result<Vec<GenerationRow>> {
    let generations = named.generations().await?;
    if !generations.is_empty() {
        return Ok(generations);
    }
    let jobs = named.jobs(50).await?;
    let Some(job) = jobs.iter().find(|job| job.status == JobStatus::Completed).or(jobs.first()) else {
        return Ok(generations);
    };
    let recipe = GenerationRecipe {
        model_id: job.model_name.clone(),
        vector_dim: job.vector_dim,
        chunk_size: job.chunk_size,
        chunk_overlap: job.chunk_overlap,
    };
    // Its points are where that build left them: under the collection's own name.
    match named.add_generation(&recipe, GenerationState::Live, StoreNaming::OwnNameFirst).await {
        Ok(first) => Ok(vec![first]),
        // Another process recorded it first.
        Err(error) => match named.generations().await? {
            recorded if !recorded.is_empty() => Ok(recorded),
            _ => Err(error),
        },
    }
}

/// The catalog alone: PostgreSQL at `--database-url`, else the embedded one in the data
/// directory.
pub async fn open_catalog(settings: &Settings) -> Result<Catalog> {
    let catalog = match &settings.database_url {
        Some(url) => Catalog::connect(url).await?,
        None => {
            create_data_dir(settings)?;
            Catalog::connect(&Catalog::sqlite_url(&settings.data_dir)).await?
        }
    };
    Ok(catalog.with_retry(settings.retry))
}

/// One collection of the store alone: on the Qdrant server at `--qdrant-url`, else in the
/// embedded engine.
pub async fn open_store(settings: &Settings, store_collection: &str) -> Result<Arc<dyn VectorIndex>> {
    open_store_like(settings, store_collection, None).await
}

/// [`open_store`], for a collection that, when created, copies the layout of the store
/// collection `like`.
pub async fn open_store_like(
    settings: &Settings,
    store_collection: &str,
    like: Option<&str>,
) -> Result<Arc<dyn VectorIndex>> {
    let location = crate::store::StoreLocation { like, ..settings.store_location() };
    crate::store::open(location, store_collection, settings.retry).await
}

/// Where the parquet copy of the generation kept under `name` lives.
pub fn parquet_dir(settings: &Settings, name: &str) -> PathBuf {
    settings.parquet_root.clone().unwrap_or_else(|| settings.data_dir.join("parquet")).join(name)
}

fn create_data_dir(settings: &Settings) -> Result<()> {
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("cannot create the data directory {}", settings.data_dir.display()))
}
