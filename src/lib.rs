//! Turns directories of documents into a searchable vector index, and keeps that index
//! true to the files over time.
//!
//! # Layout
//!
//! Pipeline stages, each a function or small type from one typed value to the next:
//!
//! - [`scan`]: directory → [`scan::FileEntry`] per candidate file (stat only).
//! - [`hash`]: `FileEntry` → [`hash::HashedFile`] (bytes, sha256, `doc_id`, point ids).
//! - [`extract`]: bytes → [`extract::Document`] (text, anchors, title) or a readable reason;
//!   format → extractor. [`extract::pool`]: the bytes of every format but plain text and
//!   Markdown → a `Document` made in a child
//!   process (`ingest extractor`) under a time and memory limit, so a parser that hangs
//!   or crashes fails only its file.
//! - [`chunk`]: `Document` → `Vec<`[`chunk::Chunk`]`>` sized in model tokens.
//! - [`model`]: a model directory → [`model::ModelInfo`] (identity, width, pooling, prefixes);
//!   the installed models.
//! - [`embed`]: chunk texts → vectors, with the local ONNX model.
//! - [`sparse`]: chunk text → BM25 sparse vector.
//! - [`cache`]: chunk content hash + model → a vector embedded before.
//! - [`store`]: points → a vector collection ([`store::VectorIndex`]; embedded engine or Qdrant server).
//! - [`parquet_copy`]: points → parquet files the collection can be rebuilt from.
//! - [`catalog`]: job and file state → `jobs` and `files` rows (PostgreSQL or embedded SQLite).
//! - [`pipeline`]: the job runner joining the stages with bounded channels → [`pipeline::JobReport`];
//!   [`pipeline::worker`]: the same stages fed by PostgreSQL's work queue, on many machines.
//!
//! Around them:
//!
//! - [`search`]: query text → top hits.
//! - [`serve`]: HTTP requests → searches of the live generation with its model, the
//!   collections, health and metrics (`ingest serve`).
//! - [`consistency`]: catalog + parquet + collection → a restored collection, or a health report and repairs;
//!   the files a job touched → [`consistency::Verification`], the job's own end check.
//! - [`progress`]: stage counters → progress bar or log lines.
//! - [`lock`]: one run at a time per collection.
//! - [`metrics`]: a worker's counters, queue and servers → Prometheus text at
//!   `ingest worker --metrics-listen`.
//! - [`redact`]: a URL → the same URL fit to print, its password and secret parameters hidden.
//! - [`retry`]: backoff, jitter and the outage limit for the remote services.
//! - [`settings`]: the options given, environment and TOML → validated [`settings::Settings`],
//!   and from them a run's job settings and a worker's.
//! - [`workspace`]: settings → one collection's catalog, the generation a command works on
//!   (its catalog rows, store and parquet copy), its locks, and the data directory's layout.
//! - [`generations`]: a run's model and chunking → the generation it builds; a ready one →
//!   the switch of the collection's name to it; rollback and gc.
//! - [`commands`]: settings and a command's options → what the command found or did, as a
//!   typed outcome (a run's [`pipeline::JobReport`], [`commands::Status`], [`commands::CheckReport`], …).
//! - [`output`]: a command's outcome → the lines it prints, or its `--json`; a reader that
//!   closed standard output → [`output::StdoutClosed`].
//!
//! The `ingest` binary (`src/main.rs`, with its own `cli` module for the command line and
//! `exit` for the exit codes) parses the arguments into those options, runs the command,
//! hands its outcome to [`output`], and turns the outcome into the process's exit code: the
//! library reports what happened, and only the binary knows the numbers.

pub mod cache;
pub mod catalog;
pub mod chunk;
pub mod commands;
pub mod consistency;
pub mod embed;
pub mod extract;
pub mod generations;
pub mod hash;
pub mod kill_point;
pub mod lock;
pub mod metrics;
pub mod model;
mod onnx_graph;
pub mod output;
pub mod parquet_copy;
pub mod pipeline;
pub mod progress;
pub mod redact;
pub mod retry;
pub mod scan;
pub mod search;
pub mod serve;
pub mod settings;
pub mod sparse;
pub mod store;
pub mod workspace;
