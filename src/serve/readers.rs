//! # Readers: the generation a search reads, and its model
//!
//! In: a collection's name and, optionally, a generation number. Out: a [`Reader`]: that
//! generation (the live one unless a number is given) with its store collection opened for
//! reading and the model that built it loaded, kept for the requests that follow.
//!
//! The catalog is asked which generation is live on every request, so that after a switch or
//! a rollback the next answer comes from the new generation with its model, and no answer
//! mixes two: a request holds one [`Reader`] from start to end. Models are loaded once and
//! shared by the readers of every generation they built; a reader nobody asked for in a while
//! is closed, and its model with it when no other reader uses it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::metrics::Metrics;
use super::queries::QueryEmbedder;
use super::Refusal;
use crate::catalog::{live_generation, Catalog, GenerationRow};
use crate::search::QueryModel;
use crate::settings::Settings;
use crate::store::VectorIndex;

/// How long what [`crate::search::sparse_gap`] says of a collection is taken as still true.
const SPARSE_GAP_FRESH: Duration = Duration::from_secs(5);

/// How long a reader of a generation that is not live stays open after its last request.
const IDLE_READER: Duration = Duration::from_secs(60);

/// One generation open for reading.
pub struct Reader {
    pub collection: String,
    /// The generation read; `None` for a store collection the catalog knows no generation of.
    pub generation: Option<GenerationRow>,
    pub index: Arc<dyn VectorIndex>,
    /// The model that embeds queries for it, or why there is none (not installed, say).
    model: std::result::Result<Arc<QueryEmbedder>, String>,
    /// What sparse search lacks in the collection, and when that was asked.
    sparse_gap: tokio::sync::Mutex<Option<(Instant, Option<String>)>>,
    last_used: Mutex<Instant>,
}

impl Reader {
    /// The model's id: the one the generation records, or the loaded one.
    pub fn model_id(&self) -> Option<String> {
        match (&self.generation, &self.model) {
            (Some(generation), _) => Some(generation.recipe.model_id.clone()),
            (None, Ok(model)) => Some(model.model().id.clone()),
            (None, Err(_)) => None,
        }
    }

    /// The query model, or a 503 saying why there is none.
    pub fn query_model(&self) -> std::result::Result<SharedModel, Refusal> {
        match &self.model {
            Ok(model) => Ok(SharedModel(model.clone())),
            Err(reason) => Err(Refusal::Unavailable(reason.clone())),
        }
    }

    /// Whether the model is loaded, or why not.
    pub fn model_state(&self) -> std::result::Result<&QueryEmbedder, &str> {
        self.model.as_deref().map_err(|reason| reason.as_str())
    }

    /// What [`crate::search::sparse_gap`] says of the collection, asked at most every few seconds.
    pub async fn sparse_gap(&self) -> Result<Option<String>> {
        let mut known = self.sparse_gap.lock().await;
        if let Some((asked, gap)) = known.as_ref() {
            if asked.elapsed() < SPARSE_GAP_FRESH {
                return Ok(gap.clone());
            }
        }
        let gap = crate::search::sparse_gap(self.index.as_ref()).await?;
        *known = Some((Instant::now(), gap.clone()));
        Ok(gap)
    }
}

/// A query model shared by requests: [`QueryModel`] through the batching queue.
pub struct SharedModel(Arc<QueryEmbedder>);

#[async_trait::async_trait]
impl QueryModel for SharedModel {
    async fn embed_query(&mut self, query: &str) -> Result<Vec<f32>> {
        self.0.embed(query).await
    }
}

/// How the readers' models run.
#[derive(Debug, Clone, Copy)]
pub struct ModelOptions {
    /// ONNX Runtime threads of each model.
    pub threads: usize,
    /// Queries that may wait for a model at once.
    pub queue: usize,
}

/// Every reader open, and the models they share.
pub struct Readers {
    settings: Settings,
    catalog: Catalog,
    model_options: ModelOptions,
    metrics: Arc<Metrics>,
    /// By collection and generation number (0: a collection without generations).
    open: Mutex<HashMap<(String, i64), Arc<Reader>>>,
    /// By model id; a model lives as long as a reader holds it.
    models: Mutex<HashMap<String, Weak<QueryEmbedder>>>,
    /// Serialises the opening of readers, so that concurrent first requests load a model once.
    opening: tokio::sync::Mutex<()>,
}

impl Readers {
    pub fn new(settings: Settings, catalog: Catalog, model_options: ModelOptions, metrics: Arc<Metrics>) -> Self {
        Self {
            settings,
            catalog,
            model_options,
            metrics,
            open: Mutex::new(HashMap::new()),
            models: Mutex::new(HashMap::new()),
            opening: tokio::sync::Mutex::new(()),
        }
    }

    /// The catalog the service reads.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The collection searched when a request names none.
    pub fn default_collection(&self) -> &str {
        &self.settings.collection
    }

    /// The reader of `collection`'s generation `number`, else of its live one; 404 when the
    /// collection or generation does not exist.
    pub async fn reader(&self, collection: &str, number: Option<i64>) -> std::result::Result<Arc<Reader>, Refusal> {
        let named = self.catalog.collection(collection);
        let generations = crate::workspace::generations_of(&named).await.map_err(Refusal::unavailable)?;
        let generation = match number {
            Some(number) => Some(generations.iter().find(|g| g.number == number).cloned().ok_or_else(|| {
                Refusal::NotFound(format!(
                    "collection {collection:?} has no generation {number}; GET /collections lists its generations"
                ))
            })?),
            None => live_generation(&generations).cloned(),
        };
        if let Some(live) = live_generation(&generations) {
            self.metrics.set_live(collection, live.number, &live.recipe.model_id);
        }
        let key = (collection.to_string(), generation.as_ref().map_or(0, |g| g.number));
        if let Some(reader) = self.cached(&key, generation.as_ref()) {
            return Ok(reader);
        }
        let _opening = self.opening.lock().await;
        if let Some(reader) = self.cached(&key, generation.as_ref()) {
            return Ok(reader);
        }
        let reader = Arc::new(self.open_reader(collection, generation).await?);
        lock(&self.open).insert(key, reader.clone());
        Ok(reader)
    }

    /// The open reader under `key`, when it still reads `generation` as the catalog has it
    /// now (a generation rebuilt under the same number is opened again).
    fn cached(&self, key: &(String, i64), generation: Option<&GenerationRow>) -> Option<Arc<Reader>> {
        let open = lock(&self.open);
        let reader = open.get(key)?;
        let same = match (&reader.generation, generation) {
            (Some(open), Some(now)) => open.store_collection == now.store_collection && open.recipe == now.recipe,
            (None, None) => true,
            _ => false,
        };
        if !same {
            return None;
        }
        *lock(&reader.last_used) = Instant::now();
        Some(reader.clone())
    }

    async fn open_reader(
        &self,
        collection: &str,
        generation: Option<GenerationRow>,
    ) -> std::result::Result<Reader, Refusal> {
        let store = generation.as_ref().map_or(collection, |g| g.store_collection.as_str());
        let index = crate::store::open_reader(self.settings.store_location(), store, self.settings.retry)
            .await
            .map_err(Refusal::unavailable)?;
        if !index.exists().await.map_err(Refusal::unavailable)? {
            return Err(Refusal::NotFound(format!(
                "collection {collection:?} does not exist yet; index a directory into it first (`ingest DIR --collection {collection}`)"
            )));
        }
        let built_by = match &generation {
            Some(generation) => Some(generation.recipe.model_id.clone()),
            None => {
                let (points, _) = index.scroll(None, 1, false).await.map_err(Refusal::unavailable)?;
                points.into_iter().next().map(|p| p.payload.model)
            }
        };
        let model = self.model(built_by).await.map_err(|error| format!("{error:#}"));
        Ok(Reader {
            collection: collection.to_string(),
            generation,
            index,
            model,
            sparse_gap: tokio::sync::Mutex::new(None),
            last_used: Mutex::new(Instant::now()),
        })
    }

    /// The model that built a collection, loaded once and shared.
    async fn model(&self, built_by: Option<String>) -> Result<Arc<QueryEmbedder>> {
        let info = crate::search::query_model(&self.settings, built_by)?;
        if let Some(model) = lock(&self.models).get(&info.id).and_then(Weak::upgrade) {
            return Ok(model);
        }
        let (options, metrics) = (self.model_options, self.metrics.clone());
        let id = info.id.clone();
        let model = tokio::task::spawn_blocking(move || {
            QueryEmbedder::start(info, options.threads, options.queue, move |call| metrics.model_call(call))
        })
        .await
        .context("the task loading the query model failed")??;
        let model = Arc::new(model);
        lock(&self.models).insert(id, Arc::downgrade(&model));
        Ok(model)
    }

    /// One moment's upkeep: the default collection's live generation opened ahead of its
    /// first request (its model loaded), each open store let go to a process that asks for it,
    /// and readers of generations no longer live closed once idle.
    pub async fn tend(&self) {
        let _ = self.reader(&self.settings.collection.clone(), self.settings.generation).await;
        let readers: Vec<(_, Arc<Reader>)> = lock(&self.open).iter().map(|(k, r)| (k.clone(), r.clone())).collect();
        for (key, reader) in readers {
            if let Err(error) = reader.index.let_go_if_asked().await {
                eprintln!("ingest serve: collection {:?}: {error:#}", reader.collection);
            }
            let pinned = key.0 == self.settings.collection && self.settings.generation == Some(key.1);
            // Only a reader idle for a while is asked about: the catalog is not read every moment.
            if pinned || lock(&reader.last_used).elapsed() <= IDLE_READER {
                continue;
            }
            let live = match reader.generation.as_ref() {
                Some(generation) => self
                    .catalog
                    .collection(&key.0)
                    .generations()
                    .await
                    .map(|all| live_generation(&all).is_some_and(|l| l.number == generation.number))
                    .unwrap_or(true),
                None => true,
            };
            if !live {
                lock(&self.open).remove(&key);
            }
        }
        lock(&self.models).retain(|_, model| model.strong_count() > 0);
    }

    /// Queries waiting for every loaded model.
    pub fn queries_waiting(&self) -> usize {
        lock(&self.models).values().filter_map(Weak::upgrade).map(|m| m.waiting()).sum()
    }
}

/// A mutex's guard; a panic while it was held leaves plain data that is still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
