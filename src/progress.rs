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
    /// Pages (and images) read by OCR.
    pub ocr_pages: AtomicU64,
    /// Files with scanned pages OCR was not asked to read (it is off or missing).
    pub ocr_unread_files: AtomicU64,
    /// Set once the scan has finished, so `files_seen` is the total.
    pub scan_finished: AtomicBool,
    /// Time spent working, per stage.
    pub stages: StageClock,
    /// Files that failed, by [`FailureClass`].
    failures: [AtomicU64; FailureClass::ALL.len()],
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a file that failed for `reason`.
    pub fn failed(&self, reason: &str) {
        Self::add(&self.failures[FailureClass::of(reason) as usize], 1);
    }

    /// Files that failed for a reason of `class`.
    pub fn failures_of(&self, class: FailureClass) -> u64 {
        self.failures[class as usize].load(Ordering::Relaxed)
    }
}

/// The kind of reason a file failed for, as metrics count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Its extraction outlasted `--file-timeout`.
    Timeout,
    /// Its extractor ran out of the memory `--extract-memory` gives it.
    Memory,
    /// Its extractor process crashed.
    Crashed,
    /// Over a size or chunk limit.
    TooLarge,
    /// Encrypted or password-protected.
    Encrypted,
    /// Not what its extension says, or damaged.
    Corrupt,
    /// It could not be read from disk.
    Unreadable,
    Other,
}

impl FailureClass {
    pub const ALL: [FailureClass; 8] = [
        Self::Timeout,
        Self::Memory,
        Self::Crashed,
        Self::TooLarge,
        Self::Encrypted,
        Self::Corrupt,
        Self::Unreadable,
        Self::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Memory => "memory",
            Self::Crashed => "crashed",
            Self::TooLarge => "too_large",
            Self::Encrypted => "encrypted",
            Self::Corrupt => "corrupt",
            Self::Unreadable => "unreadable",
            Self::Other => "other",
        }
    }

    /// The class of a failed file's reason, as the stages word it.
    pub fn of(reason: &str) -> Self {
        let has = |words: &[&str]| words.iter().any(|w| reason.contains(w));
        if has(&["timed out", "(--file-timeout)"]) {
            Self::Timeout
        } else if has(&["ran out of memory"]) {
            Self::Memory
        } else if has(&["crashed"]) {
            Self::Crashed
        } else if has(&["larger than", "too many chunks"]) {
            Self::TooLarge
        } else if has(&["encrypted"]) {
            Self::Encrypted
        } else if has(&["cannot read file", "Permission denied", "No such file"]) {
            Self::Unreadable
        } else if has(&[
            "not a valid",
            "corrupt",
            "unreadable",
            "malformed",
            "looks binary",
            "not valid UTF-8",
            "parser failed",
        ]) {
            Self::Corrupt
        } else {
            Self::Other
        }
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
    /// Turning file contents into text (in extractor processes for every format but text and
    /// Markdown), OCR aside.
    Extract,
    /// Reading scanned pages and images with OCR, in the extractor processes.
    Ocr,
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
    nanos: [AtomicU64; 12],
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
            ocr: of(Stage::Ocr),
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
    pub ocr: f64,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_reasons_fall_into_their_classes() {
        let cases = [
            ("timed out after 60 s; raise --file-timeout to give such files more time", FailureClass::Timeout),
            ("ran out of memory: it needed more than its 1024 MiB (--extract-memory)", FailureClass::Memory),
            ("PDF extractor crashed (killed by signal 6)", FailureClass::Crashed),
            (
                "file is larger than the 100 MiB limit (200 bytes); raise --max-file-size to index it",
                FailureClass::TooLarge,
            ),
            ("too many chunks to embed: about 90000 (…), over the limit of 50000 per file", FailureClass::TooLarge),
            ("not a valid DOCX file: it is encrypted (password-protected)", FailureClass::Encrypted),
            ("not a valid XLSX file: the file is not a zip package", FailureClass::Corrupt),
            ("corrupt or unreadable PDF: failed parsing cross reference table", FailureClass::Corrupt),
            ("file looks binary (it contains NUL bytes), not text", FailureClass::Corrupt),
            ("cannot read file: Permission denied (os error 13) (on worker host a)", FailureClass::Unreadable),
            ("file name is not valid UTF-8; rename the file to index it", FailureClass::Corrupt),
            ("something new", FailureClass::Other),
        ];
        for (reason, class) in cases {
            assert_eq!(FailureClass::of(reason), class, "{reason}");
        }
        let counters = Counters::default();
        counters.failed(cases[0].0);
        counters.failed(cases[0].0);
        assert_eq!((counters.failures_of(FailureClass::Timeout), counters.failures_of(FailureClass::Other)), (2, 0));
    }
}
