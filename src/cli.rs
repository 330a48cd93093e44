//! # Command line
//!
//! In: arguments, environment (`DATABASE_URL`, `QDRANT_URL`, `QDRANT_API_KEY`,
//! `INGEST_DATA_DIR`, `INGEST_MODEL_DIR`, `INGEST_PARQUET_DIR`, `INGEST_OUTAGE_LIMIT`,
//! `INGEST_CONFIG`) and an optional TOML file. Out: validated [`Settings`] and the
//! [`Command`] to run. Precedence: flag, then environment, then the TOML file, then the
//! built-in default. Resolved once; secrets are never printed (`Debug` redacts them, and
//! `--help` names the servers' variables without their values).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use serde::Deserialize;

use crate::catalog::JobRow;
use crate::embed::Batching;
use crate::extract::pool::WORKER_SUBCOMMAND;
use crate::extract::ExtractorSettings;
use crate::pipeline::worker::WorkerSettings;
use crate::pipeline::JobSettings;
use crate::retry::RetryPolicy;
use crate::scan::ScanOptions;
use crate::store::{CollectionLayout, StoreLocation};

// No `Debug` here or on `GlobalArgs` (a doc comment would become help text): they hold the
// servers' URLs as given, passwords included. `Settings` redacts them.
#[derive(Parser)]
#[command(
    name = "ingest",
    version,
    about = "Index a directory of documents into a vector collection and keep it in sync."
)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub global: GlobalArgs,
}

impl Cli {
    /// Parses the arguments, and the environment variables of the settings that flags can
    /// also give. A variable set to nothing, or to something that is not UTF-8, counts as
    /// unset.
    pub fn try_parse_args_and_env() -> Result<Self, clap::Error> {
        let mut command = Self::command().mut_args(|arg| {
            let unusable = arg.get_env().and_then(|name| name.to_str()).is_some_and(|name| {
                matches!(std::env::var(name).as_deref(), Ok("") | Err(std::env::VarError::NotUnicode(_)))
            });
            if unusable {
                arg.env(None)
            } else {
                arg
            }
        });
        let mut matches = command.try_get_matches_from_mut(std::env::args_os())?;
        Self::from_arg_matches_mut(&mut matches).map_err(|error| error.format(&mut command))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Index DIR (the same as `ingest DIR`).
    Run(Box<RunArgs>),
    /// Search the collection.
    Search(SearchArgs),
    /// Show recent jobs, failed files and the collection's sync health.
    Status(StatusArgs),
    /// Check that the catalog, the vector store and the model are reachable and agree.
    Check,
    /// Rebuild the collection from its parquet copy, without embedding.
    Restore(RestoreArgs),
    /// Write the collection's points to one fresh parquet file, <OUT>/<collection>.parquet.
    Export(ExportArgs),
    /// Check that the catalog, the collection and the parquet copy agree; --repair fixes them.
    Verify(VerifyArgs),
    /// Apply the catalog's schema migrations and exit.
    Migrate,
    /// Work on the collection's queued jobs (planned by `ingest DIR --workers N`), alongside
    /// workers on other machines sharing the same PostgreSQL, Qdrant and files.
    Worker(WorkerArgs),
    /// Extract files sent on stdin, answering on stdout: the child process a
    /// run starts to isolate those parsers (see `ingest::extract::pool`).
    #[command(hide = true, name = WORKER_SUBCOMMAND)]
    ExtractWorker(ExtractWorkerArgs),
}

#[derive(Clone, Args)]
pub struct GlobalArgs {
    /// Where the embedded catalog, engine and parquet copies live [default: ./.ingest]
    #[arg(long, global = true, env = "INGEST_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The vector collection [default: documents]
    #[arg(long, global = true)]
    pub collection: Option<String>,
    /// PostgreSQL URL for the catalog; without it the embedded catalog is used
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Qdrant server URL (gRPC, e.g. http://localhost:6334); without it the embedded engine is used
    #[arg(long, global = true, env = "QDRANT_URL", hide_env_values = true)]
    pub qdrant_url: Option<String>,
    /// Seconds a server (Qdrant, PostgreSQL) may stay unreachable mid-job before the job stops,
    /// resumable [env: INGEST_OUTAGE_LIMIT] [default: 300]
    #[arg(long, global = true, value_name = "SECONDS")]
    pub outage_limit: Option<f64>,
    /// Model directory (model.onnx, tokenizer.json, config.json)
    #[arg(long, global = true, env = "INGEST_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,
    /// Where the parquet copies live; share it between machines running workers [default: <data dir>/parquet]
    #[arg(long, global = true, env = "INGEST_PARQUET_DIR")]
    pub parquet_dir: Option<PathBuf>,
    /// Shards of a collection this command creates on a Qdrant server [default: the server's]
    #[arg(long, global = true, value_name = "N")]
    pub shards: Option<u32>,
    /// Copies of each shard in a Qdrant cluster, for a collection this command creates [default: the server's]
    #[arg(long, global = true, value_name = "N")]
    pub replication_factor: Option<u32>,
    /// Replicas that must acknowledge each write before it counts, for a collection this command creates [default: the server's]
    #[arg(long, global = true, value_name = "N")]
    pub write_consistency_factor: Option<u32>,
    /// TOML file with defaults for any of these settings
    #[arg(long, global = true, env = "INGEST_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the result as JSON on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress output; only failures are printed
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// The directory to index
    pub dir: Option<PathBuf>,
    /// Only index these extensions (repeatable). By default: txt md markdown pdf docx, the
    /// plain-text formats rst adoc asciidoc org tex csv tsv log json yaml yml toml ini, and files
    /// without an extension whose contents are text (README, NEWS, copyright)
    #[arg(long = "extension", value_name = "EXT")]
    pub extensions: Vec<String>,
    /// Also index files of any other extension when their contents are text (UTF-8 or UTF-16
    /// with a byte-order mark, no NUL bytes); others are skipped as not text
    #[arg(long)]
    pub sniff_unknown_extensions: bool,
    /// Skip paths matching this glob, relative to DIR (repeatable), e.g. 'drafts/**'
    #[arg(long = "ignore", value_name = "GLOB")]
    pub ignore: Vec<String>,
    /// Follow symbolic links that lead outside DIR; by default they are skipped and noted. Use it
    /// when DIR gathers documents kept elsewhere through links (they are indexed under their
    /// path inside DIR)
    #[arg(long)]
    pub follow_external_links: bool,
    /// Chunk size in model tokens [default: 200]
    #[arg(long)]
    pub chunk_size: Option<usize>,
    /// Tokens shared by neighbouring chunks [default: 32]
    #[arg(long)]
    pub chunk_overlap: Option<usize>,
    /// Re-embed every file, changed or not (failed files included)
    #[arg(long)]
    pub full: bool,
    /// Report what the run would add, update and delete, and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Stop retrying a file after it failed this many runs in a row, until it changes [default: 3]
    #[arg(long, value_name = "RUNS")]
    pub max_retries: Option<i64>,
    #[command(flatten)]
    pub tuning: Tuning,
    /// Plan only: record the work in PostgreSQL's queue, start N local `ingest worker`
    /// processes (0: none, leave it to workers started elsewhere), and wait for the job to
    /// finish. Needs --database-url and --qdrant-url
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// With --workers: exit once the work is queued, without waiting for the workers
    #[arg(long, requires = "workers")]
    pub no_wait: bool,
    /// Delete the points of vanished files even when they are more than half of the indexed
    /// files under the directory (and more than 10). Without it such a run deletes nothing and
    /// exits 1, because that many vanished files usually means an unmounted share or an
    /// emptied directory. Use it after checking, with --dry-run, that the files really are gone
    #[arg(long)]
    pub allow_mass_delete: bool,
}

/// How this process embeds and writes: a run's and a worker's own, never recorded on the job.
#[derive(Debug, Clone, Default, Args)]
pub struct Tuning {
    /// The most texts per model call, an upper bound beside --embed-batch-tokens, which sizes
    /// the calls [default: 32]
    #[arg(long)]
    pub embed_batch_size: Option<usize>,
    /// Padded tokens per model call: its texts times its longest text's tokens. Time and
    /// memory grow with these, so they size the calls; a longer text goes alone [default: 512]
    #[arg(long, value_name = "TOKENS")]
    pub embed_batch_tokens: Option<usize>,
    /// Points per upsert request [default: 4000]
    #[arg(long)]
    pub upload_batch_size: Option<usize>,
    /// Upsert requests in flight [default: 2]
    #[arg(long)]
    pub upload_parallelism: Option<usize>,
    /// Files larger than this many MiB fail instead of being read [default: 100]
    #[arg(long, value_name = "MIB")]
    pub max_file_size: Option<u64>,
    /// Model threads [default: the number of cores]
    #[arg(long)]
    pub threads: Option<usize>,
    /// Seconds of embedding work that may wait before being committed [default: 5]
    #[arg(long, value_name = "SECONDS")]
    pub commit_interval: Option<f64>,
    /// Seconds one file may take: its extraction, then its chunking (counted in CPU time, so a
    /// file is not failed for waiting behind the model); a file still being extracted or
    /// chunked then fails as timed out [default: 60]
    #[arg(long, alias = "extract-timeout", value_name = "SECONDS")]
    pub file_timeout: Option<f64>,
    /// Chunks one file may have; a file with more fails before any of it is embedded. The
    /// default is about 13 minutes of model time on two cores [default: 20000]
    #[arg(long, value_name = "CHUNKS")]
    pub max_file_chunks: Option<usize>,
    /// Address space of each extractor process (every format but text and Markdown), in MiB; a parser that needs more fails
    /// its file as out of memory instead of exhausting the machine [default: 1024]
    #[arg(long, value_name = "MIB")]
    pub extract_memory: Option<u64>,
    /// Extractor processes, hence files extracted at once [default: the number of cores]
    #[arg(long, value_name = "N")]
    pub extract_workers: Option<usize>,
}

#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Exit once no queued job of the collection has work left, instead of waiting for more
    #[arg(long)]
    pub once: bool,
    /// Seconds a claimed item stays this worker's without a heartbeat; after that another
    /// worker may take it over [default: 60]
    #[arg(long, value_name = "SECONDS")]
    pub lease: Option<f64>,
    /// Park an item, with its reason, once its lease has run out this many times [default: 3]
    #[arg(long, value_name = "TIMES")]
    pub max_retries: Option<i64>,
    #[command(flatten)]
    pub tuning: Tuning,
}

#[derive(Debug, Clone, Args)]
pub struct ExtractWorkerArgs {
    /// Address space limit (RLIMIT_AS) in MiB, set before the first request
    #[arg(long, value_name = "MIB")]
    pub memory_limit: u64,
}

#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    /// The query text
    pub query: String,
    /// How many hits to show
    #[arg(long, short = 'k', default_value_t = 5)]
    pub limit: usize,
}

#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// Directory of parquet files [default: <data dir>/parquet/<collection>]
    pub dir: Option<PathBuf>,
    /// Points per upsert request
    #[arg(long, default_value_t = 4000)]
    pub upload_batch_size: usize,
    /// Upsert requests in flight
    #[arg(long, default_value_t = 2)]
    pub upload_parallelism: usize,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// The directory to write to (created if missing)
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// Re-upload missing or stale points from parquet, delete orphans, and return files that
    /// cannot be restored to `pending` for the next run to embed; then verify again
    #[arg(long)]
    pub repair: bool,
    /// Also check that completed files still exist on disk with the same content
    #[arg(long)]
    pub check_files: bool,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Show one job in detail
    pub job: Option<String>,
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
    pub extract_workers: Option<usize>,
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

/// An environment variable that clap does not read: `QDRANT_API_KEY` has no flag, so that the
/// key never shows in a process listing; `INGEST_OUTAGE_LIMIT` is parsed here, with its own
/// message, because every process parses the command line, extractor processes and local
/// workers included, and those inherit the environment even where a flag overrides it.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Settings {
    pub fn resolve(global: &GlobalArgs) -> Result<Self> {
        let file = match &global.config {
            Some(path) => load_config(path)?,
            None => FileConfig::default(),
        };
        let collection = global.collection.clone().or_else(|| file.collection.clone()).unwrap_or("documents".into());
        if collection.is_empty() || !collection.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)) {
            bail!("--collection must be letters, digits, '-' or '_' (got {collection:?})");
        }
        let outage_limit = match global.outage_limit {
            Some(limit) => limit,
            None => match env("INGEST_OUTAGE_LIMIT") {
                Some(text) => text.parse().map_err(|_| anyhow!("INGEST_OUTAGE_LIMIT must be a number of seconds"))?,
                None => file.outage_limit.unwrap_or(300.0),
            },
        };
        if !(outage_limit.is_finite() && outage_limit >= 0.0) {
            bail!("--outage-limit must be a number of seconds, 0 or more");
        }
        Ok(Self {
            data_dir: global
                .data_dir
                .clone()
                .or_else(|| file.data_dir.clone())
                .unwrap_or_else(|| PathBuf::from(".ingest")),
            collection,
            database_url: global.database_url.clone().or_else(|| file.database_url.clone()),
            qdrant_url: global.qdrant_url.clone().or_else(|| file.qdrant_url.clone()),
            qdrant_api_key: env("QDRANT_API_KEY"),
            layout: CollectionLayout {
                shards: global.shards,
                replication_factor: global.replication_factor,
                write_consistency_factor: global.write_consistency_factor,
            },
            parquet_root: global.parquet_dir.clone(),
            retry: RetryPolicy { outage_limit: Duration::from_secs_f64(outage_limit), ..RetryPolicy::default() },
            model_dir: global.model_dir.clone().or_else(|| file.model_dir.clone()),
            json: global.json,
            quiet: global.quiet,
            file,
        })
    }

    /// The settings of a run over `args.dir`. `extractor_program` is the `ingest` binary, which
    /// the run starts as its extractor processes.
    pub fn job(&self, args: &RunArgs, extractor_program: PathBuf) -> Result<JobSettings> {
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
        let positive = |name: &str, value: usize| -> Result<usize> {
            if value == 0 {
                bail!("--{name} must be at least 1");
            }
            Ok(value)
        };
        let commit_interval = args.tuning.commit_interval.or(f.commit_interval).unwrap_or(5.0);
        if !(commit_interval.is_finite() && commit_interval >= 0.0) {
            bail!("--commit-interval must be a number of seconds, 0 or more");
        }
        let file_timeout = args.tuning.file_timeout.or(f.file_timeout).unwrap_or(60.0);
        if !(file_timeout.is_finite() && file_timeout > 0.0) {
            bail!("--file-timeout must be a number of seconds, more than 0");
        }
        let extract_memory = args.tuning.extract_memory.or(f.extract_memory).unwrap_or(1024);
        if extract_memory < MIN_EXTRACT_MEMORY_MIB {
            bail!("--extract-memory is in MiB and must be at least {MIN_EXTRACT_MEMORY_MIB}");
        }
        Ok(JobSettings {
            root,
            collection: self.collection.clone(),
            scan: ScanOptions::new(
                &extensions,
                &ignore,
                args.follow_external_links,
                args.sniff_unknown_extensions || f.sniff_unknown_extensions.unwrap_or(false),
            )?,
            chunk_size: args.chunk_size.or(f.chunk_size).unwrap_or(200),
            chunk_overlap: args.chunk_overlap.or(f.chunk_overlap).unwrap_or(32),
            embed_batching: Batching {
                max_texts: positive(
                    "embed-batch-size",
                    args.tuning.embed_batch_size.or(f.embed_batch_size).unwrap_or(Batching::default().max_texts),
                )?,
                max_tokens: positive(
                    "embed-batch-tokens",
                    args.tuning.embed_batch_tokens.or(f.embed_batch_tokens).unwrap_or(Batching::default().max_tokens),
                )?,
            },
            upload_batch_size: positive(
                "upload-batch-size",
                args.tuning.upload_batch_size.or(f.upload_batch_size).unwrap_or(4000),
            )?,
            upload_parallelism: positive(
                "upload-parallelism",
                args.tuning.upload_parallelism.or(f.upload_parallelism).unwrap_or(2),
            )?,
            max_file_bytes: positive(
                "max-file-size",
                args.tuning.max_file_size.or(f.max_file_size).unwrap_or(100) as usize,
            )? as u64
                * 1024
                * 1024,
            max_file_chunks: positive(
                "max-file-chunks",
                args.tuning.max_file_chunks.or(f.max_file_chunks).unwrap_or(DEFAULT_MAX_FILE_CHUNKS),
            )?,
            commit_interval: Duration::from_secs_f64(commit_interval),
            full: args.full,
            dry_run: args.dry_run,
            max_retries: positive("max-retries", args.max_retries.or(f.max_retries).unwrap_or(3).max(0) as usize)?
                as i64,
            allow_mass_delete: args.allow_mass_delete,
            extraction: ExtractorSettings {
                program: extractor_program,
                timeout: Duration::from_secs_f64(file_timeout),
                memory_limit_mib: extract_memory,
                workers: positive(
                    "extract-workers",
                    args.tuning.extract_workers.or(f.extract_workers).unwrap_or_else(cores),
                )?,
            },
            queued: args.workers.is_some(),
        })
    }

    /// Where the vectors live.
    pub fn store_location(&self) -> StoreLocation<'_> {
        StoreLocation {
            data_dir: &self.data_dir,
            qdrant_url: self.qdrant_url.as_deref(),
            api_key: self.qdrant_api_key.as_deref(),
            layout: self.layout,
        }
    }

    /// Model threads: the flag, the file, else one per core.
    pub fn model_threads(&self, tuning: &Tuning) -> usize {
        tuning.threads.or(self.file.threads).unwrap_or_else(cores).max(1)
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
        let args = RunArgs {
            dir: Some(dir),
            chunk_size: Some(job.chunk_size as usize),
            chunk_overlap: Some(job.chunk_overlap as usize),
            tuning: tuning.clone(),
            ..RunArgs::default()
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
            .args(["worker", "--once", "--quiet", "--threads", &threads, "--extract-workers", "1"])
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

    /// A worker's lease and parking limit.
    pub fn worker(&self, args: &WorkerArgs) -> Result<WorkerSettings> {
        let lease = args.lease.unwrap_or(60.0);
        if !(lease.is_finite() && lease >= 1.0) {
            bail!("--lease must be a number of seconds, 1 or more");
        }
        let max_attempts = args.max_retries.or(self.file.max_retries).unwrap_or(3);
        if max_attempts < 1 {
            bail!("--max-retries must be at least 1");
        }
        Ok(WorkerSettings {
            collection: self.collection.clone(),
            lease: Duration::from_secs_f64(lease),
            once: args.once,
            max_attempts,
            threads: self.model_threads(&args.tuning),
        })
    }
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
