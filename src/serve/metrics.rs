//! # The search service's metrics
//!
//! In: what the service does (requests answered, model calls, the live generation). Out: the
//! Prometheus text a scrape of `/metrics` gets ([`Metrics::render`]), in the OpenMetrics
//! format, with the standard suffixes (`_total`, `_seconds`). No label holds a secret: the
//! token and the servers' URLs never reach a metric.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use super::queries::{Call, MOST_PER_CALL};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Answered {
    /// hybrid, dense or sparse; `none` for a request refused before its mode was known.
    mode: String,
    /// The HTTP status code.
    code: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Mode {
    mode: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Live {
    collection: String,
    generation: i64,
    model: String,
}

/// The service's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<Answered, Counter>,
    latency: Family<Mode, Histogram>,
    model_calls: Counter,
    model_seconds: Counter<f64>,
    batch_size: Histogram,
    waiting: Gauge,
    live: Family<Live, Gauge>,
    /// The live generation last set, per collection, so that a switch replaces its labels.
    live_now: Mutex<Vec<Live>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ingest");
        let requests = Family::<Answered, Counter>::default();
        registry.register(
            "search_requests",
            "Search requests answered, by mode and HTTP status code",
            requests.clone(),
        );
        let latency = Family::<Mode, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register_with_unit(
            "search_duration",
            "Time from a search request's arrival to its answer, by mode",
            Unit::Seconds,
            latency.clone(),
        );
        let model_calls = Counter::default();
        registry.register("query_model_calls", "Model calls embedding queries", model_calls.clone());
        let model_seconds = Counter::<f64>::default();
        registry.register_with_unit(
            "query_model",
            "Time the model spent embedding queries",
            Unit::Seconds,
            model_seconds.clone(),
        );
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 6).take_while(|&b| b <= MOST_PER_CALL as f64));
        registry.register("query_model_batch_size", "Queries embedded together in one model call", batch_size.clone());
        let waiting = Gauge::default();
        registry.register("queries_waiting", "Queries waiting for the model now", waiting.clone());
        let live = Family::<Live, Gauge>::default();
        registry.register(
            "live_generation",
            "The generation searches read by default, with its model (always 1)",
            live.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            model_calls,
            model_seconds,
            batch_size,
            waiting,
            live,
            live_now: Mutex::new(Vec::new()),
        }
    }
}

/// Buckets from 1 ms to about 16 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Metrics {
    /// A search request answered with `code` after `seconds`; `mode` is `None` when it was
    /// refused before its mode was known.
    pub fn answered(&self, mode: Option<&str>, code: u16, seconds: f64) {
        let mode = mode.unwrap_or("none").to_string();
        self.requests.get_or_create(&Answered { mode: mode.clone(), code }).inc();
        self.latency.get_or_create(&Mode { mode }).observe(seconds);
    }

    /// One model call on a batch of queries.
    pub fn model_call(&self, call: Call) {
        self.model_calls.inc();
        self.model_seconds.inc_by(call.seconds);
        self.batch_size.observe(call.queries as f64);
    }

    /// The live generation of `collection` now.
    pub fn set_live(&self, collection: &str, generation: i64, model: &str) {
        let now = Live { collection: collection.to_string(), generation, model: model.to_string() };
        let mut live_now = self.live_now.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if live_now.contains(&now) {
            return;
        }
        live_now.retain(|before| {
            let replaced = before.collection == now.collection;
            if replaced {
                self.live.remove(before);
            }
            !replaced
        });
        self.live.get_or_create(&now).set(1);
        live_now.push(now);
    }

    /// The text of a scrape, with `waiting` queries waiting for the models now.
    pub fn render(&self, waiting: usize) -> String {
        self.waiting.set(waiting as i64);
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
