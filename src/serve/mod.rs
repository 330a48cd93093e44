//! # Search service (`ingest serve`)
//!
//! In: [`Settings`] (one data directory, or a PostgreSQL catalog and a Qdrant server) and
//! [`ServeOptions`]. Out: an HTTP service until shutdown:
//!
//! - `POST /search` (a JSON body) and `GET /search?q=…`: the hits of `ingest search --json`,
//!   with the collection, generation and model that answered ([`request`] reads the request);
//! - `GET /collections`: each collection the catalog knows, with its generations;
//! - `GET /healthz`: catalog, store and model reachable (200), or 503 with the reason;
//! - `GET /metrics`: Prometheus text ([`metrics`]);
//! - `GET /openapi.json`: the OpenAPI description; `GET /`: a search page for a person.
//!
//! Every search reads one generation from start to end, the live one as the catalog says on
//! its arrival, with the model that built it ([`readers`]); queries of concurrent requests
//! are embedded together ([`queries`]). Load is bounded: at most `queue` searches at once,
//! more are answered 429 at once; each has `timeout` to answer (504 after); a body over
//! `max_body` bytes is refused (413). With a token, every endpoint but `/`, `/healthz` and
//! `/openapi.json` needs `Authorization: Bearer <token>`.
//!
//! On the embedded default, which one process at a time may hold, the service lets go of the
//! collection to a run (or any `ingest` command) that asks for it and answers from a copy
//! until that run ends ([`crate::store::open_reader`]).

mod metrics;
mod queries;
mod readers;
mod request;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::search::SearchResults;
use crate::settings::Settings;
use metrics::Metrics;
use readers::{ModelOptions, Reader, Readers};
use request::SearchQuery;

/// How the service listens and bounds its work.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// The bearer token every request but the page, health and description needs.
    pub token: Option<String>,
    /// Searches served at once; one more is answered 429.
    pub queue: usize,
    /// Time a search has to answer.
    pub timeout: Duration,
    /// ONNX Runtime threads of each query model.
    pub model_threads: usize,
    /// The largest request body, in bytes.
    pub max_body: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: None,
            queue: 64,
            timeout: Duration::from_secs(10),
            model_threads: 2,
            max_body: 64 * 1024,
        }
    }
}

/// Why a request was not answered with hits: its status and one sentence.
#[derive(Debug)]
pub enum Refusal {
    /// 400: the request is wrong.
    BadRequest(String),
    /// 401: no token, or a wrong one.
    Unauthorized,
    /// 404: no such collection or generation.
    NotFound(String),
    /// 413: the body is too large.
    TooLarge(usize),
    /// 429: too many searches at once.
    Busy(String),
    /// 503: a part the answer needs is not there (the model, the store, the catalog).
    Unavailable(String),
    /// 504: the answer took too long.
    Timeout(Duration),
}

impl Refusal {
    /// A 503 for an error of the catalog, the store or the model.
    pub fn unavailable(error: anyhow::Error) -> Self {
        Self::Unavailable(format!("{error:#}"))
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    fn sentence(&self) -> String {
        match self {
            Self::BadRequest(text) | Self::NotFound(text) | Self::Busy(text) | Self::Unavailable(text) => text.clone(),
            Self::Unauthorized => "this service needs a token: send the header Authorization: Bearer <token>".into(),
            Self::TooLarge(limit) => format!("the request body is larger than {limit} bytes"),
            Self::Timeout(limit) => {
                format!("the search took longer than {:.1} s; try a smaller k or retry", limit.as_secs_f64())
            }
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(json!({ "error": self.sentence() }))).into_response();
        if matches!(self, Self::Busy(_) | Self::Unavailable(_)) {
            response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}

/// What every handler shares.
struct Service {
    readers: Readers,
    metrics: Arc<Metrics>,
    options: ServeOptions,
    /// Searches in progress, at most `options.queue`: a search that finds none free is
    /// answered 429 at once instead of waiting.
    searches: Semaphore,
}

/// Serves until `shutdown` completes; `listening` hears the address bound (for `--listen`
/// port 0, the port the system chose) once requests can arrive.
pub async fn serve(
    settings: &Settings,
    options: ServeOptions,
    listening: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let catalog = crate::workspace::open_catalog(settings).await?;
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("cannot listen on {}; give --listen another address (host:port)", options.listen))?;
    let address = listener.local_addr().context("reading the address listened on")?;
    let metrics = Arc::new(Metrics::default());
    let model_options = ModelOptions { threads: options.model_threads, queue: options.queue };
    let service = Arc::new(Service {
        readers: Readers::new(settings.clone(), catalog, model_options, metrics.clone()),
        searches: Semaphore::new(options.queue.max(1)),
        metrics,
        options,
    });
    // The live generation's model loads before the first request.
    service.readers.tend().await;
    let tending = tokio::spawn(tend(service.clone()));
    listening(address);
    let served = axum::serve(listener, router(service)).with_graceful_shutdown(shutdown).await;
    tending.abort();
    served.context("serving HTTP")
}

/// The readers' upkeep, a few times a second.
async fn tend(service: Arc<Service>) {
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        service.readers.tend().await;
    }
}

fn router(service: Arc<Service>) -> Router {
    let guarded = Router::new()
        .route("/search", get(search_get).post(search_post))
        .route("/collections", get(collections))
        .route("/metrics", get(scrape))
        .route_layer(axum::middleware::from_fn_with_state(service.clone(), require_token));
    Router::new()
        .route("/", get(|| async { Html(include_str!("page.html")) }))
        .route(
            "/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], include_str!("openapi.json")) }),
        )
        .route("/healthz", get(health))
        .merge(guarded)
        .fallback(|| async { Refusal::NotFound("no such endpoint; GET /openapi.json describes them".into()) })
        .layer(DefaultBodyLimit::max(service.options.max_body))
        .with_state(service)
}

/// Lets a request through when the service has no token, or when it carries the token.
async fn require_token(
    State(service): State<Arc<Service>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(token) = &service.options.token else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match given {
        Some(given) if same_secret(given.trim().as_bytes(), token.as_bytes()) => next.run(request).await,
        _ => Refusal::Unauthorized.into_response(),
    }
}

/// Compares two secrets in a time that does not depend on where they differ.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len() && given.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

async fn search_get(State(service): State<Arc<Service>>, RawQuery(query): RawQuery) -> Response {
    let started = Instant::now();
    let asked = SearchQuery::from_url_query(query.as_deref().unwrap_or(""));
    answer_search(&service, asked, started).await
}

async fn search_post(
    State(service): State<Arc<Service>>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let asked = match body {
        Ok(body) => SearchQuery::from_json(&body),
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Err(Refusal::TooLarge(service.options.max_body))
        }
        Err(rejection) => Err(Refusal::BadRequest(format!("cannot read the request body: {rejection}"))),
    };
    answer_search(&service, asked, started).await
}

/// Answers a search, and counts it in the metrics by its mode and status code.
async fn answer_search(
    service: &Service,
    asked: std::result::Result<SearchQuery, Refusal>,
    started: Instant,
) -> Response {
    let mode = asked.as_ref().ok().map(|query| query.request.mode.as_str());
    let response = match asked {
        Ok(query) => match search(service, &query).await {
            Ok(answer) => Json(answer).into_response(),
            Err(refusal) => refusal.into_response(),
        },
        Err(refusal) => refusal.into_response(),
    };
    service.metrics.answered(mode, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

async fn search(service: &Service, query: &SearchQuery) -> std::result::Result<serde_json::Value, Refusal> {
    let _turn = service.searches.try_acquire().map_err(|_| {
        Refusal::Busy(format!("the service is busy: {} searches are in progress; retry shortly", service.options.queue))
    })?;
    let timeout = service.options.timeout;
    tokio::time::timeout(timeout, async {
        let collection = query.collection.as_deref().unwrap_or(service.readers.default_collection());
        let reader = service.readers.reader(collection, query.generation).await?;
        let results = search_reader(&reader, query).await?;
        Ok(answer_json(&reader, &results))
    })
    .await
    .map_err(|_| Refusal::Timeout(timeout))?
}

/// Runs the search on one reader: its store, its model.
async fn search_reader(reader: &Reader, query: &SearchQuery) -> std::result::Result<SearchResults, Refusal> {
    let request = &query.request;
    let gap = match request.mode {
        crate::store::SearchMode::Dense => None,
        _ => reader.sparse_gap().await.map_err(Refusal::unavailable)?,
    };
    if let (crate::store::SearchMode::Sparse, Some(gap)) = (request.mode, &gap) {
        return Err(Refusal::BadRequest(format!("{gap}; until then, search with mode dense")));
    }
    let mut model = match request.mode {
        crate::store::SearchMode::Sparse => None,
        _ => Some(reader.query_model()?),
    };
    let model = model.as_mut().map(|model| model as &mut dyn crate::search::QueryModel);
    crate::search::search_knowing_gap(reader.index.as_ref(), model, request, gap).await.map_err(|error| {
        match error.downcast_ref::<queries::Full>() {
            Some(full) => Refusal::Busy(full.to_string()),
            None => Refusal::unavailable(error),
        }
    })
}

/// The answer: which collection, generation and model answered, the mode that ranked, a note
/// when that is not the mode asked for, and the hits.
fn answer_json(reader: &Reader, results: &SearchResults) -> serde_json::Value {
    json!({
        "collection": reader.collection,
        "generation": reader.generation.as_ref().map(|g| g.number),
        "model": reader.model_id(),
        "mode": results.mode.as_str(),
        "note": results.note,
        "hits": results.hits.iter().map(|hit| crate::search::hit_json(hit, results.with_ranks)).collect::<Vec<_>>(),
    })
}

async fn collections(State(service): State<Arc<Service>>) -> Response {
    let catalog = service.readers.catalog();
    let listed = async {
        let mut names = catalog.collection_names().await?;
        let default = service.readers.default_collection().to_string();
        if !names.contains(&default) {
            names.push(default);
        }
        let mut collections = Vec::new();
        for name in names {
            let generations = crate::workspace::generations_of(&catalog.collection(&name)).await?;
            if generations.is_empty() {
                continue;
            }
            let live = crate::catalog::live_generation(&generations).map(|g| g.number);
            collections.push(json!({ "name": name, "live_generation": live, "generations": generations }));
        }
        anyhow::Ok(json!({ "collections": collections }))
    };
    match listed.await {
        Ok(listed) => Json(listed).into_response(),
        Err(error) => Refusal::unavailable(error).into_response(),
    }
}

async fn health(State(service): State<Arc<Service>>) -> Response {
    let collection = service.readers.default_collection().to_string();
    let mut parts = serde_json::Map::new();
    let catalog = match service.readers.catalog().collection(&collection).generations().await {
        Ok(_) => Ok(()),
        Err(error) => Err(format!("the catalog cannot be read: {error:#}")),
    };
    parts.insert("catalog".into(), part_json(&catalog));
    let reader = match &catalog {
        Ok(()) => match service.readers.reader(&collection, None).await {
            Ok(reader) => Ok(reader),
            Err(refusal) => Err(refusal.sentence()),
        },
        Err(_) => Err("not asked: the catalog cannot be read".to_string()),
    };
    let store = match &reader {
        Ok(reader) => match reader.index.count(None).await {
            Ok(_) => Ok(()),
            Err(error) => Err(format!("the store cannot be read: {error:#}")),
        },
        Err(reason) => Err(reason.clone()),
    };
    parts.insert("store".into(), part_json(&store));
    let model = match &reader {
        Ok(reader) => reader.model_state().map(|_| ()).map_err(|reason| reason.to_string()),
        Err(reason) => Err(reason.clone()),
    };
    parts.insert("model".into(), part_json(&model));
    let healthy = catalog.is_ok() && store.is_ok() && model.is_ok();
    parts.insert("status".into(), json!(if healthy { "ok" } else { "unavailable" }));
    if let Ok(reader) = &reader {
        parts.insert("collection".into(), json!(collection));
        parts.insert("generation".into(), json!(reader.generation.as_ref().map(|g| g.number)));
        parts.insert("model_id".into(), json!(reader.model_id()));
    }
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(serde_json::Value::Object(parts))).into_response()
}

fn part_json(outcome: &std::result::Result<(), String>) -> serde_json::Value {
    match outcome {
        Ok(()) => json!("ok"),
        Err(reason) => json!(reason),
    }
}

async fn scrape(State(service): State<Arc<Service>>) -> Response {
    let text = service.metrics.render(service.readers.queries_waiting());
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response()
}
