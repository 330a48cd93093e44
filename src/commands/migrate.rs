//! # `ingest migrate`
//!
//! In: [`Settings`]. Out: [`Migrated`]: the names of the catalog's applied schema migrations,
//! once any pending one is applied (connecting applies them), and what bringing the
//! collection up to this build did: on a Qdrant server, generation 1 moved out of the
//! collection's name, which becomes an alias ([`crate::generations::name`]); points given
//! their sparse vectors, from the parquet copy, without the model.

use anyhow::Result;

use crate::consistency::{add_sparse_vectors, RestoreReport, Upload};
use crate::generations::{name, Moved};
use crate::settings::Settings;
use crate::workspace::{open_catalog, Workspace};

/// What `ingest migrate` did.
#[derive(Debug)]
pub struct Migrated {
    pub applied: Vec<String>,
    /// The upload of the collection's points with their sparse vectors; `None` when they all
    /// had them, or there is no collection yet.
    pub sparse_vectors: Option<RestoreReport>,
    /// The move of generation 1 out of the collection's name, on a Qdrant server.
    pub moved: Option<Moved>,
}

/// Applies the catalog's pending migrations, moves generation 1 out of the collection's name
/// on a Qdrant server, then gives the collection's points the sparse vectors they lack,
/// holding the collection's locks as a run does.
pub async fn migrate(settings: &Settings) -> Result<Migrated> {
    let applied = open_catalog(settings).await?.applied_migrations().await?;
    let moved = match settings.qdrant_url {
        Some(_) => name::free_the_name(&Workspace::exclusive(settings).await?).await?,
        None => None,
    };
    let workspace = Workspace::open(settings).await?;
    let index = workspace.index();
    let gap = index.exists().await? && crate::search::sparse_gap(index.as_ref()).await?.is_some();
    // The embedded engine lets one handle at a time hold a collection.
    drop(workspace);
    if !gap {
        return Ok(Migrated { applied, sparse_vectors: None, moved });
    }
    let workspace = Workspace::exclusive(settings).await?;
    let upload = Upload { batch_size: 4000, parallelism: 2 };
    let (catalog, index, dir) = (workspace.catalog(), workspace.index().as_ref(), workspace.parquet_dir());
    let sparse_vectors = add_sparse_vectors(catalog, index, dir, upload, settings.quiet).await?;
    Ok(Migrated { applied, sparse_vectors, moved })
}
