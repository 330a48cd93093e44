//! # Embed
//!
//! In: chunk texts, or a query. Out: one vector per text, in input order, from a local ONNX
//! model described by its [`ModelInfo`] (default: all-MiniLM-L6-v2 int8, 384 dimensions,
//! mean pooling): the model's passage or query prefix put before each text, its token
//! vectors pooled as the model says, and scaled to unit length when the model says so.
//!
//! Texts are sorted by their token counts and cut into model calls by [`Batching`]: a call's
//! cost, in time and in ONNX Runtime's memory, grows with its padded tokens (texts times the
//! longest text's tokens), so calls are sized by those, not by a count of texts. The results
//! are put back in input order.

use std::ops::Range;

use anyhow::{Context, Result};
use fastembed::{
    EmbeddingOutput, InitOptionsUserDefined, OutputKey, SingleBatchOutput, TextEmbedding, TokenizerFiles,
    UserDefinedEmbeddingModel,
};

use crate::model::{locate_onnxruntime, ModelInfo, Pooling};

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
        let prefix = self.info.passage_prefix_tokens()?;
        let tokens = |i: usize| (texts[i].1 + prefix).min(self.info.max_sequence);
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(tokens(i)));
        let sorted_tokens: Vec<usize> = order.iter().map(|&i| tokens(i)).collect();
        let mut vectors = vec![Vec::new(); texts.len()];
        for call in batching.calls(&sorted_tokens) {
            let batch = &order[call];
            let batch_texts: Vec<String> =
                batch.iter().map(|&i| format!("{}{}", self.info.passage_prefix, texts[i].0)).collect();
            let embedded = self.run(&batch_texts)?;
            for (&i, vector) in batch.iter().zip(embedded) {
                vectors[i] = vector;
            }
        }
        Ok(vectors)
    }

    /// Embeds one passage without reordering: the plain path the sorted path is checked
    /// against.
    pub fn embed_one(&mut self, text: &str) -> Result<Vec<f32>> {
        self.run_one(format!("{}{}", self.info.passage_prefix, text))
    }

    /// Embeds a search query, with the model's query prefix.
    pub fn embed_query(&mut self, query: &str) -> Result<Vec<f32>> {
        self.embed_queries(&[query])?.pop().context("the model returned no vector")
    }

    /// Embeds search queries in one model call, each with the model's query prefix; one
    /// vector per query, in order.
    pub fn embed_queries(&mut self, queries: &[&str]) -> Result<Vec<Vec<f32>>> {
        let texts: Vec<String> = queries.iter().map(|query| format!("{}{query}", self.info.query_prefix)).collect();
        self.run(&texts)
    }

    /// One model call on one text, its prefix already in place.
    fn run_one(&mut self, text: String) -> Result<Vec<f32>> {
        self.run(&[text])?.pop().context("the model returned no vector")
    }

    /// One model call on `texts`, prefixes already in place: pooled, normalised if the model
    /// says so, and each vector checked against the width the model declares.
    fn run(&mut self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let (pooling, normalize, dim) = (self.info.pooling, self.info.normalize, self.info.dim);
        let output: EmbeddingOutput =
            self.session()?.transform(texts, Some(texts.len().max(1))).map_err(|e| anyhow::anyhow!("{e}"))?;
        let vectors = output
            .export_with_transformer(|batches| Ok(batches.iter().map(|batch| pool(batch, pooling)).collect::<Vec<_>>()))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut all = Vec::with_capacity(texts.len());
        for batch in vectors {
            for mut vector in batch? {
                anyhow::ensure!(
                    vector.len() == dim,
                    "the model in {} made a {}-dimensional vector, but its graph declares {dim}",
                    self.info.dir.display(),
                    vector.len()
                );
                if normalize {
                    scale_to_unit_length(&mut vector);
                }
                all.push(vector);
            }
        }
        Ok(all)
    }
}

/// The outputs a text vector is read from, in fastembed's order after a sole output.
const OUTPUTS: [OutputKey; 4] = [
    OutputKey::OnlyOne,
    OutputKey::ByName("text_embeds"),
    OutputKey::ByName("last_hidden_state"),
    OutputKey::ByName("sentence_embedding"),
];

/// One vector per text of a model call: its token vectors pooled, or the model's own sentence
/// vectors when its output is already one per text.
fn pool(batch: &SingleBatchOutput, pooling: Pooling) -> Result<Vec<Vec<f32>>> {
    let output = batch.select_output(&OUTPUTS.as_slice()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (output, mask) = (&output, &batch.attention_mask_array);
    match *output.shape() {
        [texts, width] => Ok((0..texts).map(|t| (0..width).map(|d| output[[t, d].as_slice()]).collect()).collect()),
        [texts, tokens, width] => Ok((0..texts)
            .map(|t| {
                let kept: Vec<usize> = (0..tokens).filter(|&k| mask[[t, k]] != 0).collect();
                let token = |k: usize| (0..width).map(move |d| output[[t, k, d].as_slice()]);
                match pooling {
                    Pooling::Cls => token(0).collect(),
                    Pooling::LastToken => token(kept.last().copied().unwrap_or(0)).collect(),
                    Pooling::Mean => {
                        let mut sum = vec![0f32; width];
                        for &k in &kept {
                            sum.iter_mut().zip(token(k)).for_each(|(s, v)| *s += v);
                        }
                        let count = kept.len().max(1) as f32;
                        sum.into_iter().map(|s| s / count).collect()
                    }
                }
            })
            .collect()),
        ref shape => anyhow::bail!("the model's output has shape {shape:?}, not one vector or one per token"),
    }
}

/// Scales `vector` to length one (a zero vector stays as it is).
fn scale_to_unit_length(vector: &mut [f32]) {
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|v| *v /= norm);
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
    // Pooling is done by `Embedder::run`, as the model's own files say.
    let model = UserDefinedEmbeddingModel::new(read("model.onnx")?, files);
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
    use super::Batching;

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
