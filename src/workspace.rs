//! # Workspace
//!
//! In: resolved [`Settings`]. Out: one collection's parts, opened together: the catalog
//! bound to it, its vector store, where its parquet copy lives and, for commands that change
//! it, its locks ([`Workspace::exclusive`]). This is the one place that lays out the data
//! directory: `catalog.sqlite` (the embedded catalog), `locks/<collection>.lock`,
//! `parquet/<collection>/` (unless `--parquet-dir` puts the copies elsewhere, for workers on
//! many machines), and the embedded engine's own directory, which [`crate::store`] keeps.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::catalog::{Catalog, CollectionCatalog, CollectionLock};
use crate::lock::RunLock;
use crate::parquet_copy::ParquetCopy;
use crate::settings::Settings;
use crate::store::VectorIndex;

/// One collection's catalog, store and parquet copy, and the locks held on it.
pub struct Workspace {
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

impl Workspace {
    /// Opens the collection's catalog and store, taking no lock: for commands that only read.
    pub async fn open(settings: &Settings) -> Result<Self> {
        let catalog = open_catalog(settings).await?.collection(&settings.collection);
        let index = open_store(settings).await?;
        Ok(Self { catalog, index, parquet_dir: parquet_dir(settings), locks: None })
    }

    /// Takes the collection's locks, then opens its catalog and store, held by this process
    /// alone until dropped (or [`Self::release_locks`]). Where the vectors are to live is
    /// checked first, so that a wrong store layout is refused before any lock is taken.
    pub async fn exclusive(settings: &Settings) -> Result<Self> {
        settings.store_location().check()?;
        create_data_dir(settings)?;
        let file = RunLock::acquire(&settings.data_dir.join("locks"), &settings.collection)?;
        let catalog = open_catalog(settings).await?.collection(&settings.collection);
        let shared_catalog = catalog.lock_collection().await?;
        let index = open_store(settings).await?;
        let locks = Some(Locks { _file: file, shared_catalog });
        Ok(Self { catalog, index, parquet_dir: parquet_dir(settings), locks })
    }

    pub fn catalog(&self) -> &CollectionCatalog {
        &self.catalog
    }

    pub fn index(&self) -> &Arc<dyn VectorIndex> {
        &self.index
    }

    /// The parquet copy, for vectors of `dim` dimensions.
    pub fn parquet(&self, dim: usize) -> ParquetCopy {
        ParquetCopy::at(self.parquet_dir.clone(), dim)
    }

    pub fn parquet_dir(&self) -> &Path {
        &self.parquet_dir
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

/// The collection's store alone: the Qdrant server at `--qdrant-url`, else the embedded engine.
pub async fn open_store(settings: &Settings) -> Result<Arc<dyn VectorIndex>> {
    crate::store::open(settings.store_location(), &settings.collection, settings.retry).await
}

/// Where the collection's parquet copy lives.
pub fn parquet_dir(settings: &Settings) -> PathBuf {
    settings.parquet_root.clone().unwrap_or_else(|| settings.data_dir.join("parquet")).join(&settings.collection)
}

fn create_data_dir(settings: &Settings) -> Result<()> {
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("cannot create the data directory {}", settings.data_dir.display()))
}
