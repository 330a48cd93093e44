//! Pipeline efficiency: end-to-end chunks per second of a real job (scan, hash, extract,
//! chunk, embed, catalog, parquet, embedded Qdrant) divided by the bare model's chunks per
//! second on the same chunk texts, batch size and threads, measured in the same process.
//!
//! Run: `cargo bench --bench pipeline` (add `-- --quick` for a smaller corpus). Prints a
//! table and writes `target/bench/results.json`.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ingest::catalog::Catalog;
use ingest::chunk::Chunker;
use ingest::embed::{Embedder, ModelInfo};
use ingest::extract::Document;
use ingest::parquet_copy::ParquetCopy;
use ingest::pipeline::{run_job, JobSettings};
use ingest::scan::ScanOptions;
use ingest::store::embedded::EmbeddedIndex;

const WORDS: &[&str] = &[
    "river", "mountain", "engine", "protocol", "harvest", "galaxy", "ledger", "violin", "glacier", "circuit",
    "orchard", "theorem", "compass", "lantern", "harbor", "quartz", "meadow", "signal", "canyon", "archive",
];

/// A deterministic pseudo-random corpus of `files` text files of `words` words each.
fn make_corpus(root: &Path, files: usize, words: usize, seed: u64) -> u64 {
    std::fs::create_dir_all(root).unwrap();
    let mut state = seed;
    let mut bytes = 0;
    for f in 0..files {
        let mut text = String::new();
        for w in 0..words {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            text.push_str(WORDS[(state >> 33) as usize % WORDS.len()]);
            text.push_str(if w % 12 == 11 { ". " } else { " " });
        }
        bytes += text.len() as u64;
        std::fs::write(root.join(format!("doc-{f:05}.txt")), text).unwrap();
    }
    bytes
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let (files, words) = if quick { (40, 300) } else { (120, 600) };
    let (batch, threads) = (32, std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2));
    let temp = tempfile::tempdir()?;
    let docs = temp.path().join("docs");
    let bytes = make_corpus(&docs, files, words, 42);

    let model = ModelInfo::load(None)?;
    let chunker = Chunker::new(&model.tokenizer, 200, 32, model.max_sequence)?;
    let mut texts = Vec::new();
    for entry in std::fs::read_dir(&docs)? {
        let text = std::fs::read_to_string(entry?.path())?;
        texts.extend(chunker.chunk(&Document { text, is_markdown: false }).into_iter().map(|c| c.content));
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();

    let mut bare = Embedder::new(model.clone(), batch, threads)?;
    bare.embed(&refs[..refs.len().min(batch)])?; // warm-up
    let started = Instant::now();
    bare.embed(&refs)?;
    let bare_seconds = started.elapsed().as_secs_f64();
    drop(bare);

    let runtime = tokio::runtime::Runtime::new()?;
    let data = temp.path().join("data");
    std::fs::create_dir_all(&data)?;
    let report = runtime.block_on(async {
        let catalog = Catalog::connect(&Catalog::sqlite_url(&data)).await?;
        let index = Arc::new(EmbeddedIndex::open(&data, "bench")?);
        let parquet = ParquetCopy::new(&data, "bench", model.dim);
        let embedder = Embedder::new(model.clone(), batch, threads)?;
        let settings = JobSettings {
            root: std::fs::canonicalize(&docs)?,
            collection: "bench".into(),
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
        };
        run_job(&settings, &catalog, index, &parquet, embedder, Arc::new(AtomicBool::new(false)), true).await
    })?;
    assert_eq!(report.chunks as usize, texts.len(), "the job embedded the same chunks");

    let bare_rate = texts.len() as f64 / bare_seconds;
    let pipeline_rate = report.chunks as f64 / report.elapsed_seconds;
    let ratio = pipeline_rate / bare_rate;
    println!("{:<22} {:>8} {:>10} {:>8} {:>10} {:>12}", "measure", "files", "bytes", "chunks", "seconds", "chunks/s");
    println!(
        "{:<22} {:>8} {:>10} {:>8} {:>10.2} {:>12.2}",
        "bare model",
        "-",
        "-",
        texts.len(),
        bare_seconds,
        bare_rate
    );
    println!(
        "{:<22} {:>8} {:>10} {:>8} {:>10.2} {:>12.2}",
        "pipeline (embedded)", files, bytes, report.chunks, report.elapsed_seconds, pipeline_rate
    );
    println!("pipeline efficiency: {ratio:.3} (target >= 0.90)");

    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out)?;
    let results = serde_json::json!({
        "machine": { "cores": threads },
        "pipeline_efficiency": {
            "inputs": { "files": files, "bytes": bytes, "chunks": texts.len(), "embed_batch_size": batch, "threads": threads },
            "bare_model": { "seconds": bare_seconds, "chunks_per_second": bare_rate },
            "pipeline_embedded": { "seconds": report.elapsed_seconds, "chunks_per_second": pipeline_rate },
            "ratio": ratio,
            "target": 0.90,
        }
    });
    std::fs::write(out.join("results.json"), serde_json::to_string_pretty(&results)?)?;
    println!("wrote {}", out.join("results.json").display());
    Ok(())
}
