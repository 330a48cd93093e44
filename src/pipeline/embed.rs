//! # Embed stage
//!
//! In: prepared files, each with its chunks, from the queue the prepare stage fills. Out: the
//! same files with one vector per chunk, in the order they came. Chunks of many small files
//! share model calls, sized by padded tokens ([`Batching`]) and sorted by length within a
//! window; chunks the embedding cache knows are not embedded again. A worker's file whose
//! lease it knows lost is dropped here, before the model. [`spawn`] starts the stage's thread.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use tokio::sync::mpsc;

use super::prepare::{ChunkBudget, ChunkReceiver};
use super::{EmbeddedFile, Extracted, Outcome, Stages};
use crate::cache::EmbeddingCache;
use crate::catalog::Catalog;
use crate::chunk::Chunk;
use crate::embed::{Batching, Embedder};
use crate::progress::{Counters, Stage};

/// How many model calls' worth of chunks (by tokens, and by texts) the embed stage gathers,
/// when the prepare stage has them ready, before it sorts them by tokens and runs the model:
/// a wider window puts chunks of like length together, so calls carry less padding.
const SORT_WINDOW_BATCHES: usize = 4;

/// Whether chunks of `tokens` tokens in all, `texts` of them, fill a sort window.
fn fills_window(batching: Batching, tokens: usize, texts: usize) -> bool {
    tokens >= batching.max_tokens * SORT_WINDOW_BATCHES || texts >= batching.max_texts * SORT_WINDOW_BATCHES
}

/// How many of `chunks` make the next window: up to the first that fills it, all if none
/// does (at least one, given any).
fn window_len(batching: Batching, chunks: &[&Chunk]) -> usize {
    let mut tokens = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        tokens += chunk.tokens;
        if fills_window(batching, tokens, i + 1) {
            return i + 1;
        }
    }
    chunks.len()
}

/// Starts the embed thread: it takes prepared files from `input` (whose chunks `budget`
/// counts), runs [`embed_stage`] over them for `stages`' job and sends what it made to `output`.
/// `--full` re-embeds for real; every other run reuses vectors the model already made.
pub(super) fn spawn(
    stages: &Stages,
    embedder: Embedder,
    cancel: &Arc<AtomicBool>,
    input: crossbeam_channel::Receiver<Outcome>,
    budget: Arc<ChunkBudget>,
    output: mpsc::Sender<Outcome>,
) -> Result<JoinHandle<Result<()>>> {
    let Stages { settings, catalog, counters, .. } = *stages;
    let batching = settings.embed_batching;
    // The cache and the fence are the catalog's, not the collection's.
    let catalog = Catalog::clone(catalog);
    let cache = (!settings.full)
        .then(|| EmbeddingCache::new(catalog.clone(), &embedder.info.id, tokio::runtime::Handle::current()));
    let (counters, cancel) = (counters.clone(), cancel.clone());
    let thread = std::thread::Builder::new().name("embed".into()).spawn(move || {
        let input = ChunkReceiver { receiver: input, budget: &budget };
        let embedded = embed_stage(embedder, batching, &input, &output, &counters, &cancel, cache.as_ref(), &catalog);
        // Nothing is taken off the queue any more: senders waiting for room must not wait.
        budget.close();
        embedded
    })?;
    Ok(thread)
}

/// Runs the model over prepared files, batching chunks across small files; chunks the
/// embedding cache knows are not embedded again. It takes what the prepare stage has ready,
/// up to a window of [`SORT_WINDOW_BATCHES`] model calls, so the model never waits for a full
/// window; a file bigger than a window is embedded a window at a time. Files whose lease
/// `catalog`'s fence (a worker's) knows lost are dropped unembedded: another worker has them.
#[allow(clippy::too_many_arguments)] // the stage's input, output and the job's shared parts
fn embed_stage(
    mut embedder: Embedder,
    batching: Batching,
    input: &ChunkReceiver,
    output: &mpsc::Sender<Outcome>,
    counters: &Counters,
    cancel: &AtomicBool,
    cache: Option<&EmbeddingCache>,
    catalog: &Catalog,
) -> Result<()> {
    let send = |outcome| output.blocking_send(outcome).map_err(|_| anyhow::anyhow!("the commit stage stopped"));
    let mut pending: Vec<EmbeddedFile> = Vec::new();
    let (mut pending_tokens, mut pending_chunks) = (0, 0);
    loop {
        let next = if pending.is_empty() { input.recv() } else { input.try_recv() };
        match next {
            Some(Outcome::Changed(Extracted::Embedded(file)))
                if catalog.lease_known_lost(&file.prepared.facts.path) =>
            {
                continue
            }
            Some(Outcome::Changed(Extracted::Embedded(file))) => {
                pending_tokens += file.prepared.chunks.iter().map(|c| c.tokens).sum::<usize>();
                pending_chunks += file.prepared.chunks.len();
                pending.push(file);
                if !fills_window(batching, pending_tokens, pending_chunks) {
                    continue;
                }
            }
            Some(other) => {
                send(other)?;
                continue;
            }
            None if pending.is_empty() => return Ok(()),
            None => {}
        }
        if cancel.load(Ordering::SeqCst) {
            return Ok(());
        }
        let chunks: Vec<&Chunk> = pending.iter().flat_map(|f| f.prepared.chunks.iter()).collect();
        let mut known = match cache {
            Some(cache) => {
                let hashes: HashSet<&str> = chunks.iter().map(|c| c.content_hash.as_str()).collect();
                counters.stages.time(Stage::Cache, || cache.lookup(&hashes.into_iter().collect::<Vec<_>>()))?
            }
            None => HashMap::new(),
        };
        // With the cache, each distinct text it does not know is embedded once; without it
        // (`--full`), every chunk goes to the model.
        let mut seen = HashSet::new();
        let misses: Vec<&Chunk> = chunks
            .iter()
            .filter(|c| {
                cache.is_none() || (!known.contains_key(&c.content_hash) && seen.insert(c.content_hash.as_str()))
            })
            .copied()
            .collect();
        let mut fresh = Vec::with_capacity(misses.len());
        let mut rest = misses.as_slice();
        while !rest.is_empty() {
            if cancel.load(Ordering::SeqCst) {
                return Ok(());
            }
            let (window, after) = rest.split_at(window_len(batching, rest));
            let texts: Vec<(&str, usize)> = window.iter().map(|c| (c.content.as_str(), c.tokens)).collect();
            let vectors = counters.stages.time(Stage::Embed, || embedder.embed(&texts, batching));
            fresh.extend(vectors.context("embedding chunks")?);
            Counters::add(&counters.chunks_embedded, window.len() as u64);
            rest = after;
        }
        if let Some(cache) = cache {
            let entries: Vec<(&str, &[f32])> =
                misses.iter().zip(&fresh).map(|(c, v)| (c.content_hash.as_str(), v.as_slice())).collect();
            counters.stages.time(Stage::Cache, || cache.store(&entries))?;
        }
        Counters::add(&counters.cache_hits, (chunks.len() - misses.len()) as u64);
        known.extend(misses.iter().map(|c| c.content_hash.clone()).zip(fresh));
        for mut file in pending.drain(..) {
            file.vectors = file.prepared.chunks.iter().map(|c| known[&c.content_hash].clone()).collect();
            send(Outcome::Changed(Extracted::Embedded(file)))?;
        }
        (pending_tokens, pending_chunks) = (0, 0);
    }
}
