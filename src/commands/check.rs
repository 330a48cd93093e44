//! # `ingest check`
//!
//! In: [`Settings`]. Out: a [`CheckReport`]: for each part (the model, the catalog, the
//! vector store, OCR), what it is, or why it is unreachable or incompatible. Each part is
//! checked whatever became of the others. OCR is optional: missing, it is reported as such,
//! and fails the check only when the settings force it or name languages it lacks.

use anyhow::Result;

use crate::embed::Embedder;
use crate::extract::ocr::OcrMode;
use crate::model::ModelInfo;
use crate::settings::{Settings, Tuning};
use crate::workspace::{open_catalog, Workspace};

/// What `ingest check` found of each part: a line on what it is, or why it is wrong.
pub struct CheckReport {
    /// The model loaded and embedded a text.
    pub model: Result<String>,
    /// The catalog is reachable and its schema up to date.
    pub catalog: Result<String>,
    /// The vector store is reachable, and the collection, if it exists, fits the model.
    pub vector_store: Result<String>,
    /// The OCR engine and its languages, or that there is none.
    pub ocr: Result<String>,
}

impl CheckReport {
    /// Each part, named, in the order checked.
    pub fn parts(&self) -> [(&'static str, &Result<String>); 4] {
        [("model", &self.model), ("catalog", &self.catalog), ("vector store", &self.vector_store), ("ocr", &self.ocr)]
    }

    /// Whether every part is fine.
    pub fn all_ok(&self) -> bool {
        self.parts().iter().all(|(_, outcome)| outcome.is_ok())
    }
}

/// Checks the model (`--model-dir`, else the live generation's, else the default), then the
/// catalog, then the vector store.
pub async fn check(settings: &Settings) -> CheckReport {
    let workspace = Workspace::open(settings).await;
    let live = workspace.as_ref().ok().and_then(|w| w.generation());
    let model = match (&settings.model_dir, live) {
        (None, Some(live)) => crate::generations::installed_model(live),
        _ => ModelInfo::load(settings.model_dir.as_deref()),
    };
    let model_outcome = match &model {
        Ok(info) => Embedder::new(info.clone(), 1)
            .and_then(|mut embedder| embedder.embed_one("health check"))
            .map(|vector| format!("{} makes {}-dimensional vectors", info.id, vector.len())),
        Err(error) => Err(anyhow::anyhow!("{error:#}")),
    };
    let catalog_outcome = match open_catalog(settings).await {
        Ok(catalog) => catalog.collection(&settings.collection).jobs(1).await.map(|jobs| {
            let backend = settings.database_url.as_deref().map(crate::redact::redact_url);
            let place = backend.unwrap_or_else(|| format!("embedded, in {}", settings.data_dir.display()));
            let last = jobs.first().map(|j| format!("last job {} {}", j.id, j.status)).unwrap_or("no jobs yet".into());
            format!("{place}, schema up to date, {last}")
        }),
        Err(error) => Err(error),
    };
    let store_outcome = async {
        let workspace = workspace?;
        let index = workspace.index();
        let place = settings.qdrant_url.as_deref().map(crate::redact::redact_url).unwrap_or("embedded".into());
        if !index.exists().await? {
            return Ok(format!("{place}, collection {:?} not created yet", settings.collection));
        }
        let served = match workspace.generation() {
            Some(generation) => {
                if let Some(info) = model.as_ref().ok().filter(|info| info.dim as i64 != generation.recipe.vector_dim) {
                    anyhow::bail!(
                        "generation {} of collection {:?} holds {}-dimensional vectors of {}, but the model {} makes \
                         {}-dimensional ones",
                        generation.number,
                        settings.collection,
                        generation.recipe.vector_dim,
                        generation.recipe.model_id,
                        info.id,
                        info.dim
                    );
                }
                format!(" (generation {}, {})", generation.number, generation.recipe.model_id)
            }
            None => String::new(),
        };
        Ok(format!("{place}, collection {:?}{served} holds {} points", settings.collection, index.count(None).await?))
    }
    .await;
    CheckReport { model: model_outcome, catalog: catalog_outcome, vector_store: store_outcome, ocr: ocr(settings) }
}

/// What OCR a run with these settings (its configuration file's, without flags) would have.
fn ocr(settings: &Settings) -> Result<String> {
    let ocr = settings.ocr(&Tuning::default())?;
    Ok(match &ocr.engine {
        Ok(engine) if ocr.reads() => format!(
            "tesseract {} with poppler {}, languages installed: {}; runs read {} ({})",
            engine.tesseract,
            engine.renderer,
            engine.languages.join(", "),
            ocr.languages,
            match ocr.mode {
                OcrMode::Force => "every page",
                _ => "PDF pages without text, and images",
            }
        ),
        _ => format!("{}; scanned pages stay without text", ocr.unread_reason()),
    })
}
