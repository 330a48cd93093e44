//! Throughput and memory, each figure a ratio against a baseline measured in the same run:
//!
//! 1. pipeline efficiency: end-to-end chunks/s of a real job (scan, hash, extract, chunk,
//!    embed, catalog, parquet, store) over the bare model's chunks/s on the same chunk texts,
//!    batching and threads; on the embedded engine and on the gRPC test Qdrant server;
//! 2. no-change re-run: a re-run over many unchanged files against a bare walk that stats
//!    every file;
//! 3. restore: points/s of `restore` from parquet against a bare loop upserting the same
//!    points into the same kind of store;
//! 4. upload batch size and parallelism: points/s per combination, on both stores;
//! 5. peak RSS of the real binary: first ingests of two tree sizes, a no-change re-run over
//!    the largest tree, and one very large PDF;
//! 6. real documents found on this machine (rendered man pages, package documentation, PDF
//!    and DOCX files shipped in packages): the pipeline's chunks/s over the bare model's on
//!    the chunk texts it produced, the binary's peak RSS, and the bare model's chunks/s and
//!    peak RSS per token budget;
//! 7. many workers: PostgreSQL as their queue (claim latency and claims/s with 1, 4 and 16
//!    concurrent claimers, each claim of 4 items followed by the fenced completion a worker
//!    writes), and the real documents of section 6 indexed by a planner and 2 local worker
//!    processes against one process, both on PostgreSQL and the gRPC test server (needs the
//!    PostgreSQL of `scripts/ensure_postgres.sh`, or `DATABASE_URL_TEST`);
//! 8. long lines: the chunk stage's MB/s on the same words as one line and as 80-column lines,
//!    at 0.1, 1 and 10 MB, and the binary's peak RSS on a 100 MB text with no newline;
//! 9. retrieval quality on man pages with known answers (`benches/retrieval/`): recall@1,
//!    recall@5, MRR@10 and query latency per search mode;
//! 10. every installed model (`ingest models`) on the real documents of section 6: the
//!     pipeline's chunks/s over that model's bare chunks/s on the same chunk texts;
//! 11. scale (`benches/scale/`): the first run, a no-change re-run, verify, repair, restore
//!     (beside a bare upsert loop) and export at 100,000 to 1,000,000 points, through the
//!     binary, with each step's peak RSS, on the embedded default and on PostgreSQL with a
//!     real Qdrant;
//! 12. the search service (`benches/serve/`): `ingest serve` under 1, 8 and 32 concurrent
//!     clients per search mode (requests/s, p50/p95/p99 latency), beside `ingest search` per
//!     process and the bare model's query-embedding rate;
//! 13. OCR (`benches/ocr/`): pages of real text rendered at 300 and 150 dpi and read back,
//!     with their character error rate, pages/s with one reader and one per core, and the
//!     share of a mixed run's time the scans add.
//!
//! The other corpora are generated with fixed seeds. Run: `cargo bench --bench pipeline -- --quick`
//! (minutes) or without `--quick` (100,000 files). Prints tables and writes
//! `target/bench/results.json`. Name sections to run only those, e.g.
//! `cargo bench --bench pipeline -- --quick rerun memory`.

#[path = "ocr/mod.rs"]
mod ocr;
#[allow(dead_code)]
#[path = "../tests/common/qdrant_server.rs"]
mod qdrant_server;
#[path = "retrieval/mod.rs"]
mod retrieval;
#[path = "scale/mod.rs"]
mod scale;
#[path = "../tests/common/scans.rs"]
mod scans;
#[path = "serve/mod.rs"]
mod serve;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;

use ingest::catalog::{Catalog, CollectionCatalog, Completion, Fence, FileFacts, NewJob, WorkItem, WorkKind};
use ingest::chunk::Chunker;
use ingest::consistency::{self, Upload};
use ingest::embed::{Batching, Embedder};
use ingest::extract::ExtractorSettings;
use ingest::model::ModelInfo;
use ingest::parquet_copy::ParquetCopy;
use ingest::pipeline::{run_job, JobReport, JobSettings, LogicFingerprint};
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

fn job_settings(root: &Path, collection: &str, batching: Batching) -> Result<JobSettings> {
    Ok(JobSettings {
        root: std::fs::canonicalize(root)?,
        collection: collection.into(),
        scan: ScanOptions::new(&[], &[], false, false, false)?,
        chunk_size: 200,
        chunk_overlap: 32,
        embed_batching: batching,
        upload_batch_size: 4000,
        upload_parallelism: 2,
        max_file_bytes: 100 << 20,
        max_file_chunks: 20_000,
        commit_interval: Duration::from_secs(5),
        full: false,
        dry_run: false,
        max_retries: 3,
        allow_mass_delete: false,
        extraction: ExtractorSettings {
            program: PathBuf::from(env!("CARGO_BIN_EXE_ingest")),
            timeout: Duration::from_secs(60),
            memory_limit_mib: 1024,
            processes: std::thread::available_parallelism().map_or(2, |n| n.get()),
            ocr: Default::default(),
        },
        ocr: ingest::extract::ocr::OcrSettings::new(ingest::extract::ocr::OcrMode::Off, "eng".into(), 1)
            .map_err(anyhow::Error::msg)?,
        queued: false,
    })
}

struct Bench {
    quick: bool,
    model: ModelInfo,
    batching: Batching,
    threads: usize,
    runtime: tokio::runtime::Runtime,
    temp: tempfile::TempDir,
}

impl Bench {
    fn store(&self, data: &Path, url: Option<&str>, collection: &str) -> Result<Arc<dyn VectorIndex>> {
        let location =
            StoreLocation { data_dir: data, qdrant_url: url, api_key: None, layout: Default::default(), like: None };
        self.runtime.block_on(ingest::store::open(location, collection, RetryPolicy::default()))
    }

    /// The catalog at `data`, bound to the benchmarks' collection.
    fn catalog(&self, data: &Path) -> Result<CollectionCatalog> {
        std::fs::create_dir_all(data)?;
        Ok(self.runtime.block_on(Catalog::connect(&Catalog::sqlite_url(data)))?.collection("bench"))
    }

    /// Runs a job in this process. With `preload`, the model is loaded before the clock
    /// starts, as the bare model's is; otherwise the job loads it if it has anything to embed.
    fn job(&self, docs: &Path, data: &Path, url: Option<&str>, preload: bool) -> Result<JobReport> {
        self.job_with(&self.model, docs, data, url, preload)
    }

    /// [`Self::job`] with `model` instead of the default one.
    fn job_with(
        &self,
        model: &ModelInfo,
        docs: &Path,
        data: &Path,
        url: Option<&str>,
        preload: bool,
    ) -> Result<JobReport> {
        let catalog = self.catalog(data)?;
        let index = self.store(data, url, "bench")?;
        let parquet = ParquetCopy::new(data, "bench", model.dim);
        let mut embedder = Embedder::new(model.clone(), self.threads)?;
        if preload {
            embedder.load()?;
        }
        let settings = job_settings(docs, "bench", self.batching)?;
        let cancel = Arc::new(AtomicBool::new(false));
        self.runtime.block_on(run_job(&settings, &catalog, None, index, &parquet, embedder, cancel, true))
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.temp.path().join(name)
    }
}

fn pipeline_efficiency(bench: &Bench) -> Result<serde_json::Value> {
    let (files, words) = if bench.quick { (100, 400) } else { (400, 600) };
    let docs = bench.dir("mixed");
    let bytes = make_mixed_corpus(&docs, files, words, 42);
    let chunker = Chunker::new(&bench.model.tokenizer()?, 200, 32, bench.model.max_sequence)?;
    let mut texts = Vec::new();
    for entry in std::fs::read_dir(&docs)? {
        let path = entry?.path();
        let extension = path.extension().unwrap().to_string_lossy().to_string();
        let document = ingest::extract::extract_in_process(&extension, &std::fs::read(&path)?, &Default::default())?;
        texts.extend(chunker.chunk(&document).into_iter().map(|c| c.content));
    }
    let counted = count_tokens(&bench.model, &texts);
    let mut bare = Embedder::new(bench.model.clone(), bench.threads)?;
    bare.embed(&counted[..counted.len().min(bench.batching.max_texts)], bench.batching)?; // warm-up
    let started = Instant::now();
    bare.embed(&counted, bench.batching)?;
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
        "inputs": { "files": files, "bytes": bytes, "chunks": texts.len(), "embed_batch_size": bench.batching.max_texts, "embed_batch_tokens": bench.batching.max_tokens, "threads": bench.threads },
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
async fn record_completed(catalog: &CollectionCatalog, job: &str, facts: &[FileFacts], vectors: i64) -> Result<()> {
    for group in facts.chunks(2000) {
        catalog.mark_processing(job, group).await?;
        let done: Vec<Completion> =
            group.iter().map(|f| Completion { path: f.path.clone(), chunks: vectors, vectors }).collect();
        catalog.mark_completed(job, &done).await?;
    }
    Ok(())
}

/// Records every file under `docs` as completed in the catalog at `data`, with one
/// synthetic point each in the embedded collection, as an ingest would, without embedding
/// (the re-run reads only the catalog and the file metadata).
fn seed_catalog(bench: &Bench, docs: &Path, data: &Path) -> Result<()> {
    let catalog = bench.catalog(data)?;
    let root = std::fs::canonicalize(docs)?;
    let fingerprint = LogicFingerprint::new(&bench.model.id, 200, 32);
    bench.runtime.block_on(async {
        let job = catalog.create_job(&bench_job(&root.display().to_string(), &bench.model.id, bench.model.dim)).await?;
        let mut facts = Vec::new();
        for item in ingest::scan::scan(&root, &ScanOptions::new(&[], &[], false, false, false)?) {
            let ScanItem::File(entry) = item else { continue };
            let bytes = std::fs::read(entry.path())?;
            facts.push(FileFacts {
                doc_id: ingest::hash::doc_id(&entry.path_text),
                path: entry.path_text,
                size: entry.size as i64,
                modified_ns: entry.modified_ns,
                logic_fingerprint: fingerprint.of(&entry.extension),
                extension: entry.extension,
                content_hash: Some(ingest::hash::sha256_hex(&bytes)),
            });
        }
        let location =
            StoreLocation { data_dir: data, qdrant_url: None, api_key: None, layout: Default::default(), like: None };
        let index = ingest::store::open(location, "bench", RetryPolicy::default()).await?;
        index.ensure_collection(bench.model.dim).await?;
        let mut points = synthetic_points(facts.len(), bench.model.dim, &job, 1);
        for (point, file) in points.iter_mut().zip(&facts) {
            point.id = ingest::hash::point_id(&file.doc_id, 0);
            point.payload.doc_id = file.doc_id.clone();
            point.payload.path = file.path.clone();
        }
        ingest::store::upsert_in_batches(index.as_ref(), points, 4000, 2, |_| {}).await?;
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

    // A nightly run that deletes 1% of the files: its end check covers those files and the
    // collection's total; measured against the no-change re-run.
    let removed = files / 100;
    for i in 0..removed {
        std::fs::remove_file(docs.join(format!("d{:04}", i / 100)).join(format!("n{i:06}.txt")))?;
    }
    let report = bench.job(&docs, &data, None, false)?;
    let verified = report.verified.as_ref().context("a run that deleted files reported no check")?;
    let check_share = verified.seconds / rerun;
    println!(
        "   a re-run deleting {removed} files: {:.3} s; its end check of {} files {:.3} s = {:.1}% of the no-change re-run (target < 5%), agree: {}",
        report.elapsed_seconds,
        verified.files,
        verified.seconds,
        100.0 * check_share,
        verified.agree
    );
    Ok(json!({
        "inputs": { "files": files, "rounds": 3 },
        "bare_walk_seconds": walk,
        "rerun_seconds": rerun,
        "ratio": ratio,
        "target": 2.0,
        "binary_rerun": { "seconds": binary_seconds, "ratio": binary_ratio, "peak_rss_mib": binary_rss },
        "end_check": {
            "files_deleted": removed, "run_seconds": report.elapsed_seconds, "check_seconds": verified.seconds,
            "share_of_no_change_rerun": check_share, "target": 0.05, "agree": verified.agree,
        },
    }))
}

fn synthetic_points(count: usize, dim: usize, job: &str, chunks_per_file: usize) -> Vec<Point> {
    let mut state = 7u64;
    let analyzer = ingest::sparse::Analyzer::english();
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
            let content = format!("synthetic chunk {i} with some words to carry");
            Point {
                id: ingest::hash::point_id(&doc, chunk),
                vector: vector.into_iter().map(|v| v / norm).collect(),
                sparse: analyzer.document(&content),
                payload: PointPayload {
                    path: format!("/bench/{doc}.txt"),
                    doc_id: doc,
                    chunk_index: chunk,
                    content,
                    content_hash: format!("{i:064x}"),
                    job_id: job.into(),
                    model: "bench".into(),
                    created_at: "2026-01-01T00:00:00.000000Z".into(),
                    analyzer: Some(ingest::sparse::ANALYZER_VERSION.into()),
                    ext: Some("txt".into()),
                    origin: Default::default(),
                },
            }
        })
        .collect()
}

/// Upserts `points` in batches with `parallel` in flight; returns the seconds taken.
async fn upsert_all(index: &dyn VectorIndex, points: Vec<Point>, batch: usize, parallel: usize) -> Result<f64> {
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
        copy.write_part(&job, &format!("{part:06}"), group)?;
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
    bench.runtime.block_on(upsert_all(bare_index.as_ref(), points, 4000, 2))?;
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
                let seconds = bench.runtime.block_on(upsert_all(index.as_ref(), points.clone(), batch, parallel))?;
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
            let check_seconds = report["verified"]["seconds"].as_f64().unwrap_or(f64::NAN);
            println!(
                "   first ingest of {files} files, {store}: exit {code}, {seconds:.1} s, {} chunks, peak RSS {rss:.0} MiB; end check {check_seconds:.2} s = {:.2}% of the run (target < 1%)",
                report["chunks"],
                100.0 * check_seconds / seconds
            );
            first_ingests.push(json!({
                "files": files, "store": store, "seconds": seconds, "peak_rss_mib": rss, "exit": code,
                "end_check_seconds": check_seconds, "end_check_share": check_seconds / seconds,
            }));
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

/// Each text with its token count, as the chunker gives it.
fn count_tokens<'a>(model: &ModelInfo, texts: &'a [String]) -> Vec<(&'a str, usize)> {
    let tokenizer = model.tokenizer().expect("the model's tokenizer");
    texts.iter().map(|t| (t.as_str(), ingest::chunk::count_tokens(&tokenizer, t))).collect()
}

/// At most `cap` of `items`, spread evenly over them, in order.
fn spread<T: Clone>(items: &[T], cap: usize) -> Vec<T> {
    if items.len() <= cap {
        return items.to_vec();
    }
    (0..cap).map(|i| items[i * items.len() / cap].clone()).collect()
}

/// The text of a documentation file, decompressed when it ends in `.gz`.
fn read_doc(path: &Path) -> Result<Vec<u8>> {
    if path.extension().is_some_and(|e| e == "gz") {
        let output = Command::new("zcat").arg(path).output().context("zcat")?;
        anyhow::ensure!(output.status.success(), "zcat {} failed", path.display());
        return Ok(output.stdout);
    }
    Ok(std::fs::read(path)?)
}

/// A man page rendered as plain text by `man`; where `man` is missing, its source text.
fn render_man_page(path: &Path) -> Result<Vec<u8>> {
    let rendered = Command::new("man").args(["-P", "cat", "-l"]).arg(path).env("MANWIDTH", "80").output();
    match rendered {
        Ok(output) if output.status.success() && !output.stdout.is_empty() => Ok(output.stdout),
        _ => read_doc(path),
    }
}

/// Where the real-text section looks for PDF and DOCX files: /usr/share, Python's library
/// and the cargo registry's unpacked crates.
fn document_roots() -> Vec<PathBuf> {
    let mut roots = vec![PathBuf::from("/usr/share")];
    let children = |dir: PathBuf| -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> =
            std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).collect();
        found.sort();
        found
    };
    roots.extend(
        children("/usr/lib".into()).into_iter().filter(|p| p.to_string_lossy().starts_with("/usr/lib/python3")),
    );
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    if let Some(cargo_home) = cargo_home {
        roots.extend(children(cargo_home.join("registry/src")));
    }
    roots
}

/// Real documents found on this machine, by kind, each list sorted by path.
struct RealSources {
    man_pages: Vec<PathBuf>,
    docs: Vec<PathBuf>,
    pdfs: Vec<PathBuf>,
    docx: Vec<PathBuf>,
}

impl RealSources {
    /// Man pages of section 1 (one per command family) and package documentation (README, copyright, NEWS, changelog,
    /// *.md, *.txt) of a middling size, and the PDF and DOCX files under [`document_roots`]
    /// of at most 8 MiB.
    fn find() -> Self {
        let sized = |path: &Path, range: std::ops::RangeInclusive<u64>| {
            std::fs::metadata(path).is_ok_and(|m| m.is_file() && range.contains(&m.len()))
        };
        let mut man_pages: Vec<PathBuf> = std::fs::read_dir("/usr/share/man/man1")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| sized(p, 1_500..=4_000))
            .collect();
        man_pages.sort();
        // One page per command family (the name up to its first `_`, `-` or `.`): some
        // packages ship thousands of generated sub-command pages.
        let family =
            |p: &PathBuf| p.file_name().unwrap().to_string_lossy().split(['_', '-', '.']).next().map(String::from);
        man_pages.dedup_by_key(|p| family(p));
        let mut docs = Vec::new();
        for entry in walkdir::WalkDir::new("/usr/share/doc").max_depth(2).sort_by_file_name().into_iter().flatten() {
            let name = entry.file_name().to_string_lossy().to_lowercase();
            let stem = name.trim_end_matches(".gz");
            let wanted = ["readme", "copyright", "news", "changelog"].iter().any(|p| stem.starts_with(p))
                || stem.ends_with(".md")
                || stem.ends_with(".txt");
            let range = if name.ends_with(".gz") { 500..=5_000 } else { 1_000..=12_000 };
            if wanted && sized(entry.path(), range) {
                docs.push(entry.into_path());
            }
        }
        let (mut pdfs, mut docx) = (Vec::new(), Vec::new());
        for root in document_roots() {
            for entry in walkdir::WalkDir::new(root).sort_by_file_name().into_iter().flatten() {
                let name = entry.file_name().to_string_lossy().to_lowercase();
                let list = if name.ends_with(".pdf") {
                    &mut pdfs
                } else if name.ends_with(".docx") {
                    &mut docx
                } else {
                    continue;
                };
                if sized(entry.path(), 1..=8 << 20) {
                    list.push(entry.into_path());
                }
            }
        }
        Self { man_pages, docs, pdfs, docx }
    }
}

/// Reads a found document as it is to be indexed.
type ReadDocument = fn(&Path) -> Result<Vec<u8>>;

/// Copies a bounded, deterministic selection of [`RealSources`] into `root`: up to 20
/// rendered man pages, 40 documentation texts (extensionless ones as `.txt`) and 8 each of
/// PDF and DOCX, spread over the sorted lists, identical contents once. Returns the files
/// written per kind and their bytes.
fn gather_real_corpus(root: &Path) -> Result<(serde_json::Value, u64)> {
    let sources = RealSources::find();
    let mut seen = std::collections::HashSet::new();
    let mut bytes = 0;
    let mut counts = serde_json::Map::new();
    let kinds: [(&str, Vec<PathBuf>, ReadDocument); 4] = [
        ("man", spread(&sources.man_pages, 20), render_man_page),
        ("doc", spread(&sources.docs, 40), read_doc),
        ("pdf", spread(&sources.pdfs, 8), |p| Ok(std::fs::read(p)?)),
        ("docx", spread(&sources.docx, 8), |p| Ok(std::fs::read(p)?)),
    ];
    for (kind, paths, read) in kinds {
        let dir = root.join(kind);
        std::fs::create_dir_all(&dir)?;
        let mut written = 0;
        for (i, path) in paths.iter().enumerate() {
            let Ok(body) = read(path) else { continue };
            if !seen.insert(ingest::hash::sha256_hex(&body)) {
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().trim_end_matches(".gz").to_string();
            let name = match kind {
                "pdf" | "docx" => name,
                _ if name.ends_with(".md") || name.ends_with(".txt") => name,
                _ => format!("{name}.txt"),
            };
            // The parent directory's name keeps apart the many `README`s and `copyright`s.
            let parent = path.parent().and_then(Path::file_name).unwrap_or_default().to_string_lossy();
            std::fs::write(dir.join(format!("{i:02}-{parent}-{name}")), &body)?;
            bytes += body.len() as u64;
            written += 1;
        }
        counts.insert(kind.into(), json!(written));
    }
    Ok((serde_json::Value::Object(counts), bytes))
}

/// The argument that makes this harness a child measuring the bare model (see [`bare_child`]).
const BARE_CHILD: &str = "--bare-model-child";

/// A child process: embeds the texts in the JSON array file `args[0]` with the bare model
/// in the directory `args[3]`, cut by `args[1]` texts and `args[2]` padded tokens per call,
/// after a warm-up call, and prints its seconds and peak RSS as JSON. A process per batching
/// makes each peak its own.
fn bare_child(args: &[String]) -> Result<()> {
    let [file, max_texts, max_tokens, model_dir] = args else {
        anyhow::bail!("{BARE_CHILD} FILE MAX_TEXTS MAX_TOKENS MODEL_DIR")
    };
    let batching = Batching { max_texts: max_texts.parse()?, max_tokens: max_tokens.parse()? };
    let model = ModelInfo::load(Some(Path::new(model_dir)))?;
    let texts: Vec<String> = serde_json::from_slice(&std::fs::read(file)?)?;
    let counted = count_tokens(&model, &texts);
    let mut embedder = Embedder::new(model, std::thread::available_parallelism().map_or(2, |n| n.get()))?;
    embedder.embed(&counted[..counted.len().min(8)], batching)?;
    let started = Instant::now();
    embedder.embed(&counted, batching)?;
    let seconds = started.elapsed().as_secs_f64();
    println!("{}", json!({ "seconds": seconds, "peak_rss_mib": ingest::progress::peak_memory_mib() }));
    Ok(())
}

/// Runs [`bare_child`] on `texts_file` with `model`: (seconds, peak RSS in MiB).
fn bare_model_run(model: &ModelInfo, texts_file: &Path, batching: Batching) -> Result<(f64, f64)> {
    let output = Command::new(std::env::current_exe()?)
        .arg(BARE_CHILD)
        .arg(texts_file)
        .args([batching.max_texts.to_string(), batching.max_tokens.to_string()])
        .arg(&model.dir)
        .output()
        .context("the bare model's process")?;
    anyhow::ensure!(output.status.success(), "the bare model failed: {}", String::from_utf8_lossy(&output.stderr));
    let figures: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    Ok((figures["seconds"].as_f64().context("no seconds")?, figures["peak_rss_mib"].as_f64().unwrap_or(f64::NAN)))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Real documents: the pipeline end to end against the bare model on the chunk texts it
/// produced (read back from its parquet copy), then the bare model over a sweep of token
/// budgets on the same texts.
fn real_documents(bench: &Bench) -> Result<serde_json::Value> {
    let load_before = load_average();
    let docs = bench.dir("real");
    let (files, bytes) = gather_real_corpus(&docs)?;
    let data = bench.dir("real-data");
    let report = bench.job(&docs, &data, None, true)?;
    // The same job against the gRPC test server (this process serves it, on the same cores).
    let server = qdrant_server::TestQdrant::start();
    let grpc = bench.job(&docs, &bench.dir("real-data-grpc"), Some(&server.url()), true)?;
    drop(server);
    let texts = embedded_texts(&data, &bench.model, &report)?;
    // What counting a chunk's tokens (once, in the chunk stage) costs beside the model.
    let started = Instant::now();
    let tokens: Vec<usize> = count_tokens(&bench.model, &texts).iter().map(|(_, t)| *t).collect();
    let count_micros = started.elapsed().as_secs_f64() * 1e6 / tokens.len().max(1) as f64;
    let mean_tokens = tokens.iter().sum::<usize>() as f64 / tokens.len().max(1) as f64;
    let pipeline_rate = report.chunks as f64 / report.elapsed_seconds;
    let grpc_rate = grpc.chunks as f64 / grpc.elapsed_seconds;
    let texts_file = bench.dir("real-texts.json");
    std::fs::write(&texts_file, serde_json::to_vec(&texts)?)?;

    let rate = |seconds: f64| texts.len() as f64 / seconds;
    let mut by_count = Vec::new();
    for batch in [8, 16, 32] {
        let (seconds, rss) =
            bare_model_run(&bench.model, &texts_file, Batching { max_texts: batch, max_tokens: usize::MAX })?;
        by_count.push((batch, seconds, rss));
    }
    let &(best_batch, best_seconds, _) = by_count.iter().min_by(|a, b| a.1.total_cmp(&b.1)).context("no bare run")?;
    let ratio = pipeline_rate / rate(best_seconds);
    let grpc_ratio = grpc_rate / rate(best_seconds);
    let mut by_tokens = Vec::new();
    // At most as many texts per call as the pipeline's default: the row at its default budget
    // is the pipeline's own batching.
    for budget in [256, 384, 512, 768, 1024, 1536, 2048, 4096, 8192] {
        let (seconds, rss) = bare_model_run(
            &bench.model,
            &texts_file,
            Batching { max_texts: bench.batching.max_texts, max_tokens: budget },
        )?;
        by_tokens.push((budget, seconds, rss));
    }
    let binary_data = bench.dir("real-binary");
    let (code, binary_seconds, binary_rss, binary_report) =
        measured_run(&[docs.as_os_str(), "--data-dir".as_ref(), binary_data.as_os_str()])?;
    let load_after = load_average();

    println!(
        "\n6. real documents (files {files}; {bytes} bytes; {} chunks, {} distinct, {mean_tokens:.0} tokens on average)",
        report.chunks + report.cache_hits,
        texts.len(),
    );
    for failed in &report.failed {
        println!("   failed: {} ({})", failed.path, failed.reason);
    }
    println!("   load average before {load_before}, after {load_after}");
    println!("   {:<44} {:>8} {:>9} {:>9}", "measure", "seconds", "chunks/s", "peak MiB");
    let default = bench.batching;
    println!(
        "   {:<44} {:>8.2} {:>9.2} {:>9}",
        format!("pipeline, embedded ({} tokens, <= {} texts)", default.max_tokens, default.max_texts),
        report.elapsed_seconds,
        pipeline_rate,
        "-"
    );
    println!("   {:<44} {:>8.2} {:>9.2} {:>9}", "pipeline, gRPC test server", grpc.elapsed_seconds, grpc_rate, "-");
    for (batch, seconds, rss) in &by_count {
        println!(
            "   {:<44} {seconds:>8.2} {:>9.2} {rss:>9.0}",
            format!("bare model, batches of {batch} texts"),
            rate(*seconds)
        );
    }
    for (budget, seconds, rss) in &by_tokens {
        println!(
            "   {:<44} {seconds:>8.2} {:>9.2} {rss:>9.0}",
            format!("bare model, {budget} padded tokens per call"),
            rate(*seconds)
        );
    }
    println!("   ratio pipeline / best bare batch ({best_batch}): embedded {ratio:.3}, gRPC {grpc_ratio:.3} (target >= 0.90)");
    // The pipeline's overhead alone: against the bare model with the same batching.
    let same =
        by_tokens.iter().find(|(budget, ..)| *budget == default.max_tokens).map(|(_, s, _)| pipeline_rate / rate(*s));
    if let Some(same) = same {
        println!("   ratio pipeline / bare model at the pipeline's batching: {same:.3}");
    }
    println!(
        "   the binary on the same tree (whole process): exit {code}, {binary_seconds:.1} s, {} chunks, peak RSS {binary_rss:.0} MiB (target < 512)",
        binary_report["chunks"]
    );
    println!(
        "   counting a chunk's tokens: {count_micros:.0} µs = {:.2}% of the best bare model's time per chunk",
        count_micros / 1e4 * rate(best_seconds)
    );
    println!("   time per stage, seconds of work summed over its threads (embedded; gRPC):");
    let stages = |r: &JobReport| serde_json::to_value(&r.stage_seconds).unwrap_or_default();
    let (embedded_stages, grpc_stages) = (stages(&report), stages(&grpc));
    if let Some(fields) = embedded_stages.as_object() {
        for (stage, seconds) in fields {
            println!(
                "     {stage:<8} {:>8.3} {:>8.3}",
                seconds.as_f64().unwrap_or(f64::NAN),
                grpc_stages[stage].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
    let rows = |runs: &[(usize, f64, f64)], key: &str| -> Vec<serde_json::Value> {
        runs.iter()
            .map(|(n, seconds, rss)| json!({ key: n, "seconds": seconds, "chunks_per_second": rate(*seconds), "peak_rss_mib": rss }))
            .collect()
    };
    Ok(json!({
        "inputs": {
            "files": files, "bytes": bytes, "chunks": report.chunks + report.cache_hits, "distinct_chunks": texts.len(),
            "mean_tokens": mean_tokens, "token_count_micros_per_chunk": count_micros, "failed_files": report.failed, "threads": bench.threads,
            "embed_batch_size": default.max_texts, "embed_batch_tokens": default.max_tokens,
            "load_average_before": load_before, "load_average_after": load_after,
        },
        "pipeline_embedded": { "seconds": report.elapsed_seconds, "chunks_per_second": pipeline_rate, "stage_seconds": embedded_stages },
        "pipeline_grpc": { "seconds": grpc.elapsed_seconds, "chunks_per_second": grpc_rate, "stage_seconds": grpc_stages, "ratio": grpc_ratio },
        "bare_model_by_texts": rows(&by_count, "batch"),
        "bare_model_best": { "batch": best_batch, "seconds": best_seconds, "chunks_per_second": rate(best_seconds) },
        "ratio": ratio,
        "target": 0.90,
        "ratio_same_batching": same,
        "bare_model_by_tokens": rows(&by_tokens, "tokens"),
        "binary": { "exit": code, "seconds": binary_seconds, "peak_rss_mib": binary_rss, "target_mib": 512 },
    }))
}

/// The distinct chunk texts a job embedded, read back from its parquet copy under `data`:
/// the embedding cache embeds a repeated text once, so the model's work is these.
fn embedded_texts(data: &Path, model: &ModelInfo, report: &JobReport) -> Result<Vec<String>> {
    let copy = ParquetCopy::new(data, "bench", model.dim);
    let mut points = Vec::new();
    for file in copy.files()? {
        points.extend(ingest::parquet_copy::read_points(&file, model.dim)?);
    }
    let mut seen = std::collections::HashSet::new();
    let texts: Vec<String> =
        points.iter().filter(|p| seen.insert(&p.payload.content_hash)).map(|p| p.payload.content.clone()).collect();
    anyhow::ensure!(report.chunks as usize == texts.len(), "the job embedded other chunks than its parquet copy holds");
    Ok(texts)
}

/// Every installed model on the real-document corpus: the pipeline end to end (embedded
/// engine, model loaded before the clock starts) against the bare model on the same chunk
/// texts, at the pipeline's batching and in batches of 16 texts; the ratio is over the
/// faster of the two (target >= 0.90 for every model).
fn per_model(bench: &Bench) -> Result<serde_json::Value> {
    let docs = bench.dir("models-real");
    let (files, bytes) = gather_real_corpus(&docs)?;
    println!("\n10. every installed model on the real documents (files {files}; {bytes} bytes)");
    println!(
        "   {:<28} {:>5} {:>7} {:>11} {:>11} {:>7} {:>9}",
        "model", "dim", "chunks", "pipeline/s", "bare/s", "ratio", "peak MiB"
    );
    let mut rows = Vec::new();
    for entry in ingest::model::installed()? {
        let ingest::model::Installed::Model(model) = entry else { continue };
        let data = bench.dir(&format!("models-data-{}", model.name));
        let report = bench.job_with(&model, &docs, &data, None, true)?;
        let texts = embedded_texts(&data, &model, &report)?;
        let texts_file = bench.dir(&format!("models-texts-{}.json", model.name));
        std::fs::write(&texts_file, serde_json::to_vec(&texts)?)?;
        let pipeline_rate = report.chunks as f64 / report.elapsed_seconds;
        let mut bare = Vec::new();
        for batching in [bench.batching, Batching { max_texts: 16, max_tokens: usize::MAX }] {
            let (seconds, rss) = bare_model_run(&model, &texts_file, batching)?;
            bare.push((texts.len() as f64 / seconds, rss));
        }
        let (bare_rate, bare_rss) = bare.iter().copied().fold((0.0, 0.0), |a, b| if b.0 > a.0 { b } else { a });
        let ratio = pipeline_rate / bare_rate;
        println!(
            "   {:<28} {:>5} {:>7} {:>11.2} {:>11.2} {:>7.3} {:>9.0}",
            model.name, model.dim, report.chunks, pipeline_rate, bare_rate, ratio, bare_rss
        );
        rows.push(json!({
            "model": model.id, "name": model.name, "dim": model.dim, "chunks": report.chunks,
            "pipeline_chunks_per_second": pipeline_rate, "bare_chunks_per_second": bare_rate,
            "bare_peak_rss_mib": bare_rss, "ratio": ratio, "target": 0.90, "failed_files": report.failed.len(),
        }));
    }
    Ok(json!({ "files": files, "bytes": bytes, "models": rows }))
}

/// Items a worker claims per statement (the worker's own batch).
const CLAIM_BATCH: usize = 4;

/// A fresh PostgreSQL database for the length of `work`, which gets its URL.
/// A database of its own on the benchmarks' PostgreSQL.
struct FreshDatabase {
    url: String,
    name: String,
    admin: String,
}

/// Creates a database of its own on the PostgreSQL at `DATABASE_URL_TEST` (else the local one).
fn fresh_database(bench: &Bench) -> Result<FreshDatabase> {
    let admin =
        std::env::var("DATABASE_URL_TEST").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("ingest_bench_{}", uuid::Uuid::new_v4().simple());
    let base = admin.rsplit_once('/').context("DATABASE_URL_TEST has no database name")?.0.to_string();
    admin_sql(bench, &admin, &format!("CREATE DATABASE {name}"))?;
    Ok(FreshDatabase { url: format!("{base}/{name}"), name, admin })
}

fn drop_database(bench: &Bench, database: FreshDatabase) -> Result<()> {
    admin_sql(bench, &database.admin, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", database.name))
}

fn admin_sql(bench: &Bench, admin: &str, sql: &str) -> Result<()> {
    bench.runtime.block_on(async {
        sqlx::any::install_default_drivers();
        let mut connection = <sqlx::AnyConnection as sqlx::Connection>::connect(admin)
            .await
            .with_context(|| format!("PostgreSQL at {admin} is not reachable; run scripts/ensure_postgres.sh"))?;
        sqlx::query(sql).execute(&mut connection).await?;
        anyhow::Ok(())
    })
}

fn with_fresh_database<T>(bench: &Bench, work: impl AsyncFnOnce(&str) -> Result<T>) -> Result<T> {
    let database = fresh_database(bench)?;
    let result = bench.runtime.block_on(work(&database.url));
    drop_database(bench, database)?;
    result
}

/// Section 7: the work queue's claims, then real documents through workers.
fn workers(bench: &Bench) -> Result<serde_json::Value> {
    let items = if bench.quick { 4_000 } else { 20_000 };
    println!("\n7. PostgreSQL work queue: {items} items, claims of {CLAIM_BATCH}, each completed by a fenced write");
    println!(
        "{:>9} {:>12} {:>12} {:>14} {:>14} {:>16}",
        "claimers", "claims/s", "items/s", "claim p50 ms", "claim p95 ms", "complete p50 ms"
    );
    let rounds = with_fresh_database(bench, async |url| claim_rounds(url, items).await)?;

    // Real documents: one process, then a planner with 2 local workers (1 model thread and 1
    // extractor each), each on a fresh catalog (the embedding cache would otherwise serve the
    // second) and a fresh collection of the gRPC test server.
    let docs = bench.dir("workers-real");
    gather_real_corpus(&docs)?;
    let server = qdrant_server::TestQdrant::start();
    let server_url = server.url();
    let run = |collection: &str, extra: &[&str]| {
        with_fresh_database(bench, async |url| {
            let data = bench.dir(&format!("workers-{collection}"));
            let args: Vec<&std::ffi::OsStr> = [docs.as_os_str(), "--data-dir".as_ref(), data.as_os_str()]
                .into_iter()
                .chain(
                    ["--database-url", url, "--qdrant-url", &server_url, "--collection", collection]
                        .map(|a| a.as_ref()),
                )
                .chain(extra.iter().map(|a| a.as_ref()))
                .collect();
            measured_run(&args)
        })
    };
    let (single_code, single_seconds, _, single) = run("single", &[])?;
    let (queued_code, queued_seconds, _, queued) = run("queued", &["--workers", "2"])?;
    // Exit code 2: some real files fail (a corrupt PDF among them), the same in both runs.
    anyhow::ensure!(single_code == queued_code && single_code != 1, "the runs failed: {single:#} {queued:#}");
    let count = |report: &serde_json::Value, fields: &[&str]| -> u64 {
        fields
            .iter()
            .map(|f| report[f].as_array().map_or_else(|| report[f].as_u64().unwrap_or(0), |a| a.len() as u64))
            .sum()
    };
    // A worker records files that are not text as files without text.
    for (fields, queued_fields) in [
        (&["points"][..], &["points"][..]),
        (&["added"], &["added"]),
        (&["failed"], &["failed"]),
        (&["no_text", "not_text"], &["no_text"]),
    ] {
        anyhow::ensure!(
            count(&single, fields) == count(&queued, queued_fields),
            "the two runs differ in {fields:?}: {single:#} {queued:#}"
        );
    }
    let chunks = single["chunks"].as_f64().unwrap_or(0.0) + single["cache_hits"].as_f64().unwrap_or(0.0);
    let files = single["added"].as_f64().unwrap_or(0.0);
    println!(
        "   real documents, {files} files, {chunks} chunks: one process {single_seconds:.1} s ({:.1} chunks/s); \
         planner + 2 workers {queued_seconds:.1} s ({:.1} chunks/s): {:.2} of one process on the same 2 cores",
        chunks / single_seconds,
        chunks / queued_seconds,
        single_seconds / queued_seconds
    );
    Ok(json!({
        "claims": { "items": items, "claim_batch": CLAIM_BATCH, "rounds": rounds },
        "real_documents": {
            "files": files, "chunks": chunks,
            "one_process": { "seconds": single_seconds, "chunks_per_second": chunks / single_seconds },
            "planner_and_two_workers": { "seconds": queued_seconds, "chunks_per_second": chunks / queued_seconds },
            "ratio": single_seconds / queued_seconds,
            "chunks_per_file": chunks / files.max(1.0),
        },
    }))
}

async fn claim_rounds(url: &str, items: usize) -> Result<Vec<serde_json::Value>> {
    let catalog = Catalog::connect(url).await?.collection("bench");
    let mut rows = Vec::new();
    for claimers in [1usize, 4, 16] {
        let job_id = catalog
            .create_job(&NewJob {
                name: "bench".into(),
                directory_path: "/bench".into(),
                collection: "bench".into(),
                model_name: "bench".into(),
                vector_dim: 384,
                chunk_size: 200,
                chunk_overlap: 32,
                batch_size: 4000,
            })
            .await?;
        let work: Vec<WorkItem> = (0..items)
            .map(|i| WorkItem {
                path: format!("/bench/c{claimers}/f{i:06}.txt"),
                extension: "txt".into(),
                kind: WorkKind::Embed,
            })
            .collect();
        catalog.enqueue(&job_id, &work).await?;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for n in 0..claimers {
            let (url, job_id) = (url.to_string(), job_id.clone());
            tasks.push(tokio::spawn(async move {
                let fence = Arc::new(Fence::new(format!("bench-{n}")));
                let worker = Catalog::connect(&url).await?.collection("bench").fenced(fence);
                let (mut claim_ms, mut complete_ms) = (Vec::new(), Vec::new());
                loop {
                    let asked = Instant::now();
                    let claims = worker.claim(&job_id, CLAIM_BATCH, Duration::from_secs(60), 3).await?;
                    claim_ms.push(asked.elapsed().as_secs_f64() * 1000.0);
                    if claims.is_empty() {
                        return anyhow::Ok((claim_ms, complete_ms));
                    }
                    let done: Vec<Completion> =
                        claims.iter().map(|c| Completion { path: c.path.clone(), chunks: 1, vectors: 1 }).collect();
                    let completing = Instant::now();
                    worker.mark_completed(&job_id, &done).await?;
                    complete_ms.push(completing.elapsed().as_secs_f64() * 1000.0);
                }
            }));
        }
        let (mut claim_ms, mut complete_ms) = (Vec::new(), Vec::new());
        for task in tasks {
            let (claims, completions) = task.await??;
            claim_ms.extend(claims);
            complete_ms.extend(completions);
        }
        let seconds = started.elapsed().as_secs_f64();
        let done = catalog.queue_depth(&job_id).await?.done as usize;
        anyhow::ensure!(done == items, "{done} of {items} items done");
        let quantile = |values: &mut Vec<f64>, q: f64| {
            values.sort_by(f64::total_cmp);
            values[((values.len() - 1) as f64 * q).round() as usize]
        };
        let claims_per_second = claim_ms.len() as f64 / seconds;
        let (p50, p95, complete_p50) =
            (quantile(&mut claim_ms, 0.5), quantile(&mut claim_ms, 0.95), quantile(&mut complete_ms, 0.5));
        println!(
            "{claimers:>9} {claims_per_second:>12.0} {:>12.0} {p50:>14.2} {p95:>14.2} {complete_p50:>14.2}",
            items as f64 / seconds
        );
        rows.push(json!({
            "claimers": claimers, "seconds": seconds, "claims_per_second": claims_per_second,
            "items_per_second": items as f64 / seconds, "claim_p50_ms": p50, "claim_p95_ms": p95,
            "complete_p50_ms": complete_p50,
        }));
    }
    Ok(rows)
}

/// The chunk stage on one long line against the same words in 80-column lines, in MB/s, and
/// the binary's peak RSS on a 100 MB text with no newline (which fails at its time limit)
/// beside a small file to embed.
fn long_lines(bench: &Bench) -> Result<serde_json::Value> {
    println!("\n8. long lines: chunk-stage throughput, one line against many");
    let tokenizer = bench.model.tokenizer()?;
    let chunker = Chunker::new(&tokenizer, 200, 32, bench.model.max_sequence)?;
    let sizes: &[usize] = if bench.quick { &[100_000, 1_000_000] } else { &[100_000, 1_000_000, 10_000_000] };
    let mut rows = Vec::new();
    for &size in sizes {
        let one_line = Words(size as u64).sentence_text(size / 7);
        let mut many_lines = one_line.clone();
        // The same bytes, a space turned into a newline about every 80 columns.
        let mut column = 0;
        // SAFETY: only ASCII spaces become ASCII newlines, so the text stays UTF-8.
        for byte in unsafe { many_lines.as_bytes_mut() } {
            column += 1;
            if *byte == b' ' && column >= 80 {
                *byte = b'\n';
                column = 0;
            }
        }
        let measure = |text: &str| {
            let started = Instant::now();
            let chunks = chunker.chunk(&ingest::extract::Document::plain(text.to_string())).len();
            (text.len() as f64 / 1e6 / started.elapsed().as_secs_f64(), chunks)
        };
        let (one_line_mbps, one_line_chunks) = measure(&one_line);
        let (many_lines_mbps, many_lines_chunks) = measure(&many_lines);
        println!(
            "   {:>5.1} MB: one line {one_line_mbps:.2} MB/s ({one_line_chunks} chunks), 80-column lines {many_lines_mbps:.2} MB/s ({many_lines_chunks} chunks), ratio {:.2} (target >= 0.5)",
            one_line.len() as f64 / 1e6,
            one_line_mbps / many_lines_mbps
        );
        rows.push(json!({
            "bytes": one_line.len(), "one_line_mb_per_s": one_line_mbps, "many_lines_mb_per_s": many_lines_mbps,
            "one_line_chunks": one_line_chunks, "many_lines_chunks": many_lines_chunks,
            "ratio": one_line_mbps / many_lines_mbps,
        }));
    }
    let docs = bench.dir("long-line");
    std::fs::create_dir_all(&docs)?;
    let size = if bench.quick { 20_000_000 } else { 100_000_000 };
    let mut text = Words(size as u64).sentence_text(size / 6);
    text.truncate(size);
    std::fs::write(docs.join("one-line"), &text)?;
    drop(text);
    // A file to embed beside it, so that the figure includes the model's own memory.
    std::fs::write(docs.join("notes.txt"), Words(3).sentence_text(400))?;
    let data = bench.dir("long-line-data");
    let args: Vec<&std::ffi::OsStr> = vec![docs.as_os_str(), "--data-dir".as_ref(), data.as_os_str()];
    let (code, seconds, rss, report) = measured_run(&args)?;
    let reason = report["failed"][0]["reason"].as_str().unwrap_or("-").to_string();
    println!(
        "   one {} MB line, no newline: exit {code}, {seconds:.1} s, peak RSS {rss:.0} MiB (target < 512): {reason}",
        size / 1_000_000
    );
    Ok(json!({
        "chunking": rows,
        "one_line_file": { "bytes": size, "exit": code, "seconds": seconds, "peak_rss_mib": rss, "reason": reason },
    }))
}

/// One section of the harness: its figures, as JSON.
type Section = fn(&Bench) -> Result<serde_json::Value>;

fn main() -> Result<()> {
    ingest::embed::return_freed_memory_promptly();
    let argv: Vec<String> = std::env::args().collect();
    if let Some(at) = argv.iter().position(|a| a == BARE_CHILD) {
        return bare_child(&argv[at + 1..]);
    }
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let quick = std::env::args().any(|a| a == "--quick");
    // (the name that selects a section on the command line, its key in the JSON, the section)
    let sections: [(&str, &str, Section); 13] = [
        ("efficiency", "pipeline_efficiency", pipeline_efficiency),
        ("rerun", "no_change_rerun", no_change_rerun),
        ("restore", "restore", restore_ratio),
        ("upload", "upload_batches", upload_batches),
        ("memory", "peak_memory", peak_memory),
        ("real", "real_documents", real_documents),
        ("workers", "workers", workers),
        ("lines", "long_lines", long_lines),
        ("retrieval", "retrieval", retrieval::retrieval),
        ("models", "per_model", per_model),
        ("scale", "scale", scale::scale),
        ("serve", "search_service", serve::serve),
        ("ocr", "ocr", ocr::ocr),
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
        batching: Batching::default(),
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
