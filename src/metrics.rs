//! # A worker's metrics
//!
//! In: what a worker does (the live counters of each job it works on, the items it lost to
//! other workers, the outage clocks of the servers it calls) and the catalog (each queued
//! job's items by state, the live generation). Out: the Prometheus text a scrape of
//! `ingest worker --metrics-listen ADDR` gets at `/metrics` ([`listen`]), in the OpenMetrics
//! format with the standard suffixes (`_total`, `_seconds`). Values are read at each scrape
//! from the counters the worker keeps anyway, so the worker pays nothing between scrapes.
//! No label holds a secret: the servers' URLs never reach a metric.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::catalog::{live_generation, CollectionCatalog, Fence, JobStatus};
use crate::progress::{Counters, FailureClass};
use crate::retry::OutageClock;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Service {
    service: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabel {
    stage: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabel {
    job: String,
    generation: i64,
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Live {
    collection: String,
    generation: i64,
    model: String,
}

/// The catalog of one generation, whose queued jobs the worker may work on.
#[derive(Clone)]
pub struct WatchedGeneration {
    pub number: i64,
    pub catalog: CollectionCatalog,
}

/// What the worker tells its metrics as it goes.
#[derive(Default)]
struct Sources {
    /// The counters of every job this worker has worked on, the current one last.
    jobs: Vec<Arc<Counters>>,
    fence: Option<Arc<Fence>>,
    clocks: Vec<Arc<OutageClock>>,
    generations: Vec<WatchedGeneration>,
}

/// A worker's metrics.
pub struct WorkerMetrics {
    named: CollectionCatalog,
    sources: Mutex<Sources>,
    registry: Registry,
    claims: Counter,
    files_done: Counter,
    failures: Family<Reason, Counter>,
    lease_losses: Counter,
    retries: Family<Service, Counter>,
    outage_wait: Family<Service, Counter<f64>>,
    chunks_embedded: Counter,
    embed_seconds: Counter<f64>,
    stage_seconds: Family<StageLabel, Counter<f64>>,
    queue: Family<QueueLabel, Gauge>,
    live: Family<Live, Gauge>,
}

impl WorkerMetrics {
    /// The metrics of a worker on the collection whose catalog is `named`.
    pub fn new(named: CollectionCatalog) -> Self {
        let mut registry = Registry::with_prefix("ingest_worker");
        let claims = Counter::default();
        registry.register("claims", "Work items this worker claimed", claims.clone());
        let files_done = Counter::default();
        registry.register(
            "files_done",
            "Files this worker finished, in any way (embedded, deleted, failed)",
            files_done.clone(),
        );
        let failures = Family::<Reason, Counter>::default();
        registry.register("failures", "Files that failed, by the class of their reason", failures.clone());
        let lease_losses = Counter::default();
        registry.register(
            "lease_losses",
            "Items this worker lost to another after its lease on them ran out",
            lease_losses.clone(),
        );
        let retries = Family::<Service, Counter>::default();
        registry.register("retries", "Calls to a server retried after it could not be reached", retries.clone());
        let outage_wait = Family::<Service, Counter<f64>>::default();
        registry.register_with_unit(
            "outage_wait",
            "Time spent waiting for a server that could not be reached",
            Unit::Seconds,
            outage_wait.clone(),
        );
        let chunks_embedded = Counter::default();
        registry.register("chunks_embedded", "Chunks embedded by the model", chunks_embedded.clone());
        let embed_seconds = Counter::<f64>::default();
        registry.register_with_unit("embed", "Time the model spent embedding", Unit::Seconds, embed_seconds.clone());
        let stage_seconds = Family::<StageLabel, Counter<f64>>::default();
        registry.register_with_unit(
            "stage",
            "Time spent working in each pipeline stage, summed over its threads",
            Unit::Seconds,
            stage_seconds.clone(),
        );
        let queue = Family::<QueueLabel, Gauge>::default();
        registry.register("queue_items", "Work items of each queued job, by state", queue.clone());
        let live = Family::<Live, Gauge>::default();
        registry.register(
            "live_generation",
            "The collection's live generation, with its model (always 1)",
            live.clone(),
        );
        Self {
            named,
            sources: Mutex::new(Sources::default()),
            registry,
            claims,
            files_done,
            failures,
            lease_losses,
            retries,
            outage_wait,
            chunks_embedded,
            embed_seconds,
            stage_seconds,
            queue,
            live,
        }
    }

    fn sources(&self) -> std::sync::MutexGuard<'_, Sources> {
        self.sources.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The fence of the worker's claims, which counts the items it lost.
    pub fn watch_fence(&self, fence: Arc<Fence>) {
        self.sources().fence = Some(fence);
    }

    /// The generations the worker looks in for work, and the outage clocks of their stores and
    /// of the catalog.
    pub fn watch_generations(&self, generations: Vec<WatchedGeneration>, clocks: Vec<Arc<OutageClock>>) {
        let mut sources = self.sources();
        sources.generations = generations;
        for clock in clocks {
            if !sources.clocks.iter().any(|known| Arc::ptr_eq(known, &clock)) {
                sources.clocks.push(clock);
            }
        }
    }

    /// The counters of a job the worker starts working on.
    pub fn watch_job(&self, counters: Arc<Counters>) {
        self.sources().jobs.push(counters);
    }

    /// Brings every metric up to what its source says now, and renders them.
    pub async fn render(&self) -> String {
        let generations = {
            let sources = self.sources();
            self.count_work(&sources);
            sources.generations.clone()
        };
        self.queue.clear();
        for generation in &generations {
            let Ok(jobs) = generation.catalog.jobs(20).await else { continue };
            for job in jobs.iter().filter(|job| job.status == JobStatus::Processing) {
                let Ok(depth) = generation.catalog.queue_depth(&job.id).await else { continue };
                for (state, items) in [
                    ("pending", depth.pending),
                    ("leased", depth.leased),
                    ("done", depth.done),
                    ("parked", depth.parked),
                ] {
                    let label = QueueLabel { job: job.id.clone(), generation: generation.number, state: state.into() };
                    self.queue.get_or_create(&label).set(items);
                }
            }
        }
        if let Ok(all) = self.named.generations().await {
            self.live.clear();
            if let Some(live) = live_generation(&all) {
                let label = Live {
                    collection: live.collection.clone(),
                    generation: live.number,
                    model: live.recipe.model_id.clone(),
                };
                self.live.get_or_create(&label).set(1);
            }
        }
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// The counters' totals over the worker's jobs, its lost items and its outage clocks.
    fn count_work(&self, sources: &Sources) {
        let load = |counter: &std::sync::atomic::AtomicU64| counter.load(std::sync::atomic::Ordering::Relaxed);
        let sum = |of: &dyn Fn(&Counters) -> u64| sources.jobs.iter().map(|job| of(job)).sum::<u64>();
        raise(&self.claims, sum(&|c| load(&c.files_seen)));
        raise(&self.files_done, sum(&|c| load(&c.files_done)));
        raise(&self.chunks_embedded, sum(&|c| load(&c.chunks_embedded)));
        for class in FailureClass::ALL {
            raise(
                &self.failures.get_or_create(&Reason { reason: class.as_str().into() }),
                sum(&|c| c.failures_of(class)),
            );
        }
        if let Some(fence) = &sources.fence {
            raise(&self.lease_losses, fence.lost_so_far());
        }
        let mut stages: std::collections::BTreeMap<String, f64> = Default::default();
        for job in &sources.jobs {
            if let Ok(serde_json::Value::Object(seconds)) = serde_json::to_value(job.stages.seconds()) {
                for (stage, value) in seconds {
                    *stages.entry(stage).or_default() += value.as_f64().unwrap_or(0.0);
                }
            }
        }
        for (stage, seconds) in stages {
            if stage == "embed" {
                raise_seconds(&self.embed_seconds, seconds);
            }
            raise_seconds(&self.stage_seconds.get_or_create(&StageLabel { stage }), seconds);
        }
        for clock in &sources.clocks {
            let service = Service { service: clock.service().to_string() };
            raise(&self.retries.get_or_create(&service), clock.retries());
            raise_seconds(&self.outage_wait.get_or_create(&service), clock.waited().as_secs_f64());
        }
    }
}

/// Raises a counter to `total` (a counter never goes down).
fn raise(counter: &Counter, total: u64) {
    counter.inc_by(total.saturating_sub(counter.get()));
}

fn raise_seconds(counter: &Counter<f64>, total: f64) {
    let missing = total - counter.get();
    if missing > 0.0 {
        counter.inc_by(missing);
    }
}

/// Serves `metrics` at `http://ADDRESS/metrics` until the process ends; returns the address
/// bound (for port 0, the one the system chose).
pub async fn listen(address: SocketAddr, metrics: Arc<WorkerMetrics>) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} for metrics; give --metrics-listen another address"))?;
    let bound = listener.local_addr().context("reading the address listened on")?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move {
                let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
                ([(axum::http::header::CONTENT_TYPE, content_type)], metrics.render().await)
            }
        }),
    );
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            eprintln!("ingest worker: the metrics listener stopped: {error}");
        }
    });
    Ok(bound)
}
