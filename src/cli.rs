//! # Command line
//!
//! In: the arguments, and the environment variables that flags also read (`DATABASE_URL`,
//! `QDRANT_URL`, `INGEST_DATA_DIR`, `INGEST_MODEL_DIR`, `INGEST_PARQUET_DIR`, `INGEST_CONFIG`).
//! Out: the [`Command`] to run, with the options given as the library's plain types
//! ([`CommonOptions`], [`RunOptions`], [`WorkerOptions`]), which [`ingest::settings`] resolves
//! and validates. `--help` names the servers' variables without their values.

use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use ingest::extract::ocr::OcrMode;
use ingest::extract::pool::EXTRACTOR_SUBCOMMAND;
use ingest::extract::OcrRequest;
use ingest::settings::{self, CommonOptions, RunOptions, WorkerOptions};

// No `Debug` here or on `GlobalArgs` (a doc comment would become help text): they hold the
// servers' URLs as given, passwords included. `ingest::settings::Settings` redacts them.
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
    /// Serve generation --generation N: at once when it holds every file the live one serves;
    /// otherwise it lists what it lacks, and switches only with --confirm.
    Switch(SwitchArgs),
    /// Serve the previous generation again (the one live before the live one).
    Rollback,
    /// Delete the generations no longer served: their collections, parquet copies and catalog
    /// rows; with --generation N, that generation only, unless it is live (an abandoned build).
    Gc(GcArgs),
    /// List the installed embedding models: name, id, dimension, max tokens, pooling, prefixes.
    Models,
    /// Serve search over HTTP: POST /search, GET /collections, /healthz, /metrics, /openapi.json
    /// and a search page at /, always with the live generation's model.
    Serve(ServeArgs),
    /// Work on the collection's queued jobs (planned by `ingest DIR --workers N`), alongside
    /// workers on other machines sharing the same PostgreSQL, Qdrant and files.
    Worker(WorkerArgs),
    /// Extract files sent on stdin, answering on stdout: the child process a
    /// run starts to isolate those parsers (see `ingest::extract::pool`).
    #[command(hide = true, name = EXTRACTOR_SUBCOMMAND)]
    Extractor(ExtractorArgs),
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
    /// The generation to search, restore, verify or export (`ingest status` lists them) [default: the live one]
    #[arg(long, global = true, value_name = "N")]
    pub generation: Option<i64>,
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

#[derive(Debug, Clone, Args)]
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
#[derive(Debug, Clone, Args)]
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
    #[arg(long, value_name = "N", alias = "extract-workers")]
    pub extractors: Option<usize>,
    /// Read text from scans with OCR (Tesseract, installed by ./scripts/setup.sh --ocr): auto
    /// reads PDF pages without a text layer, and images (png, jpg, tif, webp); force reads
    /// every page; off reads none [default: auto]
    #[arg(long, value_enum)]
    pub ocr: Option<OcrChoice>,
    /// Tesseract's languages, joined by + [default: eng]
    #[arg(long, value_name = "LANGUAGES")]
    pub ocr_languages: Option<String>,
    /// Pages one file may need read by OCR; a file needing more fails before any is read
    /// [default: 200]
    #[arg(long, value_name = "PAGES")]
    pub max_ocr_pages: Option<u32>,
}

/// `--ocr`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OcrChoice {
    Auto,
    Off,
    Force,
}

impl From<OcrChoice> for OcrMode {
    fn from(choice: OcrChoice) -> Self {
        match choice {
            OcrChoice::Auto => OcrMode::Auto,
            OcrChoice::Off => OcrMode::Off,
            OcrChoice::Force => OcrMode::Force,
        }
    }
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
    /// Serve Prometheus metrics at http://ADDR/metrics (host:port): claims, files done and
    /// failed, lease losses, retries and outage waits, queue depth per job, embed and stage seconds
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The address to listen on (host:port); loopback only by default
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// A file holding the token every request (but /, /healthz and /openapi.json) must send as
    /// `Authorization: Bearer <token>`
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Searches served at once; one more is answered 429 at once
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub queue: usize,
    /// Seconds a search has to answer; after that it is answered 504
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub timeout: f64,
    /// ONNX Runtime threads of each query model
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub model_threads: usize,
}

impl ServeArgs {
    /// The service's options, checked.
    pub fn command(&self) -> anyhow::Result<ingest::commands::ServeCommand> {
        let timeout = std::time::Duration::try_from_secs_f64(self.timeout)
            .map_err(|_| anyhow::anyhow!("--timeout must be a positive number of seconds (got {})", self.timeout))?;
        Ok(ingest::commands::ServeCommand {
            options: ingest::serve::ServeOptions {
                listen: self.listen,
                queue: self.queue,
                timeout,
                model_threads: self.model_threads,
                ..ingest::serve::ServeOptions::default()
            },
            token_file: self.token_file.clone(),
        })
    }
}

#[derive(Debug, Clone, Args)]
pub struct ExtractorArgs {
    /// Address space limit (RLIMIT_AS) in MiB, set before the first request
    #[arg(long, value_name = "MIB")]
    pub memory_limit: u64,
    /// What to do with scanned pages and images: off, auto or force
    #[arg(long, default_value = "off")]
    pub ocr: OcrMode,
    /// Tesseract's languages, joined by +
    #[arg(long, default_value = "eng")]
    pub ocr_languages: String,
    /// Pages one file may need read by OCR
    #[arg(long, default_value_t = 0)]
    pub max_ocr_pages: u32,
}

impl ExtractorArgs {
    pub fn ocr(&self) -> OcrRequest {
        OcrRequest { mode: self.ocr, languages: self.ocr_languages.clone(), max_pages: self.max_ocr_pages }
    }
}

#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    /// The query text
    pub query: String,
    /// How many hits to show
    #[arg(long, short = 'k', default_value_t = 5)]
    pub limit: usize,
    /// How to rank: hybrid (the model's vectors and BM25, fused by reciprocal rank), dense
    /// (the model's only) or sparse (BM25 only; needs no model)
    #[arg(long, value_enum, default_value_t = Mode::Hybrid)]
    pub mode: Mode,
    /// Only chunks of files under this directory
    #[arg(long, value_name = "DIR")]
    pub path_prefix: Option<PathBuf>,
    /// Only chunks of files with this extension (repeat for several: --ext pdf --ext md)
    #[arg(long = "ext", value_name = "EXT")]
    pub extensions: Vec<String>,
    /// Only chunks whose payload KEY equals VALUE (repeat for several), e.g. --filter sheet=Budget
    #[arg(long = "filter", value_name = "KEY=VALUE", value_parser = key_value)]
    pub equals: Vec<(String, String)>,
    /// With --json, give each hit's rank among the dense and the sparse candidates alone
    #[arg(long)]
    pub ranks: bool,
}

/// `ingest search --mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Hybrid,
    Dense,
    Sparse,
}

impl SearchArgs {
    /// The search these options ask for.
    pub fn request(&self) -> anyhow::Result<ingest::search::SearchRequest> {
        use ingest::store::{PointFilter, SearchMode};
        let path_contains = match &self.path_prefix {
            Some(dir) => Some(ingest::search::path_prefix(dir)?),
            None => None,
        };
        let extensions = self.extensions.iter().map(|e| e.trim_start_matches('.').to_lowercase()).collect();
        Ok(ingest::search::SearchRequest {
            query: self.query.clone(),
            limit: self.limit,
            mode: match self.mode {
                Mode::Hybrid => SearchMode::Hybrid,
                Mode::Dense => SearchMode::Dense,
                Mode::Sparse => SearchMode::Sparse,
            },
            filter: PointFilter { path_contains, equals: self.equals.clone(), extensions },
            with_ranks: self.ranks,
        })
    }
}

fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_string(), value.to_string())),
        _ => Err(format!("{text:?} is not KEY=VALUE, such as sheet=Budget")),
    }
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
pub struct SwitchArgs {
    /// Switch even though the generation lacks files the live one serves: they go out of search
    #[arg(long)]
    pub confirm: bool,
}

#[derive(Debug, Clone, Args)]
pub struct GcArgs {
    /// Only list the generations that would be deleted
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Show one job in detail
    pub job: Option<String>,
}

impl From<GlobalArgs> for CommonOptions {
    fn from(args: GlobalArgs) -> Self {
        let GlobalArgs {
            data_dir,
            collection,
            database_url,
            qdrant_url,
            outage_limit,
            model_dir,
            parquet_dir,
            shards,
            replication_factor,
            write_consistency_factor,
            generation,
            config,
            json,
            quiet,
        } = args;
        Self {
            data_dir,
            collection,
            database_url,
            qdrant_url,
            outage_limit,
            model_dir,
            parquet_dir,
            shards,
            replication_factor,
            write_consistency_factor,
            generation,
            config,
            json,
            quiet,
        }
    }
}

impl From<RunArgs> for RunOptions {
    fn from(args: RunArgs) -> Self {
        let RunArgs {
            dir,
            extensions,
            sniff_unknown_extensions,
            ignore,
            follow_external_links,
            chunk_size,
            chunk_overlap,
            full,
            dry_run,
            max_retries,
            tuning,
            workers,
            no_wait,
            allow_mass_delete,
        } = args;
        Self {
            dir,
            extensions,
            sniff_unknown_extensions,
            ignore,
            follow_external_links,
            chunk_size,
            chunk_overlap,
            full,
            dry_run,
            max_retries,
            tuning: tuning.into(),
            workers,
            no_wait,
            allow_mass_delete,
        }
    }
}

impl From<Tuning> for settings::Tuning {
    fn from(args: Tuning) -> Self {
        let Tuning {
            embed_batch_size,
            embed_batch_tokens,
            upload_batch_size,
            upload_parallelism,
            max_file_size,
            threads,
            commit_interval,
            file_timeout,
            max_file_chunks,
            extract_memory,
            extractors,
            ocr,
            ocr_languages,
            max_ocr_pages,
        } = args;
        Self {
            embed_batch_size,
            embed_batch_tokens,
            upload_batch_size,
            upload_parallelism,
            max_file_size,
            threads,
            commit_interval,
            file_timeout,
            max_file_chunks,
            extract_memory,
            extractors,
            ocr: ocr.map(OcrMode::from),
            ocr_languages,
            max_ocr_pages,
        }
    }
}

impl From<WorkerArgs> for WorkerOptions {
    fn from(args: WorkerArgs) -> Self {
        let WorkerArgs { once, lease, max_retries, tuning, metrics_listen } = args;
        Self { once, lease, max_retries, tuning: tuning.into(), metrics_listen }
    }
}
