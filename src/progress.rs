//! # Progress
//!
//! In: counters bumped by the pipeline stages. Out: a live indicatif line (files, chunks,
//! throughput) when stderr is a terminal, plain log lines every few seconds when it is not,
//! and nothing with `--quiet`; while a server is unreachable, the line says what the job is
//! waiting for (from the servers' [`OutageClock`]s). Also the time each stage spent working,
//! for the job's report.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::retry::OutageClock;

/// Counters shared by the stages. All are monotonic within a job.
#[derive(Debug, Default)]
pub struct Counters {
    /// Candidate files found by the scan so far.
    pub files_seen: AtomicU64,
    /// Files found unchanged (skipped).
    pub unchanged: AtomicU64,
    /// Files finished in any way (embedded, unchanged, failed).
    pub files_done: AtomicU64,
    /// Chunks embedded by the model.
    pub chunks_embedded: AtomicU64,
    /// Chunks whose vectors came from the embedding cache.
    pub cache_hits: AtomicU64,
    /// Files whose contents were read (to hash and extract them), and their bytes.
    pub files_read: AtomicU64,
    pub bytes_read: AtomicU64,
    /// Points acknowledged by the vector store.
    pub points_written: AtomicU64,
    /// Files the extension filter passed over.
    pub filtered_out: AtomicU64,
    /// Set once the scan has finished, so `files_seen` is the total.
    pub scan_finished: AtomicBool,
    /// Time spent working, per stage.
    pub stages: StageClock,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

enum Display {
    Bar(ProgressBar),
    Log { last: Mutex<Instant> },
    Silent,
}

/// Reports a job's progress to stderr.
pub struct Progress {
    counters: Arc<Counters>,
    /// The servers the job talks to, to say when it waits for one.
    outage_clocks: Vec<Arc<OutageClock>>,
    started: Instant,
    display: Display,
    finished: AtomicBool,
}

impl Progress {
    /// Starts reporting; a background ticker keeps the line fresh while the stages are
    /// blocked, for instance while waiting for one of the services of `outage_clocks` to come
    /// back.
    pub fn new(counters: Arc<Counters>, outage_clocks: Vec<Arc<OutageClock>>, quiet: bool) -> Arc<Self> {
        let display = if quiet {
            Display::Silent
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner();
            bar.set_style(ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}").expect("valid template"));
            bar.enable_steady_tick(Duration::from_millis(200));
            Display::Bar(bar)
        } else {
            Display::Log { last: Mutex::new(Instant::now()) }
        };
        let progress = Arc::new(Self {
            counters,
            outage_clocks,
            started: Instant::now(),
            display,
            finished: AtomicBool::new(false),
        });
        if !quiet {
            let weak = Arc::downgrade(&progress);
            std::thread::spawn(move || loop {
                std::thread::sleep(Duration::from_secs(1));
                match weak.upgrade() {
                    Some(progress) if !progress.finished.load(Ordering::Relaxed) => progress.tick(),
                    _ => return,
                }
            });
        }
        progress
    }

    fn line(&self) -> String {
        let c = &self.counters;
        let seen = c.files_seen.load(Ordering::Relaxed);
        let total = if c.scan_finished.load(Ordering::Relaxed) { seen.to_string() } else { format!("{seen}+") };
        let chunks = c.chunks_embedded.load(Ordering::Relaxed);
        let rate = chunks as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        let tail = match crate::retry::waiting_notice(&self.outage_clocks) {
            Some(notice) => notice,
            None => format!("{rate:.1} chunks/s"),
        };
        format!(
            "files {}/{total} · chunks embedded {chunks} · points written {} · {tail}",
            c.files_done.load(Ordering::Relaxed),
            c.points_written.load(Ordering::Relaxed),
        )
    }

    /// Refreshes the display (rate-limited for log lines).
    pub fn tick(&self) {
        match &self.display {
            Display::Bar(bar) => bar.set_message(self.line()),
            Display::Log { last } => {
                let mut last = last.lock().expect("progress lock");
                if last.elapsed() >= Duration::from_secs(5) {
                    *last = Instant::now();
                    eprintln!("progress: {}", self.line());
                }
            }
            Display::Silent => {}
        }
    }

    pub fn finish(&self) {
        self.finished.store(true, Ordering::Relaxed);
        if let Display::Bar(bar) = &self.display {
            bar.finish_and_clear();
        }
    }
}

/// A stage of the pipeline, as timed by [`StageClock`].
#[derive(Debug, Clone, Copy)]
pub enum Stage {
    /// Listing the tree and reading each entry's metadata.
    Walk,
    /// Reading changed files and hashing their contents.
    Hash,
    /// Turning file contents into text (in extractor processes for every format but text and Markdown).
    Extract,
    /// Splitting text into chunks with the model's tokenizer.
    Chunk,
    /// Weighing each chunk's terms for its BM25 sparse vector.
    Sparse,
    /// Looking up and storing vectors in the embedding cache.
    Cache,
    /// Running the model.
    Embed,
    /// Writing the parquet copy.
    Parquet,
    /// Writes and deletes in the vector store, acknowledged.
    Upsert,
    /// Recording files' progress in the catalog.
    Commit,
    /// The end of the job: parquet compaction, the store's index build, the end check.
    Finish,
}

/// Time spent working per [`Stage`], summed over the threads that run it (so a stage run by
/// several threads can exceed the wall time); waiting on other stages is not counted.
#[derive(Debug, Default)]
pub struct StageClock {
    nanos: [AtomicU64; 11],
}

impl StageClock {
    pub fn add(&self, stage: Stage, spent: Duration) {
        self.nanos[stage as usize].fetch_add(spent.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Awaits `work`, counting the time until it completes against `stage`.
    pub async fn timed<T>(&self, stage: Stage, work: impl std::future::Future<Output = T>) -> T {
        let started = Instant::now();
        let result = work.await;
        self.add(stage, started.elapsed());
        result
    }

    /// Runs `work`, counting its time against `stage`.
    pub fn time<T>(&self, stage: Stage, work: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let result = work();
        self.add(stage, started.elapsed());
        result
    }

    pub fn seconds(&self) -> StageSeconds {
        let of = |stage: Stage| self.nanos[stage as usize].load(Ordering::Relaxed) as f64 / 1e9;
        StageSeconds {
            walk: of(Stage::Walk),
            hash: of(Stage::Hash),
            extract: of(Stage::Extract),
            chunk: of(Stage::Chunk),
            sparse: of(Stage::Sparse),
            cache: of(Stage::Cache),
            embed: of(Stage::Embed),
            parquet: of(Stage::Parquet),
            upsert: of(Stage::Upsert),
            commit: of(Stage::Commit),
            finish: of(Stage::Finish),
        }
    }
}

/// Seconds each stage spent working in a job (see [`StageClock`]).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StageSeconds {
    pub walk: f64,
    pub hash: f64,
    pub extract: f64,
    pub chunk: f64,
    pub sparse: f64,
    pub cache: f64,
    pub embed: f64,
    pub parquet: f64,
    pub upsert: f64,
    pub commit: f64,
    pub finish: f64,
}

/// This process's peak resident memory in MiB (`VmHWM`; Linux only). Unlike `getrusage`,
/// it starts afresh at `exec`, so a child forked from a large parent reports its own peak.
pub fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
