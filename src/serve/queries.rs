//! # Query embedding, batched across requests
//!
//! In: query texts from concurrent requests. Out: each query's dense vector, from one model
//! kept loaded on a thread of its own. The thread takes every query waiting when it is free
//! (up to [`MOST_PER_CALL`]) and embeds them in one model call, so that under load the model
//! runs full batches instead of one query a call. The queue in front of it is bounded: a
//! query that finds it full is refused at once ([`Full`]), which the service answers with 429.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use tokio::sync::oneshot;

use crate::embed::Embedder;
use crate::model::ModelInfo;

/// Queries embedded in one model call at most.
pub const MOST_PER_CALL: usize = 32;

/// The queue was full: the service is busier than it can answer.
#[derive(Debug, thiserror::Error)]
#[error("the service is busy: {0} queries are waiting for the model; retry shortly")]
pub struct Full(pub usize);

/// One query waiting for the model, and where its vector goes.
struct Waiting {
    query: String,
    reply: oneshot::Sender<Result<Vec<f32>, String>>,
}

/// What one model call did, for the metrics.
#[derive(Debug, Clone, Copy)]
pub struct Call {
    pub queries: usize,
    pub seconds: f64,
}

/// A model, loaded once, embedding the queries of every request.
pub struct QueryEmbedder {
    model: ModelInfo,
    queue: Sender<Waiting>,
    /// Queries sent and not yet answered.
    waiting: Arc<AtomicUsize>,
}

impl QueryEmbedder {
    /// Loads `model` (with `threads` threads for ONNX Runtime) on a thread of its own, in
    /// front of a queue of `capacity` queries; `on_call` hears of every model call.
    pub fn start(
        model: ModelInfo,
        threads: usize,
        capacity: usize,
        on_call: impl Fn(Call) + Send + 'static,
    ) -> Result<Self> {
        let mut embedder = Embedder::new(model.clone(), threads)?;
        embedder.load()?;
        let (queue, incoming) = crossbeam_channel::bounded(capacity.max(1));
        let waiting = Arc::new(AtomicUsize::new(0));
        let counted = waiting.clone();
        std::thread::Builder::new()
            .name(format!("query model {}", model.id))
            .spawn(move || embed_until_closed(embedder, incoming, counted, on_call))
            .map_err(|e| anyhow!("cannot start the query model's thread: {e}"))?;
        Ok(Self { model, queue, waiting })
    }

    /// The model the vectors come from.
    pub fn model(&self) -> &ModelInfo {
        &self.model
    }

    /// Queries waiting for the model now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// The vector of `query`; [`Full`] at once when the queue is full.
    pub async fn embed(&self, query: &str) -> Result<Vec<f32>> {
        let (reply, answer) = oneshot::channel();
        self.waiting.fetch_add(1, Ordering::Relaxed);
        if let Err(refused) = self.queue.try_send(Waiting { query: query.to_string(), reply }) {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(match refused {
                TrySendError::Full(_) => Full(self.queue.len()).into(),
                TrySendError::Disconnected(_) => anyhow!("the query model's thread has stopped"),
            });
        }
        answer.await.map_err(|_| anyhow!("the query model's thread has stopped"))?.map_err(|e| anyhow!(e))
    }
}

/// The model thread: a query, then every other one already waiting, in one call; until
/// every [`QueryEmbedder`] holding the queue is dropped.
fn embed_until_closed(
    mut embedder: Embedder,
    incoming: Receiver<Waiting>,
    waiting: Arc<AtomicUsize>,
    on_call: impl Fn(Call),
) {
    while let Ok(first) = incoming.recv() {
        let mut batch = vec![first];
        // A moment for the queries of requests arriving together to join this call.
        let gather_until = Instant::now() + Duration::from_micros(200);
        while batch.len() < MOST_PER_CALL {
            match incoming.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) if Instant::now() < gather_until => std::thread::yield_now(),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let queries: Vec<&str> = batch.iter().map(|w| w.query.as_str()).collect();
        let vectors = embedder.embed_queries(&queries).map_err(|e| format!("{e:#}"));
        on_call(Call { queries: batch.len(), seconds: started.elapsed().as_secs_f64() });
        waiting.fetch_sub(batch.len(), Ordering::Relaxed);
        match vectors {
            Ok(vectors) => batch.into_iter().zip(vectors).for_each(|(w, vector)| {
                let _ = w.reply.send(Ok(vector));
            }),
            Err(error) => batch.into_iter().for_each(|w| {
                let _ = w.reply.send(Err(error.clone()));
            }),
        }
    }
}
