//! # Settings
//!
//! In: the options a command was given ([`CommonOptions`], and a run's [`RunOptions`] or a
//! worker's [`WorkerOptions`]: flags, or the environment variables that stand for them), the
//! environment variables no flag gives (`QDRANT_API_KEY`, `INGEST_OUTAGE_LIMIT`), and an
//! optional TOML file ([`FileConfig`]). Out: validated [`Settings`] shared by every command,
//! and from them a run's [`JobSettings`], a worker's [`WorkerSettings`] and the command that
//! starts a local worker. Precedence: flag, then environment, then the TOML file, then the
//! built-in default. Resolved once; secrets are never printed (`Debug` redacts them).

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;

use crate::catalog::JobRow;
use crate::embed::Batching;
use crate::extract::ocr::{OcrMode, OcrSettings};
use crate::extract::{ExtractorSettings, OcrRequest};
use crate::pipeline::worker::WorkerSettings;
use crate::pipeline::JobSettings;
use crate::retry::RetryPolicy;
use crate::scan::ScanOptions;
use crate::store::{CollectionLayout, StoreLocation};

/// What was given, by flag or environment, for the settings every command shares; `None`
/// leaves a setting to the TOML file or the default. No `Debug`: the servers' URLs are as
/// given, passwords included ([`Settings`] redacts them).
#[derive(Clone, Default)]
pub struct CommonOptions {
    pub data_dir: Option<PathBuf>,
    pub collection: Option<String>,
    pub database_url: Option<String>,
    pub qdrant_url: Option<String>,
    /// Seconds a server may stay unreachable mid-job.
    pub outage_limit: Option<f64>,
    pub model_dir: Option<PathBuf>,
    pub parquet_dir: Option<PathBuf>,
    pub shards: Option<u32>,
    pub replication_factor: Option<u32>,
    pub write_consistency_factor: Option<u32>,
    /// The generation to work on, for the commands that work on one; `None` for the live one.
    pub generation: Option<i64>,
    /// The TOML file with defaults.
    pub config: Option<PathBuf>,
    pub json: bool,
    pub quiet: bool,
}

/// What was given for a run over a directory; `None` and empty lists leave a setting to the
/// TOML file or the default.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The directory to index.
    pub dir: Option<PathBuf>,
    pub extensions: Vec<String>,
    pub sniff_unknown_extensions: bool,
    /// Globs of paths to skip, relative to the directory.
    pub ignore: Vec<String>,
    pub follow_external_links: bool,
    pub chunk_size: Option<usize>,
    pub chunk_overlap: Option<usize>,
    /// Re-embed every file, changed or not.
    pub full: bool,
    pub dry_run: bool,
    /// Runs a file may fail in a row before it is no longer retried until it changes.
    pub max_retries: Option<i64>,
    pub tuning: Tuning,
    /// Queue the work for workers, starting this many local ones.
    pub workers: Option<usize>,
    /// With `workers`: do not wait for the queued job to finish.
    pub no_wait: bool,
    pub allow_mass_delete: bool,
}

/// How this process embeds and writes: a run's and a worker's own, never recorded on the job.
#[derive(Debug, Clone, Default)]
pub struct Tuning {
    pub embed_batch_size: Option<usize>,
    /// Padded tokens per model call.
    pub embed_batch_tokens: Option<usize>,
    pub upload_batch_size: Option<usize>,
    pub upload_parallelism: Option<usize>,
    /// In MiB.
    pub max_file_size: Option<u64>,
    /// Model threads.
    pub threads: Option<usize>,
    /// In seconds.
    pub commit_interval: Option<f64>,
    /// In seconds.
    pub file_timeout: Option<f64>,
    pub max_file_chunks: Option<usize>,
    /// Address space of each extractor process, in MiB.
    pub extract_memory: Option<u64>,
    /// Extractor processes.
    pub extractors: Option<usize>,
    /// Whether scanned pages and images are read by OCR.
    pub ocr: Option<OcrMode>,
    /// Tesseract's languages, `+`-separated.
    pub ocr_languages: Option<String>,
    /// Pages one file may need read by OCR.
    pub max_ocr_pages: Option<u32>,
}

/// What was given for `ingest worker`.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Exit once no queued job of the collection has work left.
    pub once: bool,
    /// In seconds.
    pub lease: Option<f64>,
    /// Times an item's lease may run out before it is parked.
    pub max_retries: Option<i64>,
    pub tuning: Tuning,
    /// Where to serve the worker's Prometheus metrics, if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// Defaults read from a TOML file; every key is optional. No `Debug`: the URLs may carry
/// passwords ([`Settings`] redacts them).
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub collection: Option<String>,
    pub database_url: Option<String>,
    pub qdrant_url: Option<String>,
    pub outage_limit: Option<f64>,
    pub model_dir: Option<PathBuf>,
    pub chunk_size: Option<usize>,
    pub chunk_overlap: Option<usize>,
    pub embed_batch_size: Option<usize>,
    pub embed_batch_tokens: Option<usize>,
    pub upload_batch_size: Option<usize>,
    pub upload_parallelism: Option<usize>,
    pub max_file_size: Option<u64>,
    pub threads: Option<usize>,
    pub commit_interval: Option<f64>,
    pub max_retries: Option<i64>,
    #[serde(alias = "extract_timeout")]
    pub file_timeout: Option<f64>,
    pub max_file_chunks: Option<usize>,
    pub extract_memory: Option<u64>,
    #[serde(alias = "extract_workers")]
    pub extractors: Option<usize>,
    pub ocr: Option<OcrMode>,
    pub ocr_languages: Option<String>,
    pub max_ocr_pages: Option<u32>,
    pub extensions: Option<Vec<String>>,
    pub sniff_unknown_extensions: Option<bool>,
    pub ignore: Option<Vec<String>>,
}

/// Settings shared by every command.
#[derive(Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub collection: String,
    pub database_url: Option<String>,
    pub qdrant_url: Option<String>,
    pub qdrant_api_key: Option<String>,
    /// Shards, replication and write consistency of a collection created on a Qdrant server.
    pub layout: CollectionLayout,
    /// Where parquet copies live (per collection beneath); `None` for `<data dir>/parquet`.
    pub parquet_root: Option<PathBuf>,
    /// Backoff and outage limit for the servers.
    pub retry: RetryPolicy,
    pub model_dir: Option<PathBuf>,
    /// The generation a command works on (`--generation N`); `None` for the live one.
    pub generation: Option<i64>,
    pub json: bool,
    pub quiet: bool,
    pub file: FileConfig,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("data_dir", &self.data_dir)
            .field("collection", &self.collection)
            .field("database_url", &self.database_url.as_deref().map(crate::redact::redact_url))
            .field("qdrant_url", &self.qdrant_url.as_deref().map(crate::redact::redact_url))
            .field("qdrant_api_key", &self.qdrant_api_key.as_ref().map(|_| "***"))
            .field("model_dir", &self.model_dir)
            .finish()
    }
}

/// An environment variable that no flag stands for: `QDRANT_API_KEY` has no flag, so that the
/// key never shows in a process listing; `INGEST_OUTAGE_LIMIT` is parsed here, with its own
/// message, because every process parses the command line, extractor processes and local
/// workers included, and those inherit the environment even where a flag overrides it.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Settings {
    pub fn resolve(given: &CommonOptions) -> Result<Self> {
        let file = match &given.config {
            Some(path) => load_config(path)?,
            None => FileConfig::default(),
        };
        let collection = given.collection.clone().or_else(|| file.collection.clone()).unwrap_or("documents".into());
        if collection.is_empty() || !collection.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)) {
            bail!("--collection must be letters, digits, '-' or '_' (got {collection:?})");
        }
        if is_generation_name(&collection) {
            bail!(
                "--collection cannot end in -g and a number (got {collection:?}): that is how the generations of a \
                 collection are named, so choose another name"
            );
        }
        let outage_limit = match given.outage_limit {
            Some(limit) => limit,
            None => match env("INGEST_OUTAGE_LIMIT") {
                Some(text) => text.parse().map_err(|_| anyhow!("INGEST_OUTAGE_LIMIT must be a number of seconds"))?,
                None => file.outage_limit.unwrap_or(300.0),
            },
        };
        let outage_limit = in_range("outage-limit", outage_limit, 0.0..=WEEK_SECONDS)?;
        let optional = |flag: &str, value: Option<u32>, range: RangeInclusive<u32>| {
            value.map(|value| in_range(flag, value, range)).transpose()
        };
        let layout = CollectionLayout {
            shards: optional("shards", given.shards, 1..=MAX_SHARDS)?,
            replication_factor: optional("replication-factor", given.replication_factor, 1..=MAX_REPLICAS)?,
            write_consistency_factor: optional(
                "write-consistency-factor",
                given.write_consistency_factor,
                1..=MAX_REPLICAS,
            )?,
        };
        let generation = given.generation.map(|n| in_range("generation", n, 1..=i64::from(i32::MAX))).transpose()?;
        Ok(Self {
            data_dir: given
                .data_dir
                .clone()
                .or_else(|| file.data_dir.clone())
                .unwrap_or_else(|| PathBuf::from(".ingest")),
            collection,
            database_url: given.database_url.clone().or_else(|| file.database_url.clone()),
            qdrant_url: given.qdrant_url.clone().or_else(|| file.qdrant_url.clone()),
            qdrant_api_key: env("QDRANT_API_KEY"),
            layout,
            parquet_root: given.parquet_dir.clone(),
            retry: RetryPolicy { outage_limit: Duration::from_secs_f64(outage_limit), ..RetryPolicy::default() },
            model_dir: given.model_dir.clone().or_else(|| file.model_dir.clone()),
            generation,
            json: given.json,
            quiet: given.quiet,
            file,
        })
    }

    /// The settings of a run over `args.dir`. `extractor_program` is the `ingest` binary, which
    /// the run starts as its extractor processes.
    pub fn job(&self, args: &RunOptions, extractor_program: PathBuf) -> Result<JobSettings> {
        let Some(dir) = &args.dir else {
            bail!("no directory given; usage: ingest DIR (see ingest --help)");
        };
        if !dir.is_dir() {
            bail!("{} is not a directory; pass the directory to index", dir.display());
        }
        let root = std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
        let f = &self.file;
        let extensions =
            if args.extensions.is_empty() { f.extensions.clone().unwrap_or_default() } else { args.extensions.clone() };
        let ignore = if args.ignore.is_empty() { f.ignore.clone().unwrap_or_default() } else { args.ignore.clone() };
        let tuning = self.tuning(&args.tuning)?;
        let ocr = self.ocr(&args.tuning)?;
        let max_retries = in_range("max-retries", args.max_retries.or(f.max_retries).unwrap_or(3), 1..=MAX_RETRIES)?;
        if let Some(workers) = args.workers {
            in_range("workers", workers, 0..=MAX_PROCESSES)?;
        }
        let chunk_size = in_range("chunk-size", args.chunk_size.or(f.chunk_size).unwrap_or(200), 1..=MAX_CHUNK_TOKENS)?;
        let chunk_overlap =
            in_range("chunk-overlap", args.chunk_overlap.or(f.chunk_overlap).unwrap_or(32), 0..=MAX_CHUNK_TOKENS)?;
        Ok(JobSettings {
            root,
            collection: self.collection.clone(),
            scan: ScanOptions::new(
                &extensions,
                &ignore,
                args.follow_external_links,
                args.sniff_unknown_extensions || f.sniff_unknown_extensions.unwrap_or(false),
                ocr.reads(),
            )?,
            chunk_size,
            chunk_overlap,
            embed_batching: tuning.embed_batching,
            upload_batch_size: tuning.upload_batch_size,
            upload_parallelism: tuning.upload_parallelism,
            max_file_bytes: tuning.max_file_mib * 1024 * 1024,
            max_file_chunks: tuning.max_file_chunks,
            commit_interval: tuning.commit_interval,
            full: args.full,
            dry_run: args.dry_run,
            max_retries,
            allow_mass_delete: args.allow_mass_delete,
            extraction: tuning.extraction(extractor_program, ocr.request()),
            ocr,
            queued: args.workers.is_some(),
        })
    }

    /// Whether the run's chunk size or overlap was given, by flag or in the TOML file, rather
    /// than left to the live generation's (or the default).
    pub fn chunking_given(&self, args: &RunOptions) -> bool {
        args.chunk_size.or(self.file.chunk_size).is_some() || args.chunk_overlap.or(self.file.chunk_overlap).is_some()
    }

    /// Where the vectors live.
    pub fn store_location(&self) -> StoreLocation<'_> {
        StoreLocation {
            data_dir: &self.data_dir,
            qdrant_url: self.qdrant_url.as_deref(),
            api_key: self.qdrant_api_key.as_deref(),
            layout: self.layout,
            like: None,
        }
    }

    /// Model threads: the flag, the file, else one per core, checked against its range.
    pub fn model_threads(&self, tuning: &Tuning) -> Result<usize> {
        Ok(self.tuning(tuning)?.threads)
    }

    /// The settings of a queued job on this machine: its directory and chunking from its
    /// row, the rest from this worker's `tuning`.
    pub fn worker_job(&self, job: &JobRow, tuning: &Tuning, extractor_program: PathBuf) -> Result<JobSettings> {
        let dir = PathBuf::from(&job.directory_path);
        if !dir.is_dir() {
            bail!(
                "its directory {} is not visible here; workers need the planner's view of the files (a shared path)",
                dir.display()
            );
        }
        let args = RunOptions {
            dir: Some(dir),
            chunk_size: Some(job.chunk_size as usize),
            chunk_overlap: Some(job.chunk_overlap as usize),
            tuning: tuning.clone(),
            ..RunOptions::default()
        };
        self.job(&args, extractor_program)
    }

    /// Workers share a job through PostgreSQL and write to one Qdrant server (or cluster):
    /// `what` needs both.
    pub fn require_servers(&self, what: &str) -> Result<()> {
        if self.database_url.is_none() {
            bail!(
                "{what} shares a job through PostgreSQL; the embedded catalog runs every job in one process, so give --database-url (or DATABASE_URL)"
            );
        }
        if self.qdrant_url.is_none() {
            bail!(
                "{what} needs a Qdrant server all workers write to; the embedded engine lives in one process, so give --qdrant-url (or QDRANT_URL)"
            );
        }
        Ok(())
    }

    /// `ingest worker --once` on this machine with these settings, one of `of` sharing its
    /// cores. The servers' URLs travel in its environment, out of `ps`.
    pub fn local_worker(&self, program: &Path, of: usize) -> std::process::Command {
        let threads = (cores() / of.max(1)).max(1).to_string();
        let mut command = std::process::Command::new(program);
        command
            .args(["worker", "--once", "--quiet", "--threads", &threads, "--extractors", "1"])
            .args(["--collection", &self.collection])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--outage-limit", &self.retry.outage_limit.as_secs_f64().to_string()])
            .env("DATABASE_URL", self.database_url.as_deref().unwrap_or_default())
            .env("QDRANT_URL", self.qdrant_url.as_deref().unwrap_or_default())
            .stdout(std::process::Stdio::null());
        if let Some(dir) = &self.parquet_root {
            command.arg("--parquet-dir").arg(dir);
        }
        if let Some(dir) = &self.model_dir {
            command.arg("--model-dir").arg(dir);
        }
        command
    }

    /// A worker's lease and parking limit; its tuning is checked here too, before it claims
    /// anything.
    pub fn worker(&self, args: &WorkerOptions) -> Result<WorkerSettings> {
        let lease = in_range("lease", args.lease.unwrap_or(60.0), 1.0..=DAY_SECONDS)?;
        let max_attempts =
            in_range("max-retries", args.max_retries.or(self.file.max_retries).unwrap_or(3), 1..=MAX_RETRIES)?;
        let tuning = self.tuning(&args.tuning)?;
        Ok(WorkerSettings {
            lease: Duration::from_secs_f64(lease),
            once: args.once,
            max_attempts,
            threads: tuning.threads,
        })
    }

    /// How this process embeds, writes and extracts: the flags, else the TOML file, else the
    /// defaults, each checked against its range.
    /// A run's OCR: the mode, languages and page cap from the flags or the file (default
    /// `auto`, `eng`, [`DEFAULT_MAX_OCR_PAGES`]), and the engine found on this machine.
    pub fn ocr(&self, given: &Tuning) -> Result<OcrSettings> {
        let f = &self.file;
        let mode = given.ocr.or(f.ocr).unwrap_or_default();
        let languages = given.ocr_languages.clone().or_else(|| f.ocr_languages.clone()).unwrap_or_else(|| "eng".into());
        let max_pages = in_range(
            "max-ocr-pages",
            given.max_ocr_pages.or(f.max_ocr_pages).unwrap_or(DEFAULT_MAX_OCR_PAGES),
            1..=MAX_OCR_PAGES,
        )?;
        OcrSettings::new(mode, languages, max_pages).map_err(anyhow::Error::msg)
    }

    fn tuning(&self, given: &Tuning) -> Result<CheckedTuning> {
        let f = &self.file;
        let defaults = Batching::default();
        let count = |flag: &str, value: Option<usize>, default: usize, max: usize| {
            in_range(flag, value.unwrap_or(default), 1..=max)
        };
        let seconds = |flag: &str, value: Option<f64>, default: f64, range: RangeInclusive<f64>| {
            in_range(flag, value.unwrap_or(default), range).map(Duration::from_secs_f64)
        };
        Ok(CheckedTuning {
            embed_batching: Batching {
                max_texts: count(
                    "embed-batch-size",
                    given.embed_batch_size.or(f.embed_batch_size),
                    defaults.max_texts,
                    4096,
                )?,
                max_tokens: count(
                    "embed-batch-tokens",
                    given.embed_batch_tokens.or(f.embed_batch_tokens),
                    defaults.max_tokens,
                    1 << 20,
                )?,
            },
            upload_batch_size: count(
                "upload-batch-size",
                given.upload_batch_size.or(f.upload_batch_size),
                4000,
                MAX_UPLOAD_BATCH,
            )?,
            upload_parallelism: count(
                "upload-parallelism",
                given.upload_parallelism.or(f.upload_parallelism),
                2,
                MAX_UPLOAD_PARALLELISM,
            )?,
            max_file_mib: in_range(
                "max-file-size",
                given.max_file_size.or(f.max_file_size).unwrap_or(100),
                1..=1 << 20,
            )?,
            max_file_chunks: count(
                "max-file-chunks",
                given.max_file_chunks.or(f.max_file_chunks),
                DEFAULT_MAX_FILE_CHUNKS,
                1_000_000_000,
            )?,
            threads: count("threads", given.threads.or(f.threads), cores(), MAX_PROCESSES)?,
            commit_interval: seconds(
                "commit-interval",
                given.commit_interval.or(f.commit_interval),
                5.0,
                0.0..=DAY_SECONDS,
            )?,
            file_timeout: seconds("file-timeout", given.file_timeout.or(f.file_timeout), 60.0, 0.001..=DAY_SECONDS)?,
            extract_memory_mib: in_range(
                "extract-memory",
                given.extract_memory.or(f.extract_memory).unwrap_or(1024),
                MIN_EXTRACT_MEMORY_MIB..=1 << 20,
            )?,
            extractors: count("extractors", given.extractors.or(f.extractors), cores(), MAX_PROCESSES)?,
        })
    }
}

/// A process's [`Tuning`], every value in its range and in its unit.
struct CheckedTuning {
    embed_batching: Batching,
    upload_batch_size: usize,
    upload_parallelism: usize,
    max_file_mib: u64,
    max_file_chunks: usize,
    threads: usize,
    commit_interval: Duration,
    file_timeout: Duration,
    extract_memory_mib: u64,
    extractors: usize,
}

impl CheckedTuning {
    /// The extractor processes' settings; `program` is the `ingest` binary they run, `ocr`
    /// what they do with scans.
    fn extraction(&self, program: PathBuf, ocr: OcrRequest) -> ExtractorSettings {
        ExtractorSettings {
            program,
            timeout: self.file_timeout,
            memory_limit_mib: self.extract_memory_mib,
            processes: self.extractors,
            ocr,
        }
    }
}

/// `value` when `range` holds it; else one sentence naming the flag and its range. Every
/// numeric setting goes through it before any work starts, so that no value a user can type
/// overflows a computation or a duration later (`--file-timeout 1e300`, `-k 4000000000`).
pub fn in_range<T: PartialOrd + Display>(flag: &str, value: T, range: RangeInclusive<T>) -> Result<T> {
    if range.contains(&value) {
        Ok(value)
    } else {
        bail!("--{flag} must be between {} and {} (got {value})", range.start(), range.end())
    }
}

/// Pages one file may need read by OCR, unless `--max-ocr-pages` says otherwise: some five
/// minutes of OCR on one core, and more pages than most scanned documents have.
pub const DEFAULT_MAX_OCR_PAGES: u32 = 200;
const MAX_OCR_PAGES: u32 = 1_000_000;

/// Upper bounds of the numeric settings: far above any sensible value, low enough that no
/// arithmetic on them overflows.
pub const DAY_SECONDS: f64 = 86_400.0;
const WEEK_SECONDS: f64 = 7.0 * DAY_SECONDS;
const MAX_SHARDS: u32 = 1000;
const MAX_REPLICAS: u32 = 100;
const MAX_RETRIES: i64 = 1000;
/// Threads, extractor processes and local workers.
pub const MAX_PROCESSES: usize = 256;
/// Points per upsert request, and upsert requests in flight (`ingest DIR`, `ingest restore`).
pub const MAX_UPLOAD_BATCH: usize = 100_000;
pub const MAX_UPLOAD_PARALLELISM: usize = 64;
/// A model's tokens per chunk: no model reads more at once.
const MAX_CHUNK_TOKENS: usize = 1 << 16;

/// Whether `name` ends like a generation's name, `<collection>-g<number>`
/// ([`crate::catalog::generation_name`]): a collection of that name would share rows, parquet
/// copy and store with a generation of another collection.
fn is_generation_name(name: &str) -> bool {
    name.rsplit_once("-g").is_some_and(|(base, number)| {
        !base.is_empty() && !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())
    })
}

/// The number of cores, or 2 when it cannot be read.
fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

/// Chunks one file may have unless `--max-file-chunks` says otherwise: about 13 minutes of
/// the default model's time on two cores (25 chunks/s), and some 20 MB of text.
const DEFAULT_MAX_FILE_CHUNKS: usize = 20_000;

/// The least `--extract-memory`: a guard against a value meant in GiB, which would fail every
/// PDF and DOCX file as out of memory.
const MIN_EXTRACT_MEMORY_MIB: u64 = 128;

fn load_config(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {} is not valid", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_generations_are_told_apart_from_collection_names() {
        for name in ["docs-g2", "docs-g17", "a-b-g1"] {
            assert!(is_generation_name(name), "{name}");
        }
        for name in ["docs", "docs-g", "-g2", "docs-gx2", "docs_g2", "big-graphs", "docs-g2x"] {
            assert!(!is_generation_name(name), "{name}");
        }
    }

    #[test]
    fn a_value_outside_its_range_is_one_sentence_naming_the_flag() {
        assert_eq!(in_range("limit", 5, 1..=1000).unwrap(), 5);
        let error = in_range("limit", 0, 1..=1000).unwrap_err().to_string();
        assert_eq!(error, "--limit must be between 1 and 1000 (got 0)");
        assert!(in_range("file-timeout", f64::NAN, 0.001..=DAY_SECONDS).is_err());
        assert!(in_range("file-timeout", f64::INFINITY, 0.001..=DAY_SECONDS).is_err());
    }
}
