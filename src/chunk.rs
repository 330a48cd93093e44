//! # Chunk
//!
//! In: a [`Document`]. Out: its [`Chunk`]s, numbered from 0, each at most `chunk_size`
//! tokens of the model's own tokenizer, neighbours sharing `chunk_overlap` tokens.
//!
//! The size counts tokens without the model's special tokens, so a chunk plus `[CLS]` and
//! `[SEP]` always fits the model's maximum sequence length. Markdown is split on its
//! structure (headings, paragraphs) before sentences and words. Each chunk carries its
//! [`Origin`]: the page, sheet, slide and heading of the document where it starts (pages
//! through the one where it ends), and the document's title.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use text_splitter::{ChunkConfig, ChunkSizer, MarkdownSplitter, TextSplitter};
use tokenizers::Tokenizer;

use crate::extract::{Document, Origin};
use crate::hash::sha256_hex;

/// Tokens every sequence spends on special tokens (`[CLS]` and `[SEP]`).
pub const SPECIAL_TOKENS: usize = 2;

/// One piece of a document, ready to embed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub index: u32,
    pub content: String,
    /// sha256 of `content`: the key of the embedding cache and a payload field.
    pub content_hash: String,
    /// The model's tokens for `content`, special tokens included: what the embed stage
    /// sizes its model calls by.
    pub tokens: usize,
    /// Where in the document the chunk came from.
    pub origin: Origin,
}

/// The tokens the model reads for `text`, special tokens included. `tokenizer` counts without
/// truncation or padding ([`crate::model::ModelInfo`]'s).
pub fn count_tokens(tokenizer: &Tokenizer, text: &str) -> usize {
    tokenizer.size(text) + SPECIAL_TOKENS
}

/// Splits documents with the model's tokenizer.
pub struct Chunker {
    tokenizer: Arc<Tokenizer>,
    text: TextSplitter<Arc<Tokenizer>>,
    markdown: MarkdownSplitter<Arc<Tokenizer>>,
}

impl Chunker {
    /// `tokenizer` counts tokens (no truncation, no padding: [`crate::model::ModelInfo`]'s).
    /// `max_sequence` is the model's maximum sequence length, special tokens included.
    pub fn new(
        tokenizer: &Arc<Tokenizer>,
        chunk_size: usize,
        chunk_overlap: usize,
        max_sequence: usize,
    ) -> Result<Self> {
        Self::check(chunk_size, chunk_overlap, max_sequence)?;
        let config = || {
            ChunkConfig::new(chunk_size)
                .with_sizer(tokenizer.clone())
                .with_overlap(chunk_overlap)
                .context("invalid chunk settings")
        };
        Ok(Self {
            tokenizer: tokenizer.clone(),
            text: TextSplitter::new(config()?),
            markdown: MarkdownSplitter::new(config()?),
        })
    }

    /// Whether chunks of `chunk_size` tokens overlapping by `chunk_overlap` fit a model of
    /// `max_sequence` tokens: what [`Self::new`] checks before it builds anything.
    pub fn check(chunk_size: usize, chunk_overlap: usize, max_sequence: usize) -> Result<()> {
        let limit = max_sequence.saturating_sub(SPECIAL_TOKENS);
        if chunk_size == 0 || chunk_size > limit {
            bail!("--chunk-size must be between 1 and {limit} tokens for this model (got {chunk_size})");
        }
        if chunk_overlap >= chunk_size {
            bail!("--chunk-overlap ({chunk_overlap}) must be smaller than --chunk-size ({chunk_size})");
        }
        Ok(())
    }

    /// Splits `document` into chunks, each with its hash, token count and origin, with no
    /// limit on time or count.
    pub fn chunk(&self, document: &Document) -> Vec<Chunk> {
        let never = AtomicBool::new(false);
        let limits = ChunkLimits { time: None, max_chunks: usize::MAX, cancel: &never };
        match self.chunk_within(document, &limits) {
            Ok(chunks) => chunks,
            Err(stop) => unreachable!("chunking without limits stopped: {stop}"),
        }
    }

    /// Splits `document` into chunks within `limits`: it stops, with why, once the file's
    /// time is used up, the job is cancelled or the chunks outnumber `limits.max_chunks`.
    ///
    /// The splitter sees the text one window of at most [`WINDOW_BYTES`] at a time, so its
    /// cost, which grows with the square of a line's length, is bounded per window and the
    /// whole is linear in the text's length whatever its shape. Each window but the last
    /// gives up its last chunk, which the window's end may have cut short: the next window
    /// starts where that chunk started, as the splitter itself would have gone on, so a text
    /// comes out as if split in one piece.
    pub fn chunk_within(&self, document: &Document, limits: &ChunkLimits) -> Result<Vec<Chunk>, ChunkStop> {
        let text = document.text.as_str();
        let mut pieces: Vec<(usize, &str)> = Vec::new();
        // The end of the last piece kept: a piece that ends no further repeats what was kept
        // (the splitter skips those too).
        let mut kept_end = 0;
        let mut start = 0;
        let started = thread_cpu_time();
        while start < text.len() {
            limits.check(started, start, text.len(), pieces.len())?;
            let end = window_end(text, start);
            let window = &text[start..end];
            let mut found: Vec<(usize, &str)> = if document.is_markdown {
                self.markdown.chunk_indices(window).collect()
            } else {
                self.text.chunk_indices(window).collect()
            };
            let next_start = match found.last() {
                Some(&(offset, _)) if end < text.len() && found.len() > 1 => {
                    found.pop();
                    start + offset
                }
                _ => end,
            };
            for (offset, piece) in found {
                let piece_end = start + offset + piece.len();
                if piece_end > kept_end && !piece.trim().is_empty() {
                    kept_end = piece_end;
                    pieces.push((start + offset, piece));
                }
            }
            start = next_start;
        }
        limits.check(started, text.len(), text.len(), pieces.len())?;
        Ok(pieces
            .into_iter()
            .enumerate()
            .map(|(index, (offset, content))| Chunk {
                index: index as u32,
                content: content.to_string(),
                content_hash: sha256_hex(content.as_bytes()),
                tokens: count_tokens(&self.tokenizer, content),
                origin: document.origin(offset, offset + content.len()),
            })
            .collect())
    }
}

/// The most text the splitter sees at once, in bytes: many chunks' worth, so that windows
/// rarely decide where a chunk ends, and small enough that the splitter's cost on one long
/// line (quadratic in the line's length) stays small per window.
pub const WINDOW_BYTES: usize = 16 * 1024;

/// Where the window that starts at `start` ends: the text's end if that is near, else the
/// best boundary in the window's second half: a paragraph break, a line break, a sentence's
/// end, a space, in that order, and at worst a character boundary.
fn window_end(text: &str, start: usize) -> usize {
    let limit = start + WINDOW_BYTES;
    if limit >= text.len() {
        return text.len();
    }
    let from = start + WINDOW_BYTES / 2;
    let mut floor = limit;
    while !text.is_char_boundary(floor) {
        floor -= 1;
    }
    let half = &text.as_bytes()[from..floor];
    let after = |needle: &[u8]| half.windows(needle.len()).rposition(|w| w == needle).map(|i| from + i + needle.len());
    after(b"\n\n").or_else(|| after(b"\n")).or_else(|| after(b". ")).or_else(|| after(b" ")).unwrap_or(floor)
}

/// What one file's chunking may cost.
pub struct ChunkLimits<'a> {
    /// The file's time, if limited.
    pub time: Option<FileTime>,
    /// The most chunks the file may have (`--max-file-chunks`).
    pub max_chunks: usize,
    /// Set when the job is cancelled.
    pub cancel: &'a AtomicBool,
}

/// One file's time (`--file-timeout`), and what its extraction took of it. Chunking may work
/// for the rest, counted in the chunking thread's CPU time: chunking runs behind the model,
/// and a healthy file must not fail because the model had the cores.
#[derive(Debug, Clone, Copy)]
pub struct FileTime {
    pub limit: Duration,
    pub spent: Duration,
}

impl ChunkLimits<'_> {
    /// Whether chunking, begun when this thread had used `started` of CPU time, may go on
    /// with `done` of `total` bytes of text chunked into `chunks` chunks.
    fn check(&self, started: Duration, done: usize, total: usize, chunks: usize) -> Result<(), ChunkStop> {
        if self.cancel.load(Ordering::SeqCst) {
            return Err(ChunkStop::Cancelled);
        }
        if chunks > self.max_chunks {
            let estimated = (chunks as f64 * total as f64 / done.max(1) as f64) as usize;
            return Err(ChunkStop::TooManyChunks { chunks, estimated, limit: self.max_chunks, done, total });
        }
        if let Some(FileTime { limit, spent }) = self.time {
            if done < total && spent + thread_cpu_time().saturating_sub(started) >= limit {
                return Err(ChunkStop::TimedOut { limit, done, total });
            }
        }
        Ok(())
    }
}

/// The CPU time the calling thread has used.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes only the timespec it is given, which lives on this stack.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Why chunking stopped before the text's end.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChunkStop {
    #[error("chunking was stopped: the job is cancelled")]
    Cancelled,
    #[error(
        "chunking stopped after {} s of work (--file-timeout), with {} of {} of text chunked; raise --file-timeout to \
         give such files more time",
        limit.as_secs_f64(),
        share(*done, *total),
        megabytes(*total)
    )]
    TimedOut { limit: Duration, done: usize, total: usize },
    #[error(
        "too many chunks to embed: about {estimated} ({chunks} from the first {} of {} of text), over the limit of \
         {limit} per file; raise --max-file-chunks to embed it",
        share(*done, *total),
        megabytes(*total)
    )]
    TooManyChunks { chunks: usize, estimated: usize, limit: usize, done: usize, total: usize },
}

fn share(done: usize, total: usize) -> String {
    format!("{:.0}%", 100.0 * done as f64 / total.max(1) as f64)
}

fn megabytes(bytes: usize) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}
