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

use std::sync::Arc;

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
/// truncation or padding ([`crate::embed::ModelInfo`]'s).
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
    /// `tokenizer` counts tokens (no truncation, no padding: [`crate::embed::ModelInfo`]'s).
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

    /// Splits `document` into chunks, each with its hash, token count and origin.
    pub fn chunk(&self, document: &Document) -> Vec<Chunk> {
        let pieces: Vec<(usize, &str)> = if document.is_markdown {
            self.markdown.chunk_indices(&document.text).collect()
        } else {
            self.text.chunk_indices(&document.text).collect()
        };
        pieces
            .into_iter()
            .filter(|(_, piece)| !piece.trim().is_empty())
            .enumerate()
            .map(|(index, (offset, content))| Chunk {
                index: index as u32,
                content: content.to_string(),
                content_hash: sha256_hex(content.as_bytes()),
                tokens: count_tokens(&self.tokenizer, content),
                origin: document.origin(offset, offset + content.len()),
            })
            .collect()
    }
}
