//! # Embed
//!
//! In: chunk texts. Out: one L2-normalised vector per text, in input order, from a local
//! fastembed-compatible ONNX model (default: all-MiniLM-L6-v2 int8, 384 dimensions, mean
//! pooling).
//!
//! Where the model and ONNX Runtime live: `--model-dir` / `INGEST_MODEL_DIR`, else the
//! directory `scripts/setup.sh` installs into (`$INGEST_HOME`, default
//! `~/.local/share/ingest`). ONNX Runtime is loaded at run time from `ORT_DYLIB_PATH`, or
//! from the same install. Nothing is ever downloaded.
//!
//! Texts are sorted by length before batching so that each batch carries little padding;
//! the results are put back in input order.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use fastembed::{InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel};
use tokenizers::Tokenizer;

/// The directory name of the default model under `$INGEST_HOME/models`.
pub const DEFAULT_MODEL: &str = "all-MiniLM-L6-v2-int8";
/// The ONNX Runtime version `scripts/setup.sh` installs.
pub const ORT_VERSION: &str = "1.31.1";

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

/// A model directory's identity and shape.
#[derive(Clone)]
pub struct ModelInfo {
    pub dir: PathBuf,
    /// Human name (the directory name).
    pub name: String,
    /// Name plus a prefix of the ONNX file's sha256: changes whenever the weights do.
    pub id: String,
    pub dim: usize,
    /// Maximum sequence length, special tokens included.
    pub max_sequence: usize,
    /// The model's tokenizer without truncation or padding: it counts a text's tokens.
    /// Shared, because cloning it copies the whole vocabulary.
    pub tokenizer: Arc<Tokenizer>,
}

impl ModelInfo {
    /// Reads a model directory (`model.onnx`, `tokenizer.json`, `config.json`, ...).
    pub fn load(explicit_dir: Option<&Path>) -> Result<Self> {
        let dir = match explicit_dir {
            Some(dir) => dir.to_path_buf(),
            None => runtime_home().join("models").join(DEFAULT_MODEL),
        };
        let onnx = dir.join("model.onnx");
        if !onnx.is_file() {
            if explicit_dir.is_some() {
                bail!("no model.onnx in model directory {}", dir.display());
            }
            bail!("the embedding model is not installed (looked in {}); {SETUP_HINT}", dir.display());
        }
        let config: serde_json::Value = read_json(&dir.join("config.json"))?;
        let dim = config["hidden_size"].as_u64().context("config.json has no hidden_size")? as usize;
        let max_sequence = read_json(&dir.join("sentence_bert_config.json"))
            .ok()
            .and_then(|c: serde_json::Value| c["max_seq_length"].as_u64())
            .or_else(|| config["max_position_embeddings"].as_u64())
            .unwrap_or(512) as usize;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("reading {}", dir.join("tokenizer.json").display()))?;
        tokenizer.with_truncation(None).map_err(|e| anyhow::anyhow!("{e}")).context("disabling truncation")?;
        tokenizer.with_padding(None);
        let onnx_bytes = std::fs::read(&onnx).with_context(|| format!("reading {}", onnx.display()))?;
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
        let id = format!("{name}@{}", &crate::hash::sha256_hex(&onnx_bytes)[..12]);
        Ok(Self { dir, name, id, dim, max_sequence, tokenizer: Arc::new(tokenizer) })
    }
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// A model session, built by the first call that needs it: a run with nothing to embed
/// never loads the model.
pub struct Embedder {
    session: Option<TextEmbedding>,
    pub info: ModelInfo,
    batch_size: usize,
    threads: usize,
}

impl Embedder {
    /// Checks that ONNX Runtime is installed. `threads` is ONNX Runtime's intra-op thread
    /// count.
    pub fn new(info: ModelInfo, batch_size: usize, threads: usize) -> Result<Self> {
        locate_onnxruntime()?;
        Ok(Self { session: None, info, batch_size: batch_size.max(1), threads: threads.max(1) })
    }

    /// Loads the session now rather than on first use.
    pub fn load(&mut self) -> Result<()> {
        self.session().map(|_| ())
    }

    /// The ONNX session, loaded on first use.
    fn session(&mut self) -> Result<&mut TextEmbedding> {
        let session = match self.session.take() {
            Some(session) => session,
            None => load_session(&self.info, self.threads)?,
        };
        Ok(self.session.insert(session))
    }

    /// Embeds `texts`, returning vectors in the same order.
    pub fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(texts[i].len()));
        let mut vectors = vec![Vec::new(); texts.len()];
        for batch in order.chunks(self.batch_size) {
            let batch_texts: Vec<&str> = batch.iter().map(|&i| texts[i]).collect();
            let embedded =
                self.session()?.embed(&batch_texts, Some(batch_texts.len())).map_err(|e| anyhow::anyhow!("{e}"))?;
            for (&i, vector) in batch.iter().zip(embedded) {
                vectors[i] = vector;
            }
        }
        Ok(vectors)
    }

    /// Embeds one text without reordering: the plain path the sorted path is checked against.
    pub fn embed_one(&mut self, text: &str) -> Result<Vec<f32>> {
        let mut out = self.session()?.embed([text], Some(1)).map_err(|e| anyhow::anyhow!("{e}"))?;
        out.pop().context("the model returned no vector")
    }
}

/// Builds the ONNX session. Its intra-op threads sleep instead of spinning while they wait
/// for work: on a machine with as many cores as threads, a spinning thread takes the core
/// the pipeline's other stages need, and the bare model runs no slower without it.
fn load_session(info: &ModelInfo, threads: usize) -> Result<TextEmbedding> {
    let read = |name: &str| {
        std::fs::read(info.dir.join(name)).with_context(|| format!("reading {}", info.dir.join(name).display()))
    };
    let files = TokenizerFiles {
        tokenizer_file: read("tokenizer.json")?,
        config_file: read("config.json")?,
        special_tokens_map_file: read("special_tokens_map.json")?,
        tokenizer_config_file: read("tokenizer_config.json")?,
    };
    let model = UserDefinedEmbeddingModel::new(read("model.onnx")?, files).with_pooling(Pooling::Mean);
    let options = InitOptionsUserDefined::new()
        .with_max_length(info.max_sequence)
        .with_intra_threads(threads)
        .with_session_config("session.intra_op.allow_spinning", "0");
    TextEmbedding::try_new_from_user_defined(model, options)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("loading the ONNX model in {}", info.dir.display()))
}
