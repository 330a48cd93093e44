//! # Generations
//!
//! In: through the [`CollectionCatalog`] bound to a collection's name (the alias users
//! search), a new generation's model and chunking, switches of the live one, moves of a
//! generation's store collection, and deletions. Out: its `generations` rows, read back as
//! [`GenerationRow`]s, and each generation's file and point counts.
//!
//! A generation's own `files` and `jobs` rows are kept under its [`GenerationRow::name`]:
//! the catalog bound to that name ([`super::Catalog::collection`]) is the generation's.

use anyhow::{bail, Context, Result};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{now, CollectionCatalog, FileStatus};

/// Where a generation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenerationState {
    /// Being built beside the live one; never served yet.
    Building,
    /// The one the collection's name serves.
    Live,
    /// Served before; `ingest rollback` can serve it again until `ingest gc` deletes it.
    Previous,
}

text_enum!(GenerationState { Building => "building", Live => "live", Previous => "previous" });

impl serde::Serialize for GenerationState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// What a generation is built with.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GenerationRecipe {
    pub model_id: String,
    pub vector_dim: i64,
    pub chunk_size: i64,
    pub chunk_overlap: i64,
}

impl GenerationRecipe {
    /// Whether vectors built with `other` can share a collection with these: the same model
    /// and the same chunking (the dimension follows from the model).
    pub fn same_vectors(&self, other: &GenerationRecipe) -> bool {
        self.model_id == other.model_id
            && self.chunk_size == other.chunk_size
            && self.chunk_overlap == other.chunk_overlap
    }
}

/// A step of a generation's one-time move out of the collection's name (see
/// `migrations/0008_generation_moves.sql`), recorded before it is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveStep {
    /// Emptying the target, then copying every point into it.
    Copying,
    /// Comparing the copy with the source, point for point.
    Checking,
    /// Dropping the source, then giving its name to the alias.
    Dropping,
}

text_enum!(MoveStep { Copying => "copying", Checking => "checking", Dropping => "dropping" });

/// A move in progress: where to, the step reached, and since when (RFC 3339).
#[derive(Debug, Clone)]
pub struct GenerationMove {
    pub number: i64,
    pub target: String,
    pub step: MoveStep,
    pub step_at: String,
}

/// How a new generation's store collection is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreNaming {
    /// `<collection>-g<number>`, generation 1 included: on a Qdrant server, where the
    /// collection's name is an alias from the first run, so that no switch ever takes the
    /// name away from readers.
    BehindAlias,
    /// Generation 1 under the collection's own name, later ones `<collection>-g<number>`: in
    /// the embedded engine, which has no aliases, and for a collection indexed before
    /// generations, whose points are already stored under its name.
    OwnNameFirst,
}

impl StoreNaming {
    /// The store collection of generation `number` of `collection`.
    pub fn store_of(self, collection: &str, number: i64) -> String {
        match self {
            StoreNaming::BehindAlias => format!("{collection}-g{number}"),
            StoreNaming::OwnNameFirst => generation_name(collection, number),
        }
    }
}

/// A `generations` row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GenerationRow {
    /// The collection's name, which serves the live generation.
    pub collection: String,
    pub number: i64,
    /// What the generation's `files` and `jobs` rows and its parquet copy are kept under.
    pub name: String,
    /// Its collection in the vector store.
    pub store_collection: String,
    #[serde(flatten)]
    pub recipe: GenerationRecipe,
    pub state: GenerationState,
    pub created_at: String,
    pub live_at: Option<String>,
}

impl super::Catalog {
    /// The names of the collections that have generations, in order.
    pub async fn collection_names(&self) -> Result<Vec<String>> {
        self.retrying(|| async {
            let rows = sqlx::query("SELECT DISTINCT collection FROM generations ORDER BY collection")
                .fetch_all(&self.pool)
                .await
                .context("reading the catalog's collections")?;
            rows.iter()
                .map(|row| row.try_get::<String, _>("collection").context("reading a collection's name"))
                .collect()
        })
        .await
    }
}

impl CollectionCatalog {
    /// The collection's generations, oldest first.
    pub async fn generations(&self) -> Result<Vec<GenerationRow>> {
        self.retrying(|| async {
            let rows = sqlx::query(&format!(
                "SELECT {GENERATION_FIELDS} FROM generations WHERE collection = $1 ORDER BY number"
            ))
            .bind(&self.name)
            .fetch_all(&self.pool)
            .await
            .context("reading the collection's generations")?;
            rows.iter().map(generation_row).collect()
        })
        .await
    }

    /// Records a new generation, numbered after the last, in `state`. Generation 1 keeps its
    /// rows under the collection's own name, a later one under `<collection>-g<number>`; its
    /// store collection is named by `naming`. Idempotent: when a generation with this recipe is already
    /// in `state` (a retry whose first commit went through unacknowledged, or a second run
    /// beside the first), that one is returned and nothing is recorded.
    pub async fn add_generation(
        &self,
        recipe: &GenerationRecipe,
        state: GenerationState,
        naming: StoreNaming,
    ) -> Result<GenerationRow> {
        self.retrying(|| async {
            let mut tx = self.pool.begin().await.context("starting a catalog transaction")?;
            let recorded = sqlx::query(&format!(
                "SELECT {GENERATION_FIELDS} FROM generations WHERE collection = $1 AND state = $2 AND model_id = $3
                    AND chunk_size = $4 AND chunk_overlap = $5 ORDER BY number DESC LIMIT 1"
            ))
            .bind(&self.name)
            .bind(state.as_str())
            .bind(&recipe.model_id)
            .bind(recipe.chunk_size)
            .bind(recipe.chunk_overlap)
            .fetch_optional(&mut *tx)
            .await
            .context("looking for the generation already recorded")?;
            if let Some(row) = recorded {
                return generation_row(&row);
            }
            let last: Option<i64> = sqlx::query_scalar("SELECT MAX(number) FROM generations WHERE collection = $1")
                .bind(&self.name)
                .fetch_one(&mut *tx)
                .await
                .context("reading the last generation's number")?;
            let number = last.unwrap_or(0) + 1;
            let name = generation_name(&self.name, number);
            let store = naming.store_of(&self.name, number);
            let at = now();
            let live_at = (state == GenerationState::Live).then(|| at.clone());
            sqlx::query(
                "INSERT INTO generations (collection, number, name, store_collection, model_id, vector_dim, chunk_size,
                    chunk_overlap, state, created_at, live_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&self.name)
            .bind(number)
            .bind(&name)
            .bind(&store)
            .bind(&recipe.model_id)
            .bind(recipe.vector_dim)
            .bind(recipe.chunk_size)
            .bind(recipe.chunk_overlap)
            .bind(state.as_str())
            .bind(&at)
            .bind(&live_at)
            .execute(&mut *tx)
            .await
            .context("recording a new generation")?;
            tx.commit().await.context("committing the new generation")?;
            Ok(GenerationRow {
                collection: self.name.clone(),
                number,
                store_collection: store,
                name,
                recipe: recipe.clone(),
                state,
                created_at: at,
                live_at,
            })
        })
        .await
    }

    /// Generation `number` as [`Self::add_generation`] would record it, building: what a dry
    /// run plans against, recording nothing.
    pub fn planned_generation(&self, number: i64, recipe: &GenerationRecipe, naming: StoreNaming) -> GenerationRow {
        let name = generation_name(&self.name, number);
        GenerationRow {
            collection: self.name.clone(),
            number,
            store_collection: naming.store_of(&self.name, number),
            name,
            recipe: recipe.clone(),
            state: GenerationState::Building,
            created_at: now(),
            live_at: None,
        }
    }

    /// Makes generation `number` the live one, and the live one before it `previous`, in
    /// one transaction.
    pub async fn set_live_generation(&self, number: i64) -> Result<()> {
        self.retrying(|| async {
            let mut tx = self.pool.begin().await.context("starting a catalog transaction")?;
            sqlx::query("UPDATE generations SET state = $1 WHERE collection = $2 AND state = $3 AND number <> $4")
                .bind(GenerationState::Previous.as_str())
                .bind(&self.name)
                .bind(GenerationState::Live.as_str())
                .bind(number)
                .execute(&mut *tx)
                .await
                .context("retiring the live generation")?;
            let switched = sqlx::query(
                "UPDATE generations SET state = $1, live_at = $2 WHERE collection = $3 AND number = $4 AND state <> $1",
            )
            .bind(GenerationState::Live.as_str())
            .bind(now())
            .bind(&self.name)
            .bind(number)
            .execute(&mut *tx)
            .await
            .with_context(|| format!("making generation {number} live"))?;
            if switched.rows_affected() == 0 {
                let exists: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM generations WHERE collection = $1 AND number = $2")
                        .bind(&self.name)
                        .bind(number)
                        .fetch_one(&mut *tx)
                        .await
                        .context("reading a generation")?;
                if exists == 0 {
                    bail!("collection {:?} has no generation {number}", self.name);
                }
            }
            tx.commit().await.context("committing the switch of generations")?;
            Ok(())
        })
        .await
    }

    /// The move of generation `number` in progress, if any.
    pub async fn generation_move(&self, number: i64) -> Result<Option<GenerationMove>> {
        self.retrying(|| async {
            let row =
                sqlx::query("SELECT target, step, step_at FROM generation_moves WHERE collection = $1 AND number = $2")
                    .bind(&self.name)
                    .bind(number)
                    .fetch_optional(&self.pool)
                    .await
                    .with_context(|| format!("reading the move of generation {number}"))?;
            row.map(|row| {
                Ok(GenerationMove {
                    number,
                    target: row.try_get("target")?,
                    step: row.try_get::<String, _>("step")?.parse()?,
                    step_at: row.try_get("step_at")?,
                })
            })
            .transpose()
        })
        .await
    }

    /// Records that the move of generation `number` into `target` takes `step` now.
    pub async fn record_move_step(&self, number: i64, target: &str, step: MoveStep) -> Result<GenerationMove> {
        let step_at = now();
        self.retrying(|| async {
            let mut tx = self.pool.begin().await.context("starting a catalog transaction")?;
            sqlx::query("DELETE FROM generation_moves WHERE collection = $1 AND number = $2")
                .bind(&self.name)
                .bind(number)
                .execute(&mut *tx)
                .await
                .context("replacing a move's step")?;
            sqlx::query(
                "INSERT INTO generation_moves (collection, number, target, step, step_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&self.name)
            .bind(number)
            .bind(target)
            .bind(step.as_str())
            .bind(&step_at)
            .execute(&mut *tx)
            .await
            .with_context(|| format!("recording the move of generation {number}"))?;
            tx.commit().await.context("committing a move's step")?;
            Ok(())
        })
        .await?;
        Ok(GenerationMove { number, target: target.to_string(), step, step_at })
    }

    /// Records that generation `number`'s points now live in the store collection `store`,
    /// and ends its move, in one transaction.
    pub async fn finish_move(&self, number: i64, store: &str) -> Result<()> {
        self.retrying(|| async {
            let mut tx = self.pool.begin().await.context("starting a catalog transaction")?;
            sqlx::query("UPDATE generations SET store_collection = $1 WHERE collection = $2 AND number = $3")
                .bind(store)
                .bind(&self.name)
                .bind(number)
                .execute(&mut *tx)
                .await
                .with_context(|| format!("recording where generation {number} lives"))?;
            sqlx::query("DELETE FROM generation_moves WHERE collection = $1 AND number = $2")
                .bind(&self.name)
                .bind(number)
                .execute(&mut *tx)
                .await
                .context("ending a move")?;
            tx.commit().await.context("committing the end of a move")?;
            Ok(())
        })
        .await
    }

    /// Deletes a generation's row and every row kept under its name: its files, its jobs,
    /// their queued work and its workers' rows, in one transaction.
    pub async fn delete_generation(&self, generation: &GenerationRow) -> Result<()> {
        self.retrying(|| async {
            let mut tx = self.pool.begin().await.context("starting a catalog transaction")?;
            sqlx::query("DELETE FROM generation_moves WHERE collection = $1 AND number = $2")
                .bind(&self.name)
                .bind(generation.number)
                .execute(&mut *tx)
                .await
                .with_context(|| format!("deleting generation {}'s move", generation.number))?;
            for statement in [
                "DELETE FROM work_items WHERE collection = $1",
                "DELETE FROM workers WHERE collection = $1",
                "DELETE FROM files WHERE collection = $1",
                "DELETE FROM jobs WHERE collection = $1",
            ] {
                sqlx::query(statement)
                    .bind(&generation.name)
                    .execute(&mut *tx)
                    .await
                    .with_context(|| format!("deleting generation {}'s rows", generation.number))?;
            }
            sqlx::query("DELETE FROM generations WHERE collection = $1 AND number = $2")
                .bind(&self.name)
                .bind(generation.number)
                .execute(&mut *tx)
                .await
                .with_context(|| format!("deleting generation {}", generation.number))?;
            tx.commit().await.context("committing the deletion of a generation")?;
            Ok(())
        })
        .await
    }

    /// The number of completed files, and of the points they should have, kept under this
    /// catalog's name.
    pub async fn completed_counts(&self) -> Result<(u64, u64)> {
        self.retrying(|| async {
            let row = sqlx::query(
                "SELECT COUNT(*) AS files, CAST(COALESCE(SUM(vectors_created), 0) AS BIGINT) AS points FROM files
                 WHERE collection = $1 AND status = $2",
            )
            .bind(&self.name)
            .bind(FileStatus::Completed.as_str())
            .fetch_one(&self.pool)
            .await
            .context("counting the completed files")?;
            let (files, points): (i64, i64) = (row.try_get("files")?, row.try_get("points")?);
            Ok((files.max(0) as u64, points.max(0) as u64))
        })
        .await
    }
}

/// The live generation among `generations`: the one the collection's name serves.
pub fn live_generation(generations: &[GenerationRow]) -> Option<&GenerationRow> {
    generations.iter().find(|g| g.state == GenerationState::Live)
}

/// The name a generation's rows, parquet copy and store collection are kept under.
pub fn generation_name(collection: &str, number: i64) -> String {
    if number == 1 {
        collection.to_string()
    } else {
        format!("{collection}-g{number}")
    }
}

const GENERATION_FIELDS: &str = "collection, number, name, store_collection, model_id, vector_dim, chunk_size,
    chunk_overlap, state, created_at, live_at";

fn generation_row(row: &AnyRow) -> Result<GenerationRow> {
    Ok(GenerationRow {
        collection: row.try_get("collection")?,
        number: row.try_get("number")?,
        name: row.try_get("name")?,
        store_collection: row.try_get("store_collection")?,
        recipe: GenerationRecipe {
            model_id: row.try_get("model_id")?,
            vector_dim: row.try_get("vector_dim")?,
            chunk_size: row.try_get("chunk_size")?,
            chunk_overlap: row.try_get("chunk_overlap")?,
        },
        state: row.try_get::<String, _>("state")?.parse()?,
        created_at: row.try_get("created_at")?,
        live_at: row.try_get("live_at")?,
    })
}
