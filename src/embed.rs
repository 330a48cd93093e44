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
//! Texts are sorted by their token counts and cut into model calls by [`Batching`]: a call's
//! cost, in time and in ONNX Runtime's memory, grows with its padded tokens (texts times the
//! longest text's tokens), so calls are sized by those, not by a count of texts. The results
//! are put back in input order.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

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
    /// The model's tokenizer, parsed on first use (see [`Self::tokenizer`]). Shared, because
    /// cloning it copies the whole vocabulary.
    tokenizer: Arc<OnceLock<Arc<Tokenizer>>>,
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
        if !dir.join("tokenizer.json").is_file() {
            bail!("no tokenizer.json in model directory {}; {SETUP_HINT}", dir.display());
        }
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
        let id = format!("{name}@{}", &weights_sha256(&onnx)?[..12]);
        Ok(Self { dir, name, id, dim, max_sequence, tokenizer: Arc::default() })
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

/// The sha256 of the model's weights. Hashing 23 MB is most of a no-change run's start-up,
/// so the digest is kept beside the file (`model.onnx.sha256`, when the directory is
/// writable) with the size and mtime it was taken at, and reused while both are unchanged.
fn weights_sha256(onnx: &Path) -> Result<String> {
    let meta = std::fs::metadata(onnx).with_context(|| format!("reading {}", onnx.display()))?;
    let stamp = format!("{} {}", meta.len(), crate::scan::modified_ns(&meta));
    let sidecar = onnx.with_extension("onnx.sha256");
    if let Ok(saved) = std::fs::read_to_string(&sidecar) {
        if let Some(digest) = saved.strip_prefix(&stamp).and_then(|rest| rest.strip_prefix(' ')) {
            if digest.trim().len() == 64 {
                return Ok(digest.trim().to_string());
            }
        }
    }
    let bytes = std::fs::read(onnx).with_context(|| format!("reading {}", onnx.display()))?;
    let digest = crate::hash::sha256_hex(&bytes);
    // A read-only model directory just means hashing again next time.
    let _ = std::fs::write(&sidecar, format!("{stamp} {digest}\n"));
    Ok(digest)
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
    threads: usize,
}

/// How texts are cut into model calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// The most texts in one call (`--embed-batch-size`).
    pub max_texts: usize,
    /// The most padded tokens in one call (`--embed-batch-tokens`): its texts times its
    /// longest text's tokens, special tokens included. A longer text goes alone.
    pub max_tokens: usize,
}

impl Default for Batching {
    /// The measured defaults (docs/performance.md): on 150–200-token chunks of real documents
    /// a budget of this many padded tokens is the fastest, and bigger calls cost memory.
    fn default() -> Self {
        Self { max_texts: 32, max_tokens: 512 }
    }
}

impl Batching {
    /// Cuts texts whose token counts are `sorted_tokens`, longest first, into consecutive
    /// model calls: each takes texts while its count times its first (longest) text's tokens
    /// stays within `max_tokens` and its count within `max_texts`, and always at least one.
    pub fn calls(&self, sorted_tokens: &[usize]) -> Vec<Range<usize>> {
        let mut calls = Vec::new();
        let mut start = 0;
        while start < sorted_tokens.len() {
            let longest = sorted_tokens[start].max(1);
            let fits = (self.max_tokens / longest).clamp(1, self.max_texts.max(1));
            let end = (start + fits).min(sorted_tokens.len());
            calls.push(start..end);
            start = end;
        }
        calls
    }
}

impl Embedder {
    /// Checks that ONNX Runtime is installed. `threads` is ONNX Runtime's intra-op thread
    /// count.
    pub fn new(info: ModelInfo, threads: usize) -> Result<Self> {
        locate_onnxruntime()?;
        Ok(Self { session: None, info, threads: threads.max(1) })
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

    /// Embeds `texts`, each given with its token count (special tokens included, as
    /// [`crate::chunk::count_tokens`] gives it), in model calls cut by `batching`; returns one
    /// vector per text, in input order.
    pub fn embed(&mut self, texts: &[(&str, usize)], batching: Batching) -> Result<Vec<Vec<f32>>> {
        // The model truncates what is longer than its maximum sequence, so padding does too.
        let tokens = |i: usize| texts[i].1.min(self.info.max_sequence);
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(tokens(i)));
        let sorted_tokens: Vec<usize> = order.iter().map(|&i| tokens(i)).collect();
        let mut vectors = vec![Vec::new(); texts.len()];
        for call in batching.calls(&sorted_tokens) {
            let batch = &order[call];
            let batch_texts: Vec<&str> = batch.iter().map(|&i| texts[i].0).collect();
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

/// Makes freed large blocks go back to the system at once, for the whole process. Call it
/// first thing in `main`, before any thread starts.
///
/// Building the session folds the model's int8 weights into float copies, over 100 MB of
/// short-lived blocks. glibc answers the first such free by raising its map threshold (up to
/// 32 MiB), so from then on blocks of that size come from the heap and stay resident after
/// they are freed. A fixed threshold keeps them in maps of their own: measured on 20,000
/// one-line files, the job's anonymous memory peaked at 194 MiB instead of 248 MiB, at the
/// same speed.
pub fn return_freed_memory_promptly() {
    // Blocks of 256 KiB and more get maps of their own.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt changes a tunable of the allocator; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
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

#[cfg(test)]
mod tests {
    use super::{weights_sha256, Batching};

    #[test]
    fn the_weights_digest_is_kept_beside_the_file_and_renewed_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let onnx = dir.path().join("model.onnx");
        std::fs::write(&onnx, b"weights one").unwrap();
        let first = weights_sha256(&onnx).unwrap();
        assert_eq!(first, crate::hash::sha256_hex(b"weights one"));
        assert!(std::fs::read_to_string(dir.path().join("model.onnx.sha256"))
            .unwrap()
            .ends_with(&format!("{first}\n")));
        assert_eq!(weights_sha256(&onnx).unwrap(), first, "reused");
        std::fs::write(&onnx, b"weights two, longer").unwrap();
        assert_eq!(weights_sha256(&onnx).unwrap(), crate::hash::sha256_hex(b"weights two, longer"), "renewed");
    }

    #[test]
    fn calls_are_cut_by_padded_tokens_and_by_texts() {
        let batching = Batching { max_texts: 3, max_tokens: 400 };
        // 2 × 200 fits 400; 3 × 150 does not; the short tail is capped by the text count.
        let calls = batching.calls(&[200, 190, 150, 120, 20, 10, 10, 5]);
        assert_eq!(calls, vec![0..2, 2..4, 4..7, 7..8]);
        // A text longer than the budget goes alone; nothing is dropped.
        assert_eq!(batching.calls(&[900, 300, 10]), vec![0..1, 1..2, 2..3]);
        assert!(batching.calls(&[]).is_empty());
    }
}
