//! Section 9, retrieval quality on real text with known answers: man pages of this machine,
//! each page's NAME description as a query whose one right answer is that page (the script
//! `scripts/retrieval_corpus.py` builds the corpus and removes each description from its
//! page). The pages are indexed by the real pipeline into an embedded collection; every
//! query is then run in every search mode, and each mode gets recall@1, recall@5, MRR@10
//! and its query latency. The same points are then uploaded to the gRPC test server
//! (`tests/common/qdrant_server.rs`), and every query is run there too, for each mode's
//! latency over gRPC (and, as a check, the same figures).
//!
//! Ranks are over documents, not chunks: the hits' documents in the order of their best
//! chunk, each document once. A mode is asked for [`HITS`] chunks, enough to fill
//! [`RANKED_DOCUMENTS`] distinct documents (the figures say how often it did not).
//!
//! To add a mode: name it in [`MODES`] (`run_query` knows `dense`, `sparse` and `hybrid`), or
//! give a new one an arm in [`run_query`] and, if it needs more than the collection and the
//! model, a field in [`Searcher`].

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;

use ingest::embed::Embedder;
use ingest::search::SearchRequest;
use ingest::store::{Hit, SearchMode, VectorIndex};

use crate::Bench;

/// The search modes measured, in the order they are printed.
const MODES: &[&str] = &["dense", "sparse", "hybrid"];

/// Chunks asked of a mode per query.
const HITS: usize = 50;

/// Documents ranked per query: MRR@10.
const RANKED_DOCUMENTS: usize = 10;

/// Model threads for the query embeddings: `ingest search` uses one.
const QUERY_THREADS: usize = 1;

/// One query of the corpus and the file name of its right answer.
#[derive(serde::Deserialize)]
pub struct Query {
    pub query: String,
    answer: String,
}

/// The queries of the corpus in `dir`, from its `queries.jsonl`.
pub fn read_queries(dir: &Path) -> Result<Vec<Query>> {
    let queries: Vec<Query> = std::fs::read_to_string(dir.join("queries.jsonl"))?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("queries.jsonl")?;
    anyhow::ensure!(!queries.is_empty(), "{} has no queries", dir.display());
    Ok(queries)
}

/// What running a query needs, in every mode.
struct Searcher<'a> {
    bench: &'a Bench,
    index: &'a dyn VectorIndex,
    embedder: Embedder,
}

/// Runs `query` in `mode`: the collection's chunks, best first. A search that fell back to
/// another mode (a collection without sparse vectors is searched dense) is an error: its
/// figures would be the other mode's.
fn run_query(searcher: &mut Searcher, mode: &str, query: &str) -> Result<Vec<Hit>> {
    let mode = match mode {
        "dense" => SearchMode::Dense,
        "sparse" => SearchMode::Sparse,
        "hybrid" => SearchMode::Hybrid,
        other => anyhow::bail!("unknown search mode {other:?}"),
    };
    let request = SearchRequest { query: query.into(), limit: HITS, mode, ..SearchRequest::default() };
    let results = searcher.bench.runtime.block_on(ingest::search::search(
        searcher.index,
        Some(&mut searcher.embedder as &mut dyn ingest::search::QueryModel),
        &request,
    ))?;
    anyhow::ensure!(
        results.mode == mode,
        "a {} search ran as {}: {}",
        mode.as_str(),
        results.mode.as_str(),
        results.note.unwrap_or_default()
    );
    Ok(results.hits.into_iter().map(|h| h.hit).collect())
}

/// The hits' documents (file names), each once, in the order of their best hit.
fn ranked_documents(hits: &[Hit]) -> Vec<String> {
    let mut documents: Vec<String> = Vec::new();
    for hit in hits {
        let path = Path::new(&hit.point.payload.path);
        let name = path.file_name().map_or_else(|| hit.point.payload.path.clone(), |n| n.to_string_lossy().into());
        if !documents.contains(&name) {
            documents.push(name);
        }
    }
    documents
}

/// The `q` quantile of `values` (nearest rank).
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(((sorted.len().max(1) - 1) as f64 * q).round() as usize).copied().unwrap_or(f64::NAN)
}

/// The corpus of `count` pages under `target/bench/retrieval/`, built by the script unless
/// a build of the same count by the same script is there. Returns its directory and the
/// seconds the build took (`None` when reused).
pub fn corpus(count: usize) -> Result<(PathBuf, Option<f64>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("scripts/retrieval_corpus.py");
    let dir = root.join(format!("target/bench/retrieval/man-{count}"));
    let script_sha256 = ingest::hash::sha256_hex(&std::fs::read(&script).context("scripts/retrieval_corpus.py")?);
    let manifest: Option<serde_json::Value> =
        std::fs::read(dir.join("manifest.json")).ok().and_then(|m| serde_json::from_slice(&m).ok());
    if manifest.is_some_and(|m| m["count"] == count && m["script_sha256"] == script_sha256.as_str()) {
        return Ok((dir, None));
    }
    let started = Instant::now();
    let status = Command::new("python3")
        .arg(&script)
        .arg(&dir)
        .args(["--count", &count.to_string()])
        .status()
        .context("python3 scripts/retrieval_corpus.py")?;
    anyhow::ensure!(status.success(), "scripts/retrieval_corpus.py failed ({status})");
    Ok((dir, Some(started.elapsed().as_secs_f64())))
}

/// A mode's figures over all queries.
struct Scores {
    recall_at_1: f64,
    recall_at_5: f64,
    mrr_at_10: f64,
    p50_ms: f64,
    p95_ms: f64,
    /// Queries whose hits held fewer than [`RANKED_DOCUMENTS`] distinct documents.
    short_rankings: usize,
    /// (query, answer, the first ranked document) of each query whose answer was not ranked.
    misses: Vec<(String, String, String)>,
}

fn score(searcher: &mut Searcher, mode: &str, queries: &[Query]) -> Result<Scores> {
    // A warm-up query: the first one faults the collection's pages in.
    run_query(searcher, mode, &queries[0].query)?;
    let (mut at_1, mut at_5, mut reciprocal, mut short_rankings) = (0usize, 0usize, 0f64, 0usize);
    let mut latencies = Vec::with_capacity(queries.len());
    let mut misses = Vec::new();
    for query in queries {
        let started = Instant::now();
        let hits = run_query(searcher, mode, &query.query)?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        let documents = ranked_documents(&hits);
        short_rankings += usize::from(documents.len() < RANKED_DOCUMENTS);
        match documents.iter().take(RANKED_DOCUMENTS).position(|d| *d == query.answer) {
            Some(at) => {
                at_1 += usize::from(at == 0);
                at_5 += usize::from(at < 5);
                reciprocal += 1.0 / (at + 1) as f64;
            }
            None => {
                misses.push((query.query.clone(), query.answer.clone(), documents.first().cloned().unwrap_or_default()))
            }
        }
    }
    let n = queries.len() as f64;
    Ok(Scores {
        recall_at_1: at_1 as f64 / n,
        recall_at_5: at_5 as f64 / n,
        mrr_at_10: reciprocal / n,
        p50_ms: quantile(&latencies, 0.5),
        p95_ms: quantile(&latencies, 0.95),
        short_rankings,
        misses,
    })
}

/// Section 9: see the module's documentation.
pub fn retrieval(bench: &Bench) -> Result<serde_json::Value> {
    let started = Instant::now();
    let count = if bench.quick { 80 } else { 300 };
    let (dir, build_seconds) = corpus(count)?;
    let docs = dir.join("docs");
    let queries = read_queries(&dir)?;
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json"))?)?;

    let load_before = crate::load_average();
    let data = bench.dir("retrieval-data");
    let report = bench.job(&docs, &data, None, true)?;
    anyhow::ensure!(
        report.failed.is_empty() && report.added as usize == queries.len(),
        "the corpus was not indexed whole: {} of {} files added, failed: {:?}",
        report.added,
        queries.len(),
        report.failed.iter().map(|f| &f.path).collect::<Vec<_>>()
    );
    let chunks = report.chunks + report.cache_hits;
    let index = bench.store(&data, None, "bench")?;
    let mut embedder = Embedder::new(bench.model.clone(), QUERY_THREADS)?;
    embedder.load()?;
    let mut searcher = Searcher { bench, index: index.as_ref(), embedder };

    let querying = Instant::now();
    let mut scores = Vec::new();
    for mode in MODES {
        scores.push((*mode, score(&mut searcher, mode, &queries)?));
    }
    let query_seconds = querying.elapsed().as_secs_f64();

    // The same points on the gRPC test server, queried the same way.
    let server = crate::qdrant_server::TestQdrant::start();
    let remote = bench.store(&data, Some(&server.url()), "bench")?;
    let points: Vec<_> =
        bench.runtime.block_on(ingest::store::all_points(index.as_ref(), true))?.into_values().collect();
    bench.runtime.block_on(async {
        remote.ensure_collection(bench.model.dim).await?;
        ingest::store::upsert_in_batches(remote.as_ref(), points, 1000, 2, |_| {}).await
    })?;
    let mut searcher = Searcher { bench, index: remote.as_ref(), embedder: searcher.embedder };
    let mut server_scores = Vec::new();
    for mode in MODES {
        server_scores.push(score(&mut searcher, mode, &queries)?);
    }
    let seconds = started.elapsed().as_secs_f64();
    let load_after = crate::load_average();

    println!(
        "\n9. retrieval: {} man pages, {} queries (their NAME descriptions); {chunks} chunks indexed in {:.1} s; model {}",
        queries.len(),
        queries.len(),
        report.elapsed_seconds,
        bench.model.id
    );
    match build_seconds {
        Some(built) => println!("   corpus built in {built:.1} s: {}", dir.display()),
        None => println!("   corpus reused: {}", dir.display()),
    }
    println!(
        "   {:<8} {:>9} {:>9} {:>7} {:>8} {:>8} {:>7}",
        "mode", "recall@1", "recall@5", "MRR@10", "p50 ms", "p95 ms", "misses"
    );
    for ((mode, s), server) in scores.iter().zip(&server_scores) {
        println!(
            "   {mode:<8} {:>9.3} {:>9.3} {:>7.3} {:>8.1} {:>8.1} {:>7}",
            s.recall_at_1,
            s.recall_at_5,
            s.mrr_at_10,
            s.p50_ms,
            s.p95_ms,
            s.misses.len()
        );
        println!(
            "   {:<8} {:>9.3} {:>9.3} {:>7.3} {:>8.1} {:>8.1} {:>7}   (gRPC test server)",
            "",
            server.recall_at_1,
            server.recall_at_5,
            server.mrr_at_10,
            server.p50_ms,
            server.p95_ms,
            server.misses.len()
        );
        if s.short_rankings > 0 {
            println!(
                "   {mode}: {} of {} queries found fewer than {RANKED_DOCUMENTS} documents in {HITS} chunks",
                s.short_rankings,
                queries.len()
            );
        }
    }
    for (mode, s) in &scores {
        for (query, answer, first) in s.misses.iter().take(5) {
            println!("   {mode} miss: {query:?} -> {answer} (ranked first: {first})");
        }
    }
    println!(
        "   section: {seconds:.1} s (queries {query_seconds:.1} s); load average before {load_before}, after {load_after}"
    );

    let modes: serde_json::Map<String, serde_json::Value> = scores
        .iter()
        .zip(&server_scores)
        .map(|((mode, s), server)| {
            let misses: Vec<serde_json::Value> =
                s.misses.iter().map(|(q, a, f)| json!({ "query": q, "answer": a, "ranked_first": f })).collect();
            let figures = json!({
                "recall_at_1": s.recall_at_1, "recall_at_5": s.recall_at_5, "mrr_at_10": s.mrr_at_10,
                "latency_p50_ms": s.p50_ms, "latency_p95_ms": s.p95_ms,
                "short_rankings": s.short_rankings, "misses": misses,
                "grpc_test_server": {
                    "recall_at_1": server.recall_at_1, "recall_at_5": server.recall_at_5,
                    "mrr_at_10": server.mrr_at_10, "latency_p50_ms": server.p50_ms, "latency_p95_ms": server.p95_ms,
                },
            });
            (mode.to_string(), figures)
        })
        .collect();
    Ok(json!({
        "inputs": {
            "corpus": dir, "documents": queries.len(), "queries": queries.len(), "bytes": manifest["bytes"],
            "max_bytes": manifest["max_bytes"], "corpus_build_seconds": build_seconds,
            "hits_per_query": HITS, "ranked_documents": RANKED_DOCUMENTS, "query_threads": QUERY_THREADS,
            "load_average_before": load_before, "load_average_after": load_after,
        },
        "by_model": {
            bench.model.id.clone(): {
                "index": { "chunks": chunks, "seconds": report.elapsed_seconds },
                "modes": modes,
            },
        },
        "seconds": seconds,
    }))
}
