//! Throughput and memory, each figure a ratio against a baseline measured in the same run:
//!
//! 1. pipeline efficiency: end-to-end chunks/s of a real job (scan, hash, extract, chunk,
//!    embed, catalog, parquet, store) over the bare model's chunks/s on the same chunk texts,
//!    batch size and threads; on the embedded engine and on the gRPC test Qdrant server;
//! 2. no-change re-run: a re-run over many unchanged files against a bare walk that stats
//!    every file;
//! 3. restore: points/s of `restore` from parquet against a bare loop upserting the same
//!    points into the same kind of store;
//! 4. upload batch size and parallelism: points/s per combination, on both stores;
//! 5. peak RSS of the real binary: first ingests of two tree sizes, a no-change re-run over
//!    the largest tree, and one very large PDF.
//!
//! Corpora are generated with fixed seeds. Run: `cargo bench --bench pipeline -- --quick`
//! (minutes) or without `--quick` (100,000 files). Prints tables and writes
//! `target/bench/results.json`. Name sections to run only those, e.g.
//! `cargo bench --bench pipeline -- --quick rerun memory`.

#[allow(dead_code)]
#[path = "../tests/common/qdrant_server.rs"]
mod qdrant_server;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;

use ingest::catalog::{Catalog, Completion, FileFacts, NewJob};
use ingest::chunk::Chunker;
use ingest::consistency::{self, Upload};
use ingest::embed::{Embedder, ModelInfo};
use ingest::parquet_copy::ParquetCopy;
use ingest::pipeline::{logic_fingerprint, run_job, JobReport, JobSettings};
use ingest::retry::RetryPolicy;
use ingest::scan::{ScanItem, ScanOptions};
use ingest::store::{Point, PointPayload, StoreLocation, VectorIndex};

const WORDS: &[&str] = &[
    "river", "mountain", "engine", "protocol", "harvest", "galaxy", "ledger", "violin", "glacier", "circuit",
    "orchard", "theorem", "compass", "lantern", "harbor", "quartz", "meadow", "signal", "canyon", "archive",
];

/// A deterministic word stream.
struct Words(u64);

impl Words {
    fn sentence_text(&mut self, words: usize) -> String {
        let mut text = String::new();
        for w in 0..words {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            text.push_str(WORDS[(self.0 >> 33) as usize % WORDS.len()]);
            text.push_str(if w % 12 == 11 { ". " } else { " " });
        }
        text
    }
}

/// A minimal valid PDF with Helvetica text pages.
fn pdf(text: &str) -> Vec<u8> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let lines: Vec<String> = words.chunks(12).map(|w| w.join(" ")).collect();
    let mut objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        Vec::new(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_vec(),
    ];
    let mut kids = Vec::new();
    for page in lines.chunks(45) {
        let body: Vec<String> = page.iter().map(|l| format!("({l}) Tj T*")).collect();
        let stream = format!("BT /F1 11 Tf 14 TL 56 780 Td {} ET", body.join(" "));
        objects.push(format!("<< /Length {} >>\nstream\n{stream}\nendstream", stream.len()).into_bytes());
        let content = objects.len();
        objects.push(
            format!("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> /Contents {content} 0 R >>")
                .into_bytes(),
        );
        kids.push(objects.len());
    }
    let kids_text: Vec<String> = kids.iter().map(|k| format!("{k} 0 R")).collect();
    objects[1] = format!("<< /Type /Pages /Kids [{}] /Count {} >>", kids_text.join(" "), kids.len()).into_bytes();
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend(object);
        out.extend(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        out.extend(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes(),
    );
    out
}

/// A minimal valid DOCX with one paragraph per sentence.
fn docx(text: &str) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let paragraphs: String =
        text.split(". ").map(|p| format!("<w:p><w:r><w:t xml:space=\"preserve\">{p}.</w:t></w:r></w:p>")).collect();
    let files = [
        ("[Content_Types].xml", r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#.to_string()),
        ("_rels/.rels", r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>"#.to_string()),
        ("word/_rels/document.xml.rels", r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"></Relationships>"#.to_string()),
        ("word/document.xml", format!(r#"<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{paragraphs}</w:body></w:document>"#)),
    ];
    for (name, body) in files {
        zip.start_file(name, options).unwrap();
        zip.write_all(body.as_bytes()).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// The mixed corpus: text files, and every fifth document a PDF or a DOCX.
fn make_mixed_corpus(root: &Path, files: usize, words: usize, seed: u64) -> u64 {
    std::fs::create_dir_all(root).unwrap();
    let mut stream = Words(seed);
    let mut bytes = 0;
    for f in 0..files {
        let text = stream.sentence_text(words);
        let (name, body) = match f % 10 {
            4 => (format!("doc-{f:05}.pdf"), pdf(&text)),
            9 => (format!("doc-{f:05}.docx"), docx(&text)),
            _ => (format!("doc-{f:05}.txt"), text.into_bytes()),
        };
        bytes += body.len() as u64;
        std::fs::write(root.join(name), body).unwrap();
    }
    bytes
}

/// `files` one-sentence text files in directories of 100.
fn make_tiny_files(root: &Path, files: usize) {
    for f in 0..files {
        let dir = root.join(format!("d{:04}", f / 100));
        if f % 100 == 0 {
            std::fs::create_dir_all(&dir).unwrap();
        }
        std::fs::write(dir.join(format!("n{f:06}.txt")), format!("Note {f}: shelf {} of room {}.", f % 100, f / 100))
            .unwrap();
    }
}

fn job_settings(root: &Path, collection: &str, batch: usize) -> Result<JobSettings> {
    Ok(JobSettings {
        root: std::fs::canonicalize(root)?,
        collection: collection.into(),
        scan: ScanOptions::new(&[], &[])?,
        chunk_size: 200,
        chunk_overlap: 32,
        embed_batch_size: batch,
        upload_batch_size: 4000,
        upload_parallelism: 2,
        max_file_bytes: 100 << 20,
        commit_interval: Duration::from_secs(5),
        full: false,
        dry_run: false,
        max_retries: 3,
    })
}

struct Bench {
    quick: bool,
    model: ModelInfo,
    batch: usize,
    threads: usize,
    runtime: tokio::runtime::Runtime,
    temp: tempfile::TempDir,
}

impl Bench {
    fn store(&self, data: &Path, url: Option<&str>, collection: &str) -> Result<Arc<dyn VectorIndex>> {
        let location = StoreLocation { data_dir: data, qdrant_url: url, api_key: None };
        self.runtime.block_on(ingest::store::open(location, collection, RetryPolicy::default()))
    }

    fn catalog(&self, data: &Path) -> Result<Catalog> {
        std::fs::create_dir_all(data)?;
        self.runtime.block_on(Catalog::connect(&Catalog::sqlite_url(data)))
    }

    /// Runs a job in this process. With `preload`, the model is loaded before the clock
    /// starts, as the bare model's is; otherwise the job loads it if it has anything to embed.
    fn job(&self, docs: &Path, data: &Path, url: Option<&str>, preload: bool) -> Result<JobReport> {
        let catalog = self.catalog(data)?;
        let index = self.store(data, url, "bench")?;
        let parquet = ParquetCopy::new(data, "bench", self.model.dim);
        let mut embedder = Embedder::new(self.model.clone(), self.batch, self.threads)?;
        if preload {
            embedder.load()?;
        }
        let settings = job_settings(docs, "bench", self.batch)?;
        let cancel = Arc::new(AtomicBool::new(false));
        self.runtime.block_on(run_job(&settings, &catalog, index, &parquet, embedder, cancel, true))
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.temp.path().join(name)
    }
}

fn pipeline_efficiency(bench: &Bench) -> Result<serde_json::Value> {
    let (files, words) = if bench.quick { (100, 400) } else { (400, 600) };
    let docs = bench.dir("mixed");
    let bytes = make_mixed_corpus(&docs, files, words, 42);
    let chunker = Chunker::new(&bench.model.tokenizer, 200, 32, bench.model.max_sequence)?;
    let mut texts = Vec::new();
    for entry in std::fs::read_dir(&docs)? {
        let path = entry?.path();
        let extension = path.extension().unwrap().to_string_lossy().to_string();
        let document = ingest::extract::extract(&extension, &std::fs::read(&path)?)?;
        texts.extend(chunker.chunk(&document).into_iter().map(|c| c.content));
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut bare = Embedder::new(bench.model.clone(), bench.batch, bench.threads)?;
    bare.embed(&refs[..refs.len().min(bench.batch)])?; // warm-up
    let started = Instant::now();
    bare.embed(&refs)?;
    let bare_seconds = started.elapsed().as_secs_f64();
    drop(bare);
    let bare_rate = texts.len() as f64 / bare_seconds;

    let embedded = bench.job(&docs, &bench.dir("eff-embedded"), None, true)?;
    let server = qdrant_server::TestQdrant::start();
    let grpc = bench.job(&docs, &bench.dir("eff-grpc"), Some(&server.url()), true)?;
    for report in [&embedded, &grpc] {
        anyhow::ensure!(report.chunks as usize == texts.len(), "the job embedded other chunks than the bare run");
    }
    let rate = |r: &JobReport| r.chunks as f64 / r.elapsed_seconds;
    println!("\n1. pipeline efficiency ({files} files: txt, pdf, docx; {bytes} bytes; {} chunks)", texts.len());
    println!("   {:<28} {:>9} {:>10} {:>7}", "measure", "seconds", "chunks/s", "ratio");
    println!("   {:<28} {:>9.2} {:>10.2} {:>7}", "bare model", bare_seconds, bare_rate, "1.000");
    for (name, report) in [("pipeline, embedded engine", &embedded), ("pipeline, gRPC test server", &grpc)] {
        let ratio = rate(report) / bare_rate;
        println!(
            "   {name:<28} {:>9.2} {:>10.2} {ratio:>7.3}   (target >= 0.90)",
            report.elapsed_seconds,
            rate(report)
        );
    }
    Ok(json!({
        "inputs": { "files": files, "bytes": bytes, "chunks": texts.len(), "embed_batch_size": bench.batch, "threads": bench.threads },
        "bare_model": { "seconds": bare_seconds, "chunks_per_second": bare_rate },
        "pipeline_embedded": { "seconds": embedded.elapsed_seconds, "chunks_per_second": rate(&embedded), "ratio": rate(&embedded) / bare_rate },
        "pipeline_grpc_test_server": { "seconds": grpc.elapsed_seconds, "chunks_per_second": rate(&grpc), "ratio": rate(&grpc) / bare_rate },
        "target": 0.90,
    }))
}

fn bench_job(directory: &str, model: &str, dim: usize) -> NewJob {
    NewJob {
        name: "bench seed".into(),
        directory_path: directory.into(),
        collection: "bench".into(),
        model_name: model.into(),
        vector_dim: dim as i64,
        chunk_size: 200,
        chunk_overlap: 32,
        batch_size: 4000,
    }
}

/// Records `facts` as completed by `job` with `vectors` points each, as an ingest would.
async fn record_completed(catalog: &Catalog, job: &str, facts: &[FileFacts], vectors: i64) -> Result<()> {
    for group in facts.chunks(2000) {
        catalog.mark_processing("bench", job, group).await?;
        let done: Vec<Completion> =
            group.iter().map(|f| Completion { path: f.path.clone(), chunks: vectors, vectors }).collect();
        catalog.mark_completed("bench", job, &done).await?;
    }
    Ok(())
}

/// Records every file under `docs` as completed in the catalog at `data`, with one
/// synthetic point each in the embedded collection, as an ingest would, without embedding
/// (the re-run reads only the catalog and the file metadata).
fn seed_catalog(bench: &Bench, docs: &Path, data: &Path) -> Result<()> {
    let catalog = bench.catalog(data)?;
    let root = std::fs::canonicalize(docs)?;
    let fingerprint = logic_fingerprint(&bench.model.id, 200, 32);
    bench.runtime.block_on(async {
        let job = catalog.create_job(&bench_job(&root.display().to_string(), &bench.model.id, bench.model.dim)).await?;
        let mut facts = Vec::new();
        for item in ingest::scan::scan(&root, &ScanOptions::new(&[], &[])?) {
            let ScanItem::File(entry) = item else { continue };
            let bytes = std::fs::read(&entry.path)?;
            facts.push(FileFacts {
                doc_id: ingest::hash::doc_id(&entry.path_text),
                path: entry.path_text,
                size: entry.size as i64,
                modified_ns: entry.modified_ns,
                extension: entry.extension,
                content_hash: Some(ingest::hash::sha256_hex(&bytes)),
                logic_fingerprint: fingerprint.clone(),
            });
        }
        let location = StoreLocation { data_dir: data, qdrant_url: None, api_key: None };
        let index = ingest::store::open(location, "bench", RetryPolicy::default()).await?;
        index.ensure_collection(bench.model.dim).await?;
        let mut points = synthetic_points(facts.len(), bench.model.dim, &job, 1);
        for (point, file) in points.iter_mut().zip(&facts) {
            point.id = ingest::hash::point_id(&file.doc_id, 0);
            point.payload.doc_id = file.doc_id.clone();
            point.payload.path = file.path.clone();
        }
        ingest::store::upsert_in_batches(index.as_ref(), &points, 4000, 2, |_| {}).await?;
        index.finish().await?;
        record_completed(&catalog, &job, &facts, 1).await
    })
}

fn bare_stat_walk(root: &Path) -> (u64, f64) {
    let started = Instant::now();
    let mut files = 0;
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = entry.unwrap();
        if entry.file_type().is_file() && entry.metadata().is_ok() {
            files += 1;
        }
    }
    (files, started.elapsed().as_secs_f64())
}

/// Runs the binary and returns (exit code, wall seconds, its peak RSS in MiB, its report).
/// The peak is the binary's own `VmHWM` from its report: `getrusage` on a child counts the
/// pages it shared with this (large) process between fork and exec.
fn measured_run(args: &[&std::ffi::OsStr]) -> Result<(i32, f64, f64, serde_json::Value)> {
    let started = Instant::now();
    let output =
        Command::new(env!("CARGO_BIN_EXE_ingest")).args(args).args(["--json", "--quiet"]).output().context("ingest")?;
    let seconds = started.elapsed().as_secs_f64();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null);
    let peak = report["peak_memory_mib"].as_f64().context("the report has no peak_memory_mib")?;
    Ok((output.status.code().unwrap_or(-1), seconds, peak, report))
}

fn no_change_rerun(bench: &Bench) -> Result<serde_json::Value> {
    let files = if bench.quick { 20_000 } else { 100_000 };
    let docs = bench.dir("tiny-many");
    make_tiny_files(&docs, files);
    let data = bench.dir("rerun-data");
    seed_catalog(bench, &docs, &data)?;
    // Three rounds, walk and re-run taking turns on the same warm tree; the best of each.
    let (mut walk, mut rerun) = (f64::MAX, f64::MAX);
    for _ in 0..3 {
        let (walked, seconds) = bare_stat_walk(&docs);
        anyhow::ensure!(walked == files as u64, "the walk found {walked} files");
        walk = walk.min(seconds);
        let report = bench.job(&docs, &data, None, false)?;
        anyhow::ensure!(report.unchanged == files as u64 && report.files_read == 0, "the re-run was not a no-op");
        rerun = rerun.min(report.elapsed_seconds);
    }
    let ratio = rerun / walk;
    println!("\n2. no-change re-run over {files} files (best of 3)");
    println!("   bare walk + stat: {walk:.3} s; re-run (run_job): {rerun:.3} s, 0 files read");
    println!("   ratio re-run / walk: {ratio:.2} (target <= 2.0)");

    let args: Vec<&std::ffi::OsStr> =
        vec![docs.as_os_str(), "--data-dir".as_ref(), data.as_os_str(), "--collection".as_ref(), "bench".as_ref()];
    let (mut binary_seconds, mut binary_rss) = (f64::MAX, 0f64);
    for _ in 0..3 {
        let (code, seconds, rss, report) = measured_run(&args)?;
        anyhow::ensure!(code == 0 && report["files_read"] == 0, "the binary's re-run failed or read files: {report}");
        binary_seconds = binary_seconds.min(seconds);
        binary_rss = binary_rss.max(rss);
    }
    let binary_ratio = binary_seconds / walk;
    println!(
        "   the binary's whole process (start-up, catalog and store open, exit): {binary_seconds:.3} s, ratio {binary_ratio:.2}, peak RSS {binary_rss:.0} MiB"
    );
    Ok(json!({
        "inputs": { "files": files, "rounds": 3 },
        "bare_walk_seconds": walk,
        "rerun_seconds": rerun,
        "ratio": ratio,
        "target": 2.0,
        "binary_rerun": { "seconds": binary_seconds, "ratio": binary_ratio, "peak_rss_mib": binary_rss },
    }))
}

fn synthetic_points(count: usize, dim: usize, job: &str, chunks_per_file: usize) -> Vec<Point> {
    let mut state = 7u64;
    (0..count)
        .map(|i| {
            let doc = format!("{:016x}", i / chunks_per_file);
            let vector: Vec<f32> = (0..dim)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
                })
                .collect();
            let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
            let chunk = (i % chunks_per_file) as u32;
            Point {
                id: ingest::hash::point_id(&doc, chunk),
                vector: vector.into_iter().map(|v| v / norm).collect(),
                payload: PointPayload {
                    path: format!("/bench/{doc}.txt"),
                    doc_id: doc,
                    chunk_index: chunk,
                    content: format!("synthetic chunk {i} with some words to carry"),
                    content_hash: format!("{i:064x}"),
                    job_id: job.into(),
                    model: "bench".into(),
                    created_at: "2026-01-01T00:00:00.000000Z".into(),
                },
            }
        })
        .collect()
}

/// Upserts `points` in batches with `parallel` in flight; returns the seconds taken.
async fn upsert_all(index: &dyn VectorIndex, points: &[Point], batch: usize, parallel: usize) -> Result<f64> {
    let started = Instant::now();
    ingest::store::upsert_in_batches(index, points, batch, parallel, |_| {}).await?;
    Ok(started.elapsed().as_secs_f64())
}

fn restore_ratio(bench: &Bench) -> Result<serde_json::Value> {
    let count = if bench.quick { 20_000 } else { 100_000 };
    let dim = bench.model.dim;
    let data = bench.dir("restore-data");
    let catalog = bench.catalog(&data)?;
    let job = bench.runtime.block_on(catalog.create_job(&bench_job("/bench", "bench", dim)))?;
    let points = synthetic_points(count, dim, &job, 10);
    let copy = ParquetCopy::new(&data, "bench", dim);
    for (part, group) in points.chunks(4000).enumerate() {
        copy.write_part(&job, part as u64, group)?;
    }
    copy.compact_job(&job)?;
    bench.runtime.block_on(async {
        let mut facts = Vec::new();
        for p in points.iter().filter(|p| p.payload.chunk_index == 0) {
            facts.push(FileFacts {
                path: p.payload.path.clone(),
                doc_id: p.payload.doc_id.clone(),
                size: 1,
                modified_ns: 1,
                extension: "txt".into(),
                content_hash: Some("x".into()),
                logic_fingerprint: "bench".into(),
            });
        }
        record_completed(&catalog, &job, &facts, 10).await
    })?;
    let upload = Upload { batch_size: 4000, parallelism: 2 };

    // The bare loop: the same points, already in memory, into a fresh collection of the same store.
    // It ends like a restore, with the collection's index built (`finish`).
    let bare_index = bench.store(&bench.dir("restore-bare"), None, "bench")?;
    bench.runtime.block_on(bare_index.ensure_collection(dim))?;
    let started = Instant::now();
    bench.runtime.block_on(upsert_all(bare_index.as_ref(), &points, 4000, 2))?;
    bench.runtime.block_on(bare_index.finish())?;
    let bare_seconds = started.elapsed().as_secs_f64();
    drop(bare_index);

    let index = bench.store(&data, None, "bench")?;
    let started = Instant::now();
    let report =
        bench.runtime.block_on(consistency::restore(&catalog, index.as_ref(), copy.dir(), dim, upload, true))?;
    let restore_seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(report.points_restored == count as u64, "restored {} of {count}", report.points_restored);
    let (bare_rate, restore_rate) = (count as f64 / bare_seconds, count as f64 / restore_seconds);
    println!("\n3. restore of {count} points (embedded engine, batches of 4000, 2 in flight)");
    println!("   bare upsert loop: {bare_seconds:.2} s ({bare_rate:.0} points/s); restore from parquet: {restore_seconds:.2} s ({restore_rate:.0} points/s)");
    println!("   ratio: {:.3} (target >= 0.85)", restore_rate / bare_rate);
    Ok(json!({
        "inputs": { "points": count, "dim": dim, "upload_batch_size": 4000, "parallelism": 2 },
        "bare_upsert": { "seconds": bare_seconds, "points_per_second": bare_rate },
        "restore": { "seconds": restore_seconds, "points_per_second": restore_rate },
        "ratio": restore_rate / bare_rate,
        "target": 0.85,
    }))
}

fn upload_batches(bench: &Bench) -> Result<serde_json::Value> {
    let count = if bench.quick { 8_000 } else { 32_000 };
    let points = synthetic_points(count, bench.model.dim, "sweep", 10);
    let server = qdrant_server::TestQdrant::start();
    let url = server.url();
    let mut rows = Vec::new();
    println!("\n4. upload throughput, {count} points (points/s)");
    println!("   {:<20} {:>6} {:>10} {:>10} {:>10} {:>10}", "store", "batch", "1 flight", "2", "3", "4");
    for (name, url) in [("embedded engine", None), ("gRPC test server", Some(url.as_str()))] {
        for batch in [64, 256, 1000, 4000] {
            let mut rates = Vec::new();
            for parallel in 1..=4 {
                let collection = format!("sweep_{batch}_{parallel}");
                let index = bench.store(&bench.dir(&format!("sweep-{name}")), url, &collection)?;
                bench.runtime.block_on(index.ensure_collection(bench.model.dim))?;
                let seconds = bench.runtime.block_on(upsert_all(index.as_ref(), &points, batch, parallel))?;
                bench.runtime.block_on(index.drop_collection())?;
                let rate = count as f64 / seconds;
                rates.push(rate);
                rows.push(json!({ "store": name, "batch": batch, "in_flight": parallel, "seconds": seconds, "points_per_second": rate }));
            }
            println!(
                "   {name:<20} {batch:>6} {:>10.0} {:>10.0} {:>10.0} {:>10.0}",
                rates[0], rates[1], rates[2], rates[3]
            );
        }
    }
    Ok(json!({ "inputs": { "points": count }, "rows": rows }))
}

fn peak_memory(bench: &Bench) -> Result<serde_json::Value> {
    let sizes = if bench.quick { [1_000, 5_000] } else { [10_000, 100_000] };
    println!("\n5. peak RSS of the binary");
    // The embedded engine keeps the collection's vectors and index in the binary's memory;
    // with the gRPC test server (in this process) the binary holds only the pipeline's own.
    let server = qdrant_server::TestQdrant::start();
    let url = server.url();
    let mut first_ingests = Vec::new();
    for files in sizes {
        let docs = bench.dir(&format!("rss-{files}"));
        make_tiny_files(&docs, files);
        for (store, url) in [("embedded engine", None), ("gRPC test server", Some(url.as_str()))] {
            let data = bench.dir(&format!("rss-data-{files}-{}", url.is_some()));
            let mut args: Vec<&std::ffi::OsStr> = vec![docs.as_os_str(), "--data-dir".as_ref(), data.as_os_str()];
            if let Some(url) = url {
                args.extend([std::ffi::OsStr::new("--qdrant-url"), std::ffi::OsStr::new(url)]);
            }
            let (code, seconds, rss, report) = measured_run(&args)?;
            println!(
                "   first ingest of {files} files, {store}: exit {code}, {seconds:.1} s, {} chunks, peak RSS {rss:.0} MiB",
                report["chunks"]
            );
            first_ingests
                .push(json!({ "files": files, "store": store, "seconds": seconds, "peak_rss_mib": rss, "exit": code }));
        }
    }
    let pages = if bench.quick { 60 } else { 400 };
    let docs = bench.dir("large-pdf");
    std::fs::create_dir_all(&docs)?;
    let body = pdf(&Words(9).sentence_text(pages * 45 * 12));
    std::fs::write(docs.join("large.pdf"), &body)?;
    let data = bench.dir("large-pdf-data");
    let args: Vec<&std::ffi::OsStr> = vec![docs.as_os_str(), "--data-dir".as_ref(), data.as_os_str()];
    let (code, seconds, rss, report) = measured_run(&args)?;
    println!(
        "   one {pages}-page PDF ({} bytes): exit {code}, {seconds:.1} s, {} chunks, peak RSS {rss:.0} MiB",
        body.len(),
        report["chunks"]
    );
    Ok(json!({
        "first_ingest": first_ingests,
        "large_pdf": { "pages": pages, "bytes": body.len(), "chunks": report["chunks"], "seconds": seconds, "peak_rss_mib": rss, "exit": code },
        "target_mib_for_100k_files": 1024,
    }))
}

/// One section of the harness: its figures, as JSON.
type Section = fn(&Bench) -> Result<serde_json::Value>;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let quick = std::env::args().any(|a| a == "--quick");
    // (the name that selects a section on the command line, its key in the JSON, the section)
    let sections: [(&str, &str, Section); 5] = [
        ("efficiency", "pipeline_efficiency", pipeline_efficiency),
        ("rerun", "no_change_rerun", no_change_rerun),
        ("restore", "restore", restore_ratio),
        ("upload", "upload_batches", upload_batches),
        ("memory", "peak_memory", peak_memory),
    ];
    if let Some(unknown) = args.iter().find(|a| !sections.iter().any(|(name, ..)| name == a)) {
        let names: Vec<&str> = sections.iter().map(|(name, ..)| *name).collect();
        anyhow::bail!("unknown section {unknown:?}; the sections are {}", names.join(", "));
    }
    let wanted = |section: &str| args.is_empty() || args.iter().any(|a| a == section);
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let bench = Bench {
        quick,
        model: ModelInfo::load(None)?,
        batch: 32,
        threads,
        runtime: tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?,
        temp: tempfile::tempdir()?,
    };
    let started = Instant::now();
    let mut results = serde_json::Map::new();
    results.insert("machine".into(), json!({ "cores": threads, "quick": quick }));
    for (section, key, run) in sections {
        if wanted(section) {
            results.insert(key.into(), run(&bench)?);
        }
    }
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("results.json"), serde_json::to_string_pretty(&results)?)?;
    println!("\nwrote {} in {:.0} s", out.join("results.json").display(), started.elapsed().as_secs_f64());
    Ok(())
}
