//! # `ingest models`
//!
//! In: [`Settings`]. Out: [`Models`]: every model installed under the models home, and the
//! one `--model-dir` names if it lies elsewhere, each read as a run would read it, with the
//! one this command line would use marked: `--model-dir`, else the model of the collection's
//! live generation, else the default.

use std::path::PathBuf;

use anyhow::Result;

use crate::catalog::live_generation;
use crate::model::{self, Installed, ModelInfo, DEFAULT_MODEL};
use crate::settings::Settings;
use crate::workspace::{generations_of, open_catalog};

/// The installed models, and which one a run with these settings would use.
pub struct Models {
    /// Where models are installed.
    pub home: PathBuf,
    pub installed: Vec<Installed>,
    /// The directory a run with these settings would use.
    pub in_use: PathBuf,
}

/// Lists the installed models; a directory that is not a usable model is listed with why.
pub async fn models(settings: &Settings) -> Result<Models> {
    let home = model::models_home();
    let in_use = match &settings.model_dir {
        Some(dir) => dir.clone(),
        None => live_model_dir(settings).await?.unwrap_or_else(|| home.join(DEFAULT_MODEL)),
    };
    let mut installed = model::installed()?;
    if !in_use.starts_with(&home) {
        installed.push(match ModelInfo::load(Some(&in_use)) {
            Ok(info) => Installed::Model(Box::new(info)),
            Err(error) => Installed::Broken { dir: in_use.clone(), reason: format!("{error:#}") },
        });
    }
    Ok(Models { home, installed, in_use })
}

/// The directory of the installed model that built the collection's live generation, when
/// there is a catalog to ask (an embedded one that exists, or PostgreSQL) and it is installed.
async fn live_model_dir(settings: &Settings) -> Result<Option<PathBuf>> {
    if settings.database_url.is_none() && !settings.data_dir.join("catalog.sqlite").is_file() {
        return Ok(None);
    }
    let named = open_catalog(settings).await?.collection(&settings.collection);
    let generations = generations_of(&named).await?;
    let Some(live) = live_generation(&generations) else {
        return Ok(None);
    };
    Ok(model::installed_with_id(&live.recipe.model_id)?.map(|model| model.dir))
}
