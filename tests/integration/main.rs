//! The integration tests, one binary: each module drives the real `ingest` binary, the
//! real model and real stores. One binary links the whole dependency tree once instead of
//! once a file, which was most of a cold test build. `tests/postgres_restart.rs` stays a
//! binary of its own, because it restarts the machine's shared PostgreSQL, which no other
//! test may see.

#[path = "../common/mod.rs"]
mod common;

mod catalog;
mod command_line;
mod crash;
mod extractor_pool;
mod fixtures_end_to_end;
mod generations;
mod hybrid_search;
mod incremental;
mod long_lines;
mod model_reference;
mod model_stages;
mod ocr;
mod restore_verify;
mod scoped_deletes;
mod search_model;
mod serve;
mod server_faults;
mod switch_on_servers;
mod vector_store;
mod workers;
