//! # `ingest models`
//!
//! In: [`Settings`]. Out: [`Models`]: every model installed under the models home, and the
//! one `--model-dir` names if it lies elsewhere, each read as a run would read it, with the
//! one this command line would use marked.

use std::path::PathBuf;

use anyhow::Result;

use crate::model::{self, Installed, ModelInfo, DEFAULT_MODEL};
use crate::settings::Settings;

/// The installed models, and which one a run with these settings would use.
pub struct Models {
    /// Where models are installed.
    pub home: PathBuf,
    pub installed: Vec<Installed>,
    /// The directory a run with these settings would use.
    pub in_use: PathBuf,
}

/// Lists the installed models; a directory that is not a usable model is listed with why.
pub fn models(settings: &Settings) -> Result<Models> {
    let home = model::models_home();
    let in_use = settings.model_dir.clone().unwrap_or_else(|| home.join(DEFAULT_MODEL));
    let mut installed = model::installed()?;
    if !in_use.starts_with(&home) {
        installed.push(match ModelInfo::load(Some(&in_use)) {
            Ok(info) => Installed::Model(Box::new(info)),
            Err(error) => Installed::Broken { dir: in_use.clone(), reason: format!("{error:#}") },
        });
    }
    Ok(Models { home, installed, in_use })
}
