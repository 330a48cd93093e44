//! # Models
//!
//! What `ingest models` found ([`Models`]) → one block per installed model (name, id,
//! dimension, max tokens, pooling, prefixes, licence), the one in use marked; or, with
//! `--json`, a list of objects with the same fields.

use anyhow::Result;

use super::print_json;
use crate::commands::Models;
use crate::model::{Installed, ModelInfo};
use crate::settings::Settings;

/// Prints the models `ingest models` found.
pub fn models(settings: &Settings, models: &Models) -> Result<()> {
    if settings.json {
        let list: Vec<_> = models
            .installed
            .iter()
            .map(|installed| match installed {
                Installed::Model(info) => serde_json::json!({
                    "name": info.name,
                    "id": info.id,
                    "dir": info.dir,
                    "dimension": info.dim,
                    "max_tokens": info.max_sequence,
                    "pooling": info.pooling,
                    "normalized": info.normalize,
                    "query_prefix": info.query_prefix,
                    "passage_prefix": info.passage_prefix,
                    "license": info.license,
                    "source": info.source,
                    "in_use": info.dir == models.in_use,
                }),
                Installed::Broken { dir, reason } => {
                    serde_json::json!({ "dir": dir, "error": reason, "in_use": *dir == models.in_use })
                }
            })
            .collect();
        return print_json(&list);
    }
    if models.installed.is_empty() {
        say!("no models installed in {}; run scripts/setup.sh", models.home.display())?;
        return Ok(());
    }
    for installed in &models.installed {
        match installed {
            Installed::Model(info) => model_lines(info, info.dir == models.in_use)?,
            Installed::Broken { dir, reason } => say!("  {}: not usable: {reason}\n", dir.display())?,
        }
    }
    say!("* in use by this command line; choose another with --model-dir DIR or INGEST_MODEL_DIR")?;
    Ok(())
}

fn model_lines(info: &ModelInfo, in_use: bool) -> Result<()> {
    let prefix = |text: &str| if text.is_empty() { "none".to_string() } else { format!("{text:?}") };
    say!("{} {}", if in_use { "*" } else { " " }, info.name)?;
    say!("    id          {}", info.id)?;
    say!("    dir         {}", info.dir.display())?;
    say!(
        "    vectors     {} dimensions, {} pooling{}",
        info.dim,
        info.pooling.name(),
        if info.normalize { ", normalised" } else { "" }
    )?;
    say!("    max tokens  {}", info.max_sequence)?;
    say!("    prefixes    query {}, passage {}", prefix(&info.query_prefix), prefix(&info.passage_prefix))?;
    if let Some(license) = &info.license {
        say!("    licence     {license}")?;
    }
    if let Some(source) = &info.source {
        say!("    source      {source}")?;
    }
    say!()
}
