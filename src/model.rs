//! # Models
//!
//! In: a model directory, a sentence-transformers ONNX export, optionally with a manifest.
//! Out: [`ModelInfo`], what the pipeline needs to know of the model before it runs it: its
//! identity, the width of its vectors, its longest input, how its token vectors become one
//! vector (pooling, normalisation) and the prefixes its queries and passages take; and
//! [`installed`], the models under `$INGEST_HOME/models`.
//!
//! A model directory holds `model.onnx` and the tokenizer's files (`tokenizer.json`,
//! `config.json`, `special_tokens_map.json`, `tokenizer_config.json`). The export describes
//! itself, and each fact is read from where sentence-transformers keeps it:
//!
//! - pooling: `1_Pooling/config.json` (mean, CLS or last token), found through `modules.json`;
//! - normalisation: a `Normalize` module in `modules.json`;
//! - longest input: `max_seq_length` in `sentence_bert_config.json`;
//! - prefixes: the `query` and `document` (or `passage`) prompts of
//!   `config_sentence_transformers.json`;
//! - width: the declared shape of the ONNX graph's output, not the configuration, and the
//!   embed stage checks every vector against it.
//!
//! A manifest, `ingest-model.json`, may add what the export does not say (the model's name
//! and licence, prefixes its authors give only in prose) and overrides the export where both
//! speak: `{"name", "query_prefix", "passage_prefix", "pooling", "normalize", "license",
//! "source"}`, every field optional. A directory without `modules.json` is taken as mean
//! pooling, normalised, which is what the first models installed here were.
//!
//! Where models live: `--model-dir` / `INGEST_MODEL_DIR` names one, else the default under
//! `$INGEST_HOME` (default `~/.local/share/ingest`), where `scripts/setup.sh` installs them.
//! ONNX Runtime is loaded at run time from `ORT_DYLIB_PATH`, or from the same install.
//! Nothing is ever downloaded.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use tokenizers::Tokenizer;

/// The directory name of the default model under `$INGEST_HOME/models`.
pub const DEFAULT_MODEL: &str = "all-MiniLM-L6-v2-int8";
/// The ONNX Runtime version `scripts/setup.sh` installs.
pub const ORT_VERSION: &str = "1.31.1";
/// The manifest a model directory may carry.
pub const MANIFEST: &str = "ingest-model.json";

const SETUP_HINT: &str = "run scripts/setup.sh to install it";

/// Where `scripts/setup.sh` installs the runtime.
pub fn runtime_home() -> PathBuf {
    if let Some(home) = std::env::var_os("INGEST_HOME") {
        return PathBuf::from(home);
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(".local/share"));
    data.join("ingest")
}

/// Where installed models live: one directory each.
pub fn models_home() -> PathBuf {
    runtime_home().join("models")
}

/// Points ONNX Runtime's loader at the installed library unless `ORT_DYLIB_PATH` says otherwise.
pub fn locate_onnxruntime() -> Result<PathBuf> {
    let path = match std::env::var_os("ORT_DYLIB_PATH") {
        Some(path) => PathBuf::from(path),
        None => runtime_home().join("onnxruntime").join(format!("libonnxruntime.so.{ORT_VERSION}")),
    };
    if !path.is_file() {
        bail!("ONNX Runtime was not found at {}; {SETUP_HINT}", path.display());
    }
    // Read by ort when the first session is built; set before any other thread uses ort.
    std::env::set_var("ORT_DYLIB_PATH", &path);
    Ok(path)
}

/// How a model's token vectors become one vector for the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pooling {
    /// The mean of the token vectors the attention mask keeps.
    Mean,
    /// The first token's vector (`[CLS]`).
    Cls,
    /// The last token's vector the attention mask keeps.
    LastToken,
}

impl Pooling {
    pub fn name(self) -> &'static str {
        match self {
            Self::Mean => "mean",
            Self::Cls => "cls",
            Self::LastToken => "last-token",
        }
    }

    fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "mean" => Self::Mean,
            "cls" => Self::Cls,
            "last-token" | "lasttoken" | "last_token" => Self::LastToken,
            other => bail!("pooling {other:?} is not supported (mean, cls or last-token)"),
        })
    }
}

/// A model directory's identity and shape.
#[derive(Clone)]
pub struct ModelInfo {
    pub dir: PathBuf,
    /// Human name: the manifest's, else the directory name.
    pub name: String,
    /// The directory name plus a prefix of the ONNX file's sha256, and a digest of the way
    /// the model is run when that is not plain mean pooling: changes whenever the vectors
    /// would.
    pub id: String,
    /// The width of the model's vectors, as its ONNX graph declares it.
    pub dim: usize,
    /// Maximum sequence length, special tokens included.
    pub max_sequence: usize,
    pub pooling: Pooling,
    /// Whether vectors are scaled to unit length.
    pub normalize: bool,
    /// Put before a query before it is embedded.
    pub query_prefix: String,
    /// Put before every chunk before it is embedded.
    pub passage_prefix: String,
    pub license: Option<String>,
    /// Where the model came from, as its manifest says.
    pub source: Option<String>,
    /// The model's tokenizer, parsed on first use (see [`Self::tokenizer`]). Shared, because
    /// cloning it copies the whole vocabulary.
    tokenizer: Arc<OnceLock<Arc<Tokenizer>>>,
}

/// What a manifest may say; every field is optional.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    name: Option<String>,
    query_prefix: Option<String>,
    passage_prefix: Option<String>,
    pooling: Option<String>,
    normalize: Option<bool>,
    license: Option<String>,
    source: Option<String>,
}

impl ModelInfo {
    /// Reads a model directory: the default model's when `explicit_dir` is `None`.
    pub fn load(explicit_dir: Option<&Path>) -> Result<Self> {
        let dir = match explicit_dir {
            Some(dir) => dir.to_path_buf(),
            None => models_home().join(DEFAULT_MODEL),
        };
        let onnx = dir.join("model.onnx");
        if !onnx.is_file() {
            if explicit_dir.is_some() {
                bail!("no model.onnx in model directory {}", dir.display());
            }
            bail!("the embedding model is not installed (looked in {}); {SETUP_HINT}", dir.display());
        }
        if !dir.join("tokenizer.json").is_file() {
            bail!("no tokenizer.json in model directory {}; {SETUP_HINT}", dir.display());
        }
        let manifest: Manifest = match read_json_if_present(&dir.join(MANIFEST))? {
            Some(value) => {
                serde_json::from_value(value).with_context(|| format!("reading {MANIFEST} in {}", dir.display()))?
            }
            None => Manifest::default(),
        };
        let export = Export::read(&dir)?;
        let pooling = match &manifest.pooling {
            Some(name) => Pooling::parse(name).with_context(|| format!("{MANIFEST} in {}", dir.display()))?,
            None => export.pooling,
        };
        let normalize = manifest.normalize.unwrap_or(export.normalize);
        let query_prefix = manifest.query_prefix.unwrap_or(export.query_prefix);
        let passage_prefix = manifest.passage_prefix.unwrap_or(export.passage_prefix);
        let config = read_json(&dir.join("config.json"))?;
        let max_sequence = read_json_if_present(&dir.join("sentence_bert_config.json"))?
            .and_then(|c| c["max_seq_length"].as_u64())
            .or_else(|| config["max_position_embeddings"].as_u64())
            .unwrap_or(512) as usize;
        let weights = weights_facts(&onnx)?;
        let dir_name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
        let recipe = Recipe { pooling, normalize, query_prefix: &query_prefix, passage_prefix: &passage_prefix };
        let id = format!("{dir_name}@{}{}", &weights.sha256[..12], recipe.id_suffix());
        Ok(Self {
            name: manifest.name.unwrap_or_else(|| dir_name.clone()),
            dir,
            id,
            dim: weights.output_width,
            max_sequence,
            pooling,
            normalize,
            query_prefix,
            passage_prefix,
            license: manifest.license,
            source: manifest.source,
            tokenizer: Arc::default(),
        })
    }

    /// The passage prefix's length in tokens: chunks are that much shorter than the model's
    /// longest input. Counting it parses the tokenizer, so only a model with a prefix, and
    /// only when asked: listing or loading models never does.
    pub fn passage_prefix_tokens(&self) -> Result<usize> {
        if self.passage_prefix.is_empty() {
            return Ok(0);
        }
        let encoded =
            self.tokenizer()?.encode(self.passage_prefix.as_str(), false).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(encoded.len())
    }

    /// The longest chunk this model takes, special tokens included: its maximum sequence,
    /// less the passage prefix.
    pub fn max_passage_sequence(&self) -> Result<usize> {
        Ok(self.max_sequence.saturating_sub(self.passage_prefix_tokens()?))
    }

    /// The model's tokenizer without truncation or padding: it counts a text's tokens. It is
    /// parsed on first use (15–40 ms), which a re-run with nothing to embed never needs.
    pub fn tokenizer(&self) -> Result<Arc<Tokenizer>> {
        if let Some(tokenizer) = self.tokenizer.get() {
            return Ok(tokenizer.clone());
        }
        let path = self.dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&path)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("reading {}", path.display()))?;
        tokenizer.with_truncation(None).map_err(|e| anyhow::anyhow!("{e}")).context("disabling truncation")?;
        tokenizer.with_padding(None);
        Ok(self.tokenizer.get_or_init(|| Arc::new(tokenizer)).clone())
    }
}

/// How the model is run, beside its weights.
struct Recipe<'a> {
    pooling: Pooling,
    normalize: bool,
    query_prefix: &'a str,
    passage_prefix: &'a str,
}

impl Recipe<'_> {
    /// Empty for plain mean pooling with normalisation and no prefixes, the only way models
    /// were run before the recipe was read from the export, so their ids stay; else `+` and a
    /// digest of the recipe.
    fn id_suffix(&self) -> String {
        if self.pooling == Pooling::Mean
            && self.normalize
            && self.query_prefix.is_empty()
            && self.passage_prefix.is_empty()
        {
            return String::new();
        }
        let recipe = serde_json::json!([self.pooling.name(), self.normalize, self.query_prefix, self.passage_prefix]);
        format!("+{}", &crate::hash::sha256_hex(recipe.to_string().as_bytes())[..8])
    }
}

/// What a sentence-transformers export says of itself.
struct Export {
    pooling: Pooling,
    normalize: bool,
    query_prefix: String,
    passage_prefix: String,
}

impl Export {
    fn read(dir: &Path) -> Result<Self> {
        let mut export = Self {
            pooling: Pooling::Mean,
            normalize: true,
            query_prefix: String::new(),
            passage_prefix: String::new(),
        };
        if let Some(modules) = read_json_if_present(&dir.join("modules.json"))? {
            let modules =
                modules.as_array().with_context(|| format!("{}: modules.json is not a list", dir.display()))?;
            let kind = |module: &serde_json::Value| module["type"].as_str().unwrap_or_default().to_string();
            export.normalize = modules.iter().any(|m| kind(m).ends_with(".Normalize"));
            let pooling = modules.iter().find(|m| kind(m).ends_with(".Pooling"));
            if let Some(module) = pooling {
                let path = dir.join(module["path"].as_str().unwrap_or("1_Pooling")).join("config.json");
                export.pooling =
                    pooling_of(&read_json(&path)?).with_context(|| format!("reading {}", path.display()))?;
            }
        }
        if let Some(config) = read_json_if_present(&dir.join("config_sentence_transformers.json"))? {
            let prompt = |name: &str| config["prompts"][name].as_str().map(str::to_string);
            export.query_prefix = prompt("query").unwrap_or_default();
            export.passage_prefix = prompt("document").or_else(|| prompt("passage")).unwrap_or_default();
        }
        Ok(export)
    }
}

/// The pooling a sentence-transformers `Pooling` module's configuration selects.
fn pooling_of(config: &serde_json::Value) -> Result<Pooling> {
    let on = |key: &str| config[key].as_bool().unwrap_or(false);
    let modes = [
        ("pooling_mode_mean_tokens", Some(Pooling::Mean)),
        ("pooling_mode_cls_token", Some(Pooling::Cls)),
        ("pooling_mode_lasttoken", Some(Pooling::LastToken)),
        ("pooling_mode_max_tokens", None),
        ("pooling_mode_mean_sqrt_len_tokens", None),
        ("pooling_mode_weightedmean_tokens", None),
    ];
    let chosen: Vec<_> = modes.iter().filter(|(key, _)| on(key)).collect();
    match chosen.as_slice() {
        [(_, Some(pooling))] => Ok(*pooling),
        [(key, None)] => bail!("{key} is not supported (mean, CLS or last-token pooling)"),
        [] => bail!("no pooling mode is set"),
        _ => bail!("several pooling modes at once are not supported"),
    }
}

/// What is read from the weights file: its digest and the width of its output.
struct WeightsFacts {
    sha256: String,
    output_width: usize,
}

/// The sha256 of the model's weights and the width its graph declares for its output.
/// Reading 23–130 MB is most of a no-change run's start-up, so both are kept beside the
/// file (`model.onnx.sha256`, when the directory is writable) with the size and mtime they
/// were taken at, and reused while both are unchanged.
fn weights_facts(onnx: &Path) -> Result<WeightsFacts> {
    let meta = std::fs::metadata(onnx).with_context(|| format!("reading {}", onnx.display()))?;
    let stamp = format!("{} {}", meta.len(), crate::scan::modified_ns(&meta));
    let sidecar = onnx.with_extension("onnx.sha256");
    if let Ok(saved) = std::fs::read_to_string(&sidecar) {
        let saved = saved.strip_prefix(&stamp).and_then(|rest| rest.strip_prefix(' ')).unwrap_or_default();
        if let [sha256, width] = saved.split_whitespace().collect::<Vec<_>>().as_slice() {
            if let (64, Ok(output_width)) = (sha256.len(), width.parse()) {
                return Ok(WeightsFacts { sha256: sha256.to_string(), output_width });
            }
        }
    }
    let bytes = std::fs::read(onnx).with_context(|| format!("reading {}", onnx.display()))?;
    let sha256 = crate::hash::sha256_hex(&bytes);
    let output_width = crate::onnx_graph::output_width(&bytes)
        .with_context(|| format!("reading the output of the ONNX graph in {}", onnx.display()))?;
    // A read-only model directory just means reading again next time.
    let _ = std::fs::write(&sidecar, format!("{stamp} {sha256} {output_width}\n"));
    Ok(WeightsFacts { sha256, output_width })
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn read_json_if_present(path: &Path) -> Result<Option<serde_json::Value>> {
    match path.is_file() {
        true => read_json(path).map(Some),
        false => Ok(None),
    }
}

/// An installed model, or a directory under the models home that is not one, with why.
pub enum Installed {
    Model(Box<ModelInfo>),
    Broken { dir: PathBuf, reason: String },
}

/// The models under [`models_home`], in name order.
pub fn installed() -> Result<Vec<Installed>> {
    let home = models_home();
    let entries = match std::fs::read_dir(&home) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error).with_context(|| format!("reading {}", home.display())),
    };
    let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    Ok(dirs
        .into_iter()
        .map(|dir| match ModelInfo::load(Some(&dir)) {
            Ok(info) => Installed::Model(Box::new(info)),
            Err(error) => Installed::Broken { reason: format!("{error:#}"), dir },
        })
        .collect())
}

/// The installed model whose id is `id`, if there is one. An id starts with its model's
/// directory name, so only that directory is read: the others' weights are not hashed (a
/// first look at a model reads all of its weights, 470 MB for multilingual-e5-small).
pub fn installed_with_id(id: &str) -> Result<Option<ModelInfo>> {
    let Some((dir_name, _)) = id.split_once('@') else { return Ok(None) };
    let dir = models_home().join(dir_name);
    if dir_name.is_empty() || dir_name.contains('/') || !dir.is_dir() {
        return Ok(None);
    }
    Ok(ModelInfo::load(Some(&dir)).ok().filter(|model| model.id == id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weights_facts_are_kept_beside_the_file_and_renewed_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let onnx = dir.path().join("model.onnx");
        let graph =
            |width| crate::onnx_graph::tests::model_with_output("last_hidden_state", &[None, None, Some(width)]);
        std::fs::write(&onnx, graph(384)).unwrap();
        let first = weights_facts(&onnx).unwrap();
        assert_eq!(first.sha256, crate::hash::sha256_hex(&graph(384)));
        assert_eq!(first.output_width, 384);
        let saved = std::fs::read_to_string(dir.path().join("model.onnx.sha256")).unwrap();
        assert!(saved.ends_with(&format!("{} 384\n", first.sha256)), "{saved}");
        assert_eq!(weights_facts(&onnx).unwrap().sha256, first.sha256, "reused");
        std::fs::write(&onnx, graph(1024)).unwrap();
        let renewed = weights_facts(&onnx).unwrap();
        assert_eq!((renewed.sha256, renewed.output_width), (crate::hash::sha256_hex(&graph(1024)), 1024));
    }

    #[test]
    fn pooling_is_read_from_the_pooling_module() {
        let config = |keys: &[&str]| {
            serde_json::Value::Object(keys.iter().map(|k| (k.to_string(), serde_json::Value::Bool(true))).collect())
        };
        assert_eq!(pooling_of(&config(&["pooling_mode_mean_tokens"])).unwrap(), Pooling::Mean);
        assert_eq!(pooling_of(&config(&["pooling_mode_cls_token"])).unwrap(), Pooling::Cls);
        assert_eq!(pooling_of(&config(&["pooling_mode_lasttoken"])).unwrap(), Pooling::LastToken);
        assert!(pooling_of(&config(&["pooling_mode_max_tokens"])).is_err());
        assert!(pooling_of(&config(&[])).is_err());
        assert!(pooling_of(&config(&["pooling_mode_cls_token", "pooling_mode_mean_tokens"])).is_err());
    }

    #[test]
    fn a_plain_recipe_keeps_the_id_and_any_other_changes_it() {
        let plain = Recipe { pooling: Pooling::Mean, normalize: true, query_prefix: "", passage_prefix: "" };
        assert_eq!(plain.id_suffix(), "");
        let e5 = Recipe { query_prefix: "query: ", passage_prefix: "passage: ", ..plain };
        let cls = Recipe { pooling: Pooling::Cls, query_prefix: "", passage_prefix: "", ..plain };
        assert!(e5.id_suffix().starts_with('+') && cls.id_suffix().starts_with('+'));
        assert_ne!(e5.id_suffix(), cls.id_suffix());
    }
}
