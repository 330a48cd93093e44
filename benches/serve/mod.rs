//! Section 12, the search service under load: the man-page corpus of section 9 indexed into
//! an embedded collection, `ingest serve` (the release binary) started on it, and clients on
//! keep-alive connections sending the corpus's queries by `POST /search` for a fixed time,
//! 1, 8 and 32 at once, in each mode: requests/s and p50/p95/p99 latency. Beside them, in the
//! same run: `ingest search` as one process per query, and the bare model embedding the same
//! queries one call each (the limit for dense and hybrid, whose every request needs one
//! embedding) and eight a call.
//!
//! `INGEST_BENCH_SERVE_SECONDS` sets each measurement's length (default 8; 2 with `--quick`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;

use ingest::embed::Embedder;

use crate::Bench;

const MODES: &[&str] = &["dense", "sparse", "hybrid"];
const CLIENTS: &[usize] = &[1, 8, 32];
/// The collection the harness's jobs write.
const COLLECTION: &str = "bench";
/// Hits asked per query, as `ingest search` gives by default.
const K: usize = 5;
/// ONNX Runtime threads of the service's model and of the bare model: the machine's cores.
const MODEL_THREADS: usize = 2;

/// One measurement: clients at once, requests answered, and their latencies.
struct Load {
    requests_per_second: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    errors: usize,
}

/// Section 12: see the module's documentation.
pub fn serve(bench: &Bench) -> Result<serde_json::Value> {
    let seconds: f64 = match std::env::var("INGEST_BENCH_SERVE_SECONDS") {
        Ok(text) => text.parse().context("INGEST_BENCH_SERVE_SECONDS must be a number of seconds")?,
        Err(_) if bench.quick => 2.0,
        Err(_) => 8.0,
    };
    let count = if bench.quick { 80 } else { 300 };
    let (dir, _) = crate::retrieval::corpus(count)?;
    let queries: Vec<String> = crate::retrieval::read_queries(&dir)?.into_iter().map(|q| q.query).collect();
    let data = bench.dir("serve-data");
    let report = bench.job(&dir.join("docs"), &data, None, true)?;
    anyhow::ensure!(report.failed.is_empty(), "the corpus was not indexed whole: {:?}", report.failed);

    // `ingest search`, one process a query, before the service holds the collection.
    let mut per_process = Vec::new();
    for query in queries.iter().take(5) {
        let started = Instant::now();
        let output = Command::new(env!("CARGO_BIN_EXE_ingest"))
            .args(["search", query, "-k", &K.to_string(), "--json", "--collection", COLLECTION, "--data-dir"])
            .arg(&data)
            .output()
            .context("ingest search")?;
        anyhow::ensure!(output.status.success(), "ingest search: {}", String::from_utf8_lossy(&output.stderr));
        per_process.push(started.elapsed().as_secs_f64());
    }
    let per_process_seconds = per_process.iter().sum::<f64>() / per_process.len() as f64;

    let bare_one = bare_rate(bench, &queries, 1, seconds)?;
    let bare_eight = bare_rate(bench, &queries, 8, seconds)?;

    let mut service = Command::new(env!("CARGO_BIN_EXE_ingest"))
        .args(["serve", "--listen", "127.0.0.1:0", "--json", "--collection", COLLECTION])
        .args(["--model-threads", &MODEL_THREADS.to_string()])
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::piped())
        .spawn()
        .context("ingest serve")?;
    let mut line = String::new();
    BufReader::new(service.stdout.take().context("the service's stdout")?).read_line(&mut line)?;
    let listening: serde_json::Value =
        serde_json::from_str(&line).with_context(|| format!("ingest serve said {line:?}"))?;
    let address: SocketAddr =
        listening["listening"].as_str().context("no address")?.trim_start_matches("http://").parse()?;

    let mut loads = Vec::new();
    for mode in MODES {
        // Warm: the collection's pages and the model.
        drive(address, mode, &queries, 1, 0.5)?;
        for &clients in CLIENTS {
            loads.push((*mode, clients, drive(address, mode, &queries, clients, seconds)?));
        }
    }
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(service.id() as libc::pid_t, libc::SIGTERM) };
    service.wait()?;

    println!(
        "\n12. search service: {} man pages, {} chunks; {} queries cycled; {seconds} s a measurement; model {}",
        count,
        report.chunks + report.cache_hits,
        queries.len(),
        bench.model.id
    );
    println!(
        "   bare model: {bare_one:.0} queries/s one a call, {bare_eight:.0} eight a call ({MODEL_THREADS} threads); \
         `ingest search` per process: {:.2} s a query ({:.1} queries/s)",
        per_process_seconds,
        1.0 / per_process_seconds
    );
    println!(
        "   {:<8} {:>7} {:>10} {:>8} {:>8} {:>8} {:>7} {:>10}",
        "mode", "clients", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "/ bare"
    );
    for (mode, clients, load) in &loads {
        let of_bare =
            if *mode == "sparse" { String::from("-") } else { format!("{:.2}", load.requests_per_second / bare_one) };
        println!(
            "   {mode:<8} {clients:>7} {:>10.0} {:>8.1} {:>8.1} {:>8.1} {:>7} {of_bare:>10}",
            load.requests_per_second, load.p50_ms, load.p95_ms, load.p99_ms, load.errors
        );
    }
    let hybrid_8 = loads.iter().find(|(m, c, _)| *m == "hybrid" && *c == 8).map(|(_, _, l)| l.requests_per_second);
    let sparse_best =
        loads.iter().filter(|(m, ..)| *m == "sparse").map(|(_, _, l)| l.requests_per_second).fold(0.0, f64::max);
    println!(
        "   hybrid at 8 clients / bare model (one a call): {:.2} (target 0.8); sparse best: {sparse_best:.0} req/s (target 1,000)",
        hybrid_8.unwrap_or(0.0) / bare_one
    );
    let measured: Vec<serde_json::Value> = loads
        .iter()
        .map(|(mode, clients, l)| {
            json!({ "mode": mode, "clients": clients, "requests_per_second": l.requests_per_second,
                    "p50_ms": l.p50_ms, "p95_ms": l.p95_ms, "p99_ms": l.p99_ms, "errors": l.errors })
        })
        .collect();
    Ok(json!({
        "pages": count, "queries": queries.len(), "seconds_per_measurement": seconds, "model": bench.model.id,
        "bare_model_queries_per_second": bare_one, "bare_model_queries_per_second_batched_8": bare_eight,
        "ingest_search_seconds_per_query": per_process_seconds,
        "loads": measured,
        "hybrid_8_clients_over_bare": hybrid_8.map(|r| r / bare_one),
        "sparse_best_requests_per_second": sparse_best,
    }))
}

/// Queries/s of the bare model embedding `queries` `per_call` at a time, for `seconds`.
fn bare_rate(bench: &Bench, queries: &[String], per_call: usize, seconds: f64) -> Result<f64> {
    let mut embedder = Embedder::new(bench.model.clone(), MODEL_THREADS)?;
    embedder.load()?;
    let mut cycle = queries.chunks(per_call).cycle();
    embedder.embed_queries(&cycle.next().context("no queries")?.iter().map(String::as_str).collect::<Vec<_>>())?;
    let (started, mut embedded) = (Instant::now(), 0);
    while started.elapsed().as_secs_f64() < seconds {
        let call: Vec<&str> = cycle.next().context("no queries")?.iter().map(String::as_str).collect();
        embedded += embedder.embed_queries(&call)?.len();
    }
    Ok(embedded as f64 / started.elapsed().as_secs_f64())
}

/// `clients` threads sending searches in `mode` for `seconds`, each on its own keep-alive
/// connection.
fn drive(address: SocketAddr, mode: &str, queries: &[String], clients: usize, seconds: f64) -> Result<Load> {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|client| {
            let (stop, mode) = (stop.clone(), mode.to_string());
            let queries: Vec<String> = queries.iter().skip(client * 7).chain(queries).cloned().collect();
            std::thread::spawn(move || -> Result<(Vec<f64>, usize)> {
                let mut connection = Connection::open(address)?;
                let (mut latencies, mut errors) = (Vec::new(), 0);
                for query in queries.iter().cycle() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let body = json!({ "query": query, "k": K, "mode": mode }).to_string();
                    let asked = Instant::now();
                    let status = connection.post("/search", &body)?;
                    latencies.push(asked.elapsed().as_secs_f64() * 1000.0);
                    errors += usize::from(status != 200);
                }
                Ok((latencies, errors))
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for thread in threads {
        let (mut some, failed) = thread.join().map_err(|_| anyhow::anyhow!("a client panicked"))??;
        latencies.append(&mut some);
        errors += failed;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let quantile = |q| crate::retrieval::quantile(&latencies, q);
    Ok(Load {
        requests_per_second: latencies.len() as f64 / elapsed,
        p50_ms: quantile(0.5),
        p95_ms: quantile(0.95),
        p99_ms: quantile(0.99),
        errors,
    })
}

/// An HTTP/1.1 keep-alive connection.
struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    fn open(address: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(address)?;
        stream.set_nodelay(true)?;
        Ok(Self { writer: stream.try_clone()?, reader: BufReader::new(stream) })
    }

    /// Sends a JSON body, reads the whole answer, and returns its status.
    fn post(&mut self, path: &str, body: &str) -> Result<u16> {
        write!(
            self.writer,
            "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line.split(' ').nth(1).context("no status line")?.parse()?;
        let mut length = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse()?;
                }
            }
        }
        let mut answer = vec![0; length];
        self.reader.read_exact(&mut answer)?;
        Ok(status)
    }
}
