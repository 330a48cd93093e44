//! # Prepare stage
//!
//! In: walked entries (or a worker's claimed files) and the catalog's row of each. Out:
//! [`Outcome`]s: unchanged files counted, changed files hashed, extracted (in the extractor
//! processes) and cut into chunks ([`Extracted`]), or only named when planning
//! ([`PlannedChange`]), failures and vanished files named. The queue towards the
//! embed stage is bounded by the chunks it holds ([`ChunkBudget`]), not only by its files.
//! [`spawn`] starts the stage's thread, and with it the extract threads and their extractor
//! processes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::Result;

use super::known::{KnownFiles, Recorded, Unwalked};
use super::{
    EmbeddedFile, Extracted, FailedFile, JobSettings, LogicFingerprint, Outcome, PlannedChange, PreparedFile,
    RefusedDeletes, Source, Stages,
};
use crate::catalog::{FileFacts, FileStatus, KnownFile, PreviousRow};
use crate::chunk::{ChunkLimits, Chunker, FileTime};
use crate::extract::{self, ExtractorPool};
use crate::hash::{self, HashedFile};
use crate::model::ModelInfo;
use crate::progress::{Counters, Stage};
use crate::scan::{FileEntry, ScanItem};
use crate::sparse::Analyzer;

pub(super) fn facts_of(entry: &FileEntry, content_hash: Option<String>, fingerprint: &str) -> FileFacts {
    FileFacts {
        path: entry.path_text.clone(),
        doc_id: hash::doc_id(&entry.path_text),
        size: entry.size as i64,
        modified_ns: entry.modified_ns,
        extension: entry.extension.clone(),
        content_hash,
        logic_fingerprint: fingerprint.to_string(),
    }
}

/// Starts the prepare thread for `stages`' job: it runs `source`, which sends changed files
/// to `settings.extraction.processes` extract threads, each driving one extractor process at a
/// time, and every other outcome straight to `out`. The extract threads send what they
/// extracted and chunked to `out` too, within `budget`. The extractor processes end with the
/// thread.
pub(super) fn spawn(
    stages: &Stages,
    model: &ModelInfo,
    cancel: &Arc<AtomicBool>,
    source: Source,
    out: crossbeam_channel::Sender<Outcome>,
    budget: Arc<ChunkBudget>,
) -> Result<JoinHandle<Result<()>>> {
    let Stages { settings, counters, .. } = *stages;
    let chunker = LazyChunker {
        model: model.clone(),
        chunk_size: settings.chunk_size,
        chunk_overlap: settings.chunk_overlap,
        built: OnceLock::new(),
    };
    let fingerprint =
        LogicFingerprint::new(&model.id, settings.chunk_size, settings.chunk_overlap).reading_scans(&settings.ocr);
    let analyzer = Analyzer::english();
    let (settings, counters, cancel) = (settings.clone(), counters.clone(), cancel.clone());
    let thread = std::thread::Builder::new().name("prepare".into()).spawn(move || {
        // Changed files go to `processes` extract threads, each driving one extractor process
        // at a time; the pool, and with it every process, ends with this thread.
        let processes = settings.extraction.processes;
        let extractors = ExtractorPool::new(settings.extraction.clone())?;
        std::thread::scope(|scope| {
            let (to_extract, queue) = crossbeam_channel::bounded::<ToExtract>(processes);
            let mut extract_threads = Vec::with_capacity(processes);
            for n in 0..processes {
                let (queue, out) = (queue.clone(), ChunkSender { sender: out.clone(), budget: &budget });
                let stage = ExtractStage {
                    settings: &settings,
                    extractors: &extractors,
                    fingerprint: &fingerprint,
                    chunker: &chunker,
                    analyzer: &analyzer,
                    counters: &counters,
                    cancel: &cancel,
                };
                extract_threads.push(
                    std::thread::Builder::new()
                        .name(format!("extract-{n}"))
                        .spawn_scoped(scope, move || stage.run(&queue, &out))?,
                );
            }
            drop(queue);
            let prepared = source(&to_extract, &out);
            drop(to_extract);
            extract_threads.into_iter().fold(prepared, |result, thread| {
                let extracted = thread.join().map_err(|_| anyhow::anyhow!("an extract thread panicked"))?;
                result.and(extracted)
            })
        })
    })?;
    Ok(thread)
}

/// The prepare stage: change detection and hashing of walked files, which sends each changed
/// file to `changed`.
pub(super) struct Preparer<'a, Changed> {
    pub(super) settings: &'a JobSettings,
    pub(super) fingerprint: &'a LogicFingerprint,
    pub(super) counters: &'a Counters,
    pub(super) cancel: &'a AtomicBool,
    /// Where changed files go: to the extract threads in a run, into the plan when planning.
    pub(super) changed: &'a Changed,
}

/// A changed file on its way to the extract threads.
pub(super) struct ToExtract {
    pub(super) hashed: HashedFile,
    pub(super) previous: Option<PreviousRow>,
}

/// Where the prepare stage sends changed files.
pub(super) trait ChangedFiles {
    /// What the prepare stage's outcome carries for a changed file.
    type Change;

    /// Takes a changed file: either hands it on (`Ok(None)`), or returns the change for the
    /// prepare stage to send on itself.
    fn take(&self, file: ToExtract) -> Result<Option<Self::Change>, Stopped>;
}

/// Whoever takes changed files has stopped.
pub(super) struct Stopped;

/// A run: changed files go to the extract threads, which send what they make of them.
impl ChangedFiles for crossbeam_channel::Sender<ToExtract> {
    type Change = Extracted;

    fn take(&self, file: ToExtract) -> Result<Option<Extracted>, Stopped> {
        self.send(file).map(|()| None).map_err(|_| Stopped)
    }
}

/// Planning (a dry run, or a job queued for workers): a changed file is only named.
pub(super) struct Planning;

impl ChangedFiles for Planning {
    type Change = PlannedChange;

    fn take(&self, file: ToExtract) -> Result<Option<PlannedChange>, Stopped> {
        let ToExtract { hashed, previous } = file;
        let is_new = previous.is_none_or(|p| p.status == FileStatus::Deleted);
        Ok(Some(PlannedChange { path: hashed.entry.path_text, extension: hashed.entry.extension, is_new }))
    }
}

impl<Changed: ChangedFiles> Preparer<'_, Changed> {
    /// Judges each walked item against `known`, the catalog's rows read alongside the walk:
    /// the rows no walked path takes have vanished. Runs on a thread of its own, outside the
    /// runtime (see [`KnownFiles::read`]).
    pub(super) fn run(
        &self,
        walked: impl IntoIterator<Item = ScanItem>,
        mut known: KnownFiles,
        out: &crossbeam_channel::Sender<Outcome<Changed::Change>>,
    ) -> Result<()> {
        let Self { settings, fingerprint, counters, cancel, changed } = *self;
        // The stages after this one stop at a cancel, and then a send that finds them gone is
        // no error: the walk stops at its next entry.
        let stopped = |stage: &str| match cancel.load(Ordering::SeqCst) {
            true => Ok(()),
            false => Err(anyhow::anyhow!("the {stage} stage stopped")),
        };
        let send = |outcome| out.send(outcome).or_else(|_| stopped("embed"));
        // Entries the walk could not read, with why: nothing beneath them was looked at.
        let mut unwalked: Vec<(String, String)> = Vec::new();
        // Links the walk did not follow: what lies beneath them is out of scope.
        let mut unfollowed: Vec<String> = Vec::new();
        for item in walked {
            if cancel.load(Ordering::SeqCst) {
                return Ok(());
            }
            let entry = match item {
                ScanItem::Problem { path_text, reason } => {
                    unwalked.push((path_text.clone(), reason.clone()));
                    send(Outcome::ScanProblem(FailedFile { path: path_text, reason }))?;
                    continue;
                }
                ScanItem::Skipped { path_text, reason } => {
                    unfollowed.push(path_text.clone());
                    send(Outcome::ScanNote(FailedFile { path: path_text, reason }))?;
                    continue;
                }
                ScanItem::Rejected { path_text, extension, reason } => {
                    Counters::add(&counters.files_seen, 1);
                    let previous = known.take_aside(&path_text)?.map(|p| p.previous());
                    if previous.is_some_and(|p| p.status == FileStatus::Completed) {
                        send(Outcome::NotChecked(FailedFile { path: path_text, reason }))?;
                        continue;
                    }
                    let fingerprint = fingerprint.of(&extension);
                    let entry = FileEntry { path_text, size: 0, modified_ns: 0, extension };
                    send(Outcome::Failed { facts: facts_of(&entry, None, &fingerprint), previous, reason })?;
                    continue;
                }
                ScanItem::Filtered => {
                    Counters::add(&counters.filtered_out, 1);
                    continue;
                }
                ScanItem::File(entry) => entry,
            };
            Counters::add(&counters.files_seen, 1);
            let recorded = known.take(&entry.path_text)?;
            let settled = recorded.filter(|p| {
                !settings.full
                    && matches!(p.status, FileStatus::Completed | FileStatus::NoText)
                    && fingerprint.settles(p.logic_fingerprint, p.status, &entry.extension)
            });
            let fingerprint = fingerprint.of(&entry.extension);
            let fingerprint = fingerprint.as_str();
            let same_stat = |p: &Recorded| p.size == entry.size as i64 && p.modified_ns == entry.modified_ns;
            if settled.as_ref().is_some_and(same_stat) {
                Counters::add(&counters.unchanged, 1);
                Counters::add(&counters.files_done, 1);
                continue;
            }
            let given_up = recorded.filter(|p| {
                !settings.full
                    && p.status == FileStatus::Failed
                    && p.retry_count >= settings.max_retries
                    && same_stat(p)
                    && p.logic_fingerprint == Some(fingerprint)
            });
            if let Some(p) = given_up {
                let reason = format!(
                    "failed {} runs in a row, not retried until it changes (or with --full): {}",
                    p.retry_count,
                    p.error.unwrap_or("unknown error")
                );
                send(Outcome::NotRetried(FailedFile { path: entry.path_text, reason }))?;
                continue;
            }
            let previous = recorded.map(|p| p.previous());
            let hashed = match counters
                .stages
                .time(Stage::Hash, || hash::hash_file(entry.clone(), settings.max_file_bytes))
            {
                Ok(hashed) => {
                    Counters::add(&counters.files_read, 1);
                    Counters::add(&counters.bytes_read, hashed.bytes.len() as u64);
                    hashed
                }
                // A completed file that cannot be read now is not proven changed: keep it.
                Err(error @ hash::ReadError::Io(_)) if previous.is_some_and(|p| p.status == FileStatus::Completed) => {
                    send(Outcome::NotChecked(FailedFile { path: entry.path_text, reason: error.to_string() }))?;
                    continue;
                }
                Err(error) => {
                    let facts = facts_of(&entry, None, fingerprint);
                    send(Outcome::Failed { facts, previous, reason: error.to_string() })?;
                    continue;
                }
            };
            if settled.is_some_and(|p| p.same_content(&hashed.content_hash)) {
                send(Outcome::Restat {
                    path: entry.path_text,
                    size: entry.size as i64,
                    modified_ns: entry.modified_ns,
                })?;
                continue;
            }
            match changed.take(ToExtract { hashed, previous }) {
                Ok(Some(change)) => send(Outcome::Changed(change))?,
                Ok(None) => {}
                Err(_) => stopped("extract")?,
            }
        }
        counters.scan_finished.store(true, Ordering::SeqCst);
        // Only files this walk looked for, and could have seen, are proven gone.
        let beneath = |file: &KnownFile, entry: &str| file.path == entry || is_under(&file.path, entry);
        let Unwalked { rows: mut unseen, indexed_in_scope } = known.finish()?;
        unseen.retain(|f| !unfollowed.iter().any(|link| beneath(f, link)));
        let mut vanished = Vec::new();
        for file in unseen {
            match unwalked.iter().find(|(dir, _)| beneath(&file, dir)) {
                Some((dir, reason)) => send(Outcome::NotChecked(FailedFile {
                    reason: format!("not checked, {dir} could not be walked: {reason}"),
                    path: file.path,
                }))?,
                None => vanished.push(file),
            }
        }
        if RefusedDeletes::needed(vanished.len(), indexed_in_scope) && !settings.allow_mass_delete {
            let refused = RefusedDeletes { vanished: vanished.len() as u64, indexed: indexed_in_scope as u64 };
            send(Outcome::TooManyVanished { refused, paths: vanished.into_iter().map(|f| f.path).collect() })?;
        } else if !vanished.is_empty() {
            send(Outcome::Vanished(vanished))?;
        }
        Ok(())
    }
}

/// Whether `path` lies inside the directory `root`.
pub(crate) fn is_under(path: &str, root: &str) -> bool {
    let root = root.trim_end_matches('/');
    path.strip_prefix(root).is_some_and(|rest| rest.starts_with('/'))
}

/// What the extract threads share: the job's limits on one file, the extractor processes and
/// the chunker.
struct ExtractStage<'a> {
    settings: &'a JobSettings,
    extractors: &'a ExtractorPool,
    fingerprint: &'a LogicFingerprint,
    chunker: &'a LazyChunker,
    analyzer: &'a Analyzer,
    counters: &'a Counters,
    cancel: &'a AtomicBool,
}

impl ExtractStage<'_> {
    /// One extract thread: extracts and chunks the files in `queue` until it closes, behind
    /// the model in the scheduler's eyes. Once the job is cancelled it sends nothing more, so
    /// a file whose extraction or chunking was cut short is not failed.
    fn run(&self, queue: &crossbeam_channel::Receiver<ToExtract>, out: &ChunkSender) -> Result<()> {
        extract::run_behind_the_model();
        for ToExtract { hashed, previous } in queue {
            let outcome = self.prepare_file(hashed, previous)?;
            if self.cancel.load(Ordering::SeqCst) {
                return Ok(());
            }
            out.send(outcome)?;
        }
        Ok(())
    }

    /// Extracts and chunks one file within its limits: `settings.extraction.timeout` for the
    /// two together, and at most `settings.max_file_chunks` chunks.
    fn prepare_file(&self, hashed: HashedFile, previous: Option<PreviousRow>) -> Result<Outcome> {
        let Self { settings, extractors, fingerprint, chunker, analyzer, counters, cancel } = *self;
        let clock = &counters.stages;
        let timeout = settings.extraction.timeout;
        let started = Instant::now();
        let extension = hashed.entry.extension.clone();
        let mut facts = facts_of(&hashed.entry, Some(hashed.content_hash.clone()), &fingerprint.of(&extension));
        let extracted = extract::extract(&extension, &hashed.bytes, extractors, started + timeout, cancel);
        // OCR has a stage of its own, though it runs within the extraction.
        let ocr = extracted.as_ref().map(|document| document.ocr.clone()).unwrap_or_default();
        clock.add(Stage::Extract, started.elapsed().saturating_sub(ocr.time));
        clock.add(Stage::Ocr, ocr.time);
        Counters::add(&counters.ocr_pages, ocr.pages.len() as u64);
        // The bytes are no longer needed: the chunks are made from the document's text.
        drop(hashed);
        Ok(match extracted {
            Ok(document) => {
                if document.ocr.unread > 0 {
                    Counters::add(&counters.ocr_unread_files, 1);
                }
                facts.logic_fingerprint = fingerprint.recorded(&extension, &document.ocr, true);
                let chunker = chunker.get()?;
                // OCR's pages had time limits of their own.
                let time = FileTime { limit: timeout, spent: started.elapsed().saturating_sub(ocr.time) };
                let limits = ChunkLimits { time: Some(time), max_chunks: settings.max_file_chunks, cancel };
                // A file stopped by a cancel fails here like one whose extraction was cut short,
                // and like it is dropped by the caller, which sees the cancel too.
                let chunks = match clock.time(Stage::Chunk, || chunker.chunk_within(&document, &limits)) {
                    Ok(chunks) => chunks,
                    Err(stop) => return Ok(Outcome::Failed { facts, previous, reason: stop.to_string() }),
                };
                if chunks.is_empty() {
                    let reason = extract::ExtractError::NoText.to_string();
                    return Ok(Outcome::Changed(Extracted::NoText { facts, previous, reason }));
                }
                let sparse =
                    clock.time(Stage::Sparse, || chunks.iter().map(|c| analyzer.document(&c.content)).collect());
                Outcome::Changed(Extracted::Embedded(EmbeddedFile {
                    prepared: PreparedFile { facts, previous, chunks, sparse },
                    vectors: Vec::new(),
                }))
            }
            Err(error @ (extract::ExtractError::NoText | extract::ExtractError::Empty)) => {
                facts.logic_fingerprint = fingerprint.recorded(&extension, &ocr, false);
                Outcome::Changed(Extracted::NoText { facts, previous, reason: error.to_string() })
            }
            Err(error @ extract::ExtractError::NeedsOcr(unread)) => {
                Counters::add(&counters.ocr_unread_files, 1);
                let unread = extract::OcrTally { unread, ..extract::OcrTally::default() };
                facts.logic_fingerprint = fingerprint.recorded(&extension, &unread, false);
                Outcome::Changed(Extracted::NoText { facts, previous, reason: error.to_string() })
            }
            Err(error @ extract::ExtractError::NotText(_)) => {
                Outcome::Changed(Extracted::NotText { facts, previous, reason: error.to_string() })
            }
            Err(extract::ExtractError::NoExtractor(reason)) => anyhow::bail!("{reason}"),
            Err(error) => Outcome::Failed { facts, previous, reason: error.to_string() },
        })
    }
}

/// How many chunks may wait between the prepare and embed stages, besides the embed stage's
/// own window: the queue is bounded by what its files hold, not by their count, so a few
/// huge text files cannot queue gigabytes.
pub(super) const PREPARED_CHUNKS: usize = 2048;

/// The chunks waiting between the prepare and embed stages. A file larger than the whole
/// budget is let through alone.
pub(super) struct ChunkBudget {
    limit: usize,
    /// Chunks sent and not yet taken, and whether the taker has stopped.
    state: std::sync::Mutex<(usize, bool)>,
    taken: std::sync::Condvar,
}

impl ChunkBudget {
    pub(super) fn new(limit: usize) -> Self {
        Self { limit, state: std::sync::Mutex::new((0, false)), taken: std::sync::Condvar::new() }
    }

    /// Waits until `chunks` more fit, or the taker has stopped.
    fn reserve(&self, chunks: usize) {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while state.0 > 0 && state.0 + chunks > self.limit && !state.1 {
            state = self.taken.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        state.0 += chunks;
    }

    fn release(&self, chunks: usize) {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.0 = state.0.saturating_sub(chunks);
        self.taken.notify_all();
    }

    pub(super) fn close(&self) {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).1 = true;
        self.taken.notify_all();
    }
}

/// The chunks an outcome carries towards the model.
fn chunks_in(outcome: &Outcome) -> usize {
    match outcome {
        Outcome::Changed(Extracted::Embedded(file)) => file.prepared.chunks.len(),
        _ => 0,
    }
}

/// The prepare side of the queue to the embed stage, within its [`ChunkBudget`].
struct ChunkSender<'a> {
    sender: crossbeam_channel::Sender<Outcome>,
    budget: &'a ChunkBudget,
}

impl ChunkSender<'_> {
    fn send(&self, outcome: Outcome) -> Result<()> {
        self.budget.reserve(chunks_in(&outcome));
        self.sender.send(outcome).map_err(|_| anyhow::anyhow!("the embed stage stopped"))
    }
}

/// The embed side of the queue: taking an outcome frees its chunks' room.
pub(super) struct ChunkReceiver<'a> {
    pub(super) receiver: crossbeam_channel::Receiver<Outcome>,
    pub(super) budget: &'a ChunkBudget,
}

impl ChunkReceiver<'_> {
    /// The next outcome, waiting for one; `None` once every sender is gone.
    pub(super) fn recv(&self) -> Option<Outcome> {
        self.receiver.recv().ok().inspect(|outcome| self.budget.release(chunks_in(outcome)))
    }

    /// The next outcome if one is ready.
    pub(super) fn try_recv(&self) -> Option<Outcome> {
        self.receiver.try_recv().ok().inspect(|outcome| self.budget.release(chunks_in(outcome)))
    }
}

/// The chunker, built by the first file that needs it: building it parses the model's
/// tokenizer, which a re-run with nothing to embed never needs.
struct LazyChunker {
    model: ModelInfo,
    chunk_size: usize,
    chunk_overlap: usize,
    built: OnceLock<Result<Chunker, String>>,
}

impl LazyChunker {
    fn get(&self) -> Result<&Chunker> {
        let built = self.built.get_or_init(|| {
            let tokenizer = self.model.tokenizer().map_err(|e| format!("{e:#}"))?;
            let max_sequence = self.model.max_passage_sequence().map_err(|e| format!("{e:#}"))?;
            Chunker::new(&tokenizer, self.chunk_size, self.chunk_overlap, max_sequence).map_err(|e| format!("{e:#}"))
        });
        built.as_ref().map_err(|e| anyhow::anyhow!("{e}"))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_chunk_budget_holds_senders_until_chunks_are_taken() {
        let budget = Arc::new(ChunkBudget::new(10));
        budget.reserve(25); // a file larger than the whole budget goes alone
        let waiting = {
            let budget = budget.clone();
            std::thread::spawn(move || budget.reserve(1))
        };
        std::thread::sleep(Duration::from_millis(200));
        assert!(!waiting.is_finished(), "no room until the large file is taken");
        budget.release(25);
        waiting.join().unwrap();
        budget.reserve(9);
        let after_close = {
            let budget = budget.clone();
            std::thread::spawn(move || budget.reserve(5))
        };
        budget.close();
        after_close.join().unwrap();
    }

    #[test]
    fn paths_under_a_root() {
        assert!(is_under("/docs/a.txt", "/docs"));
        assert!(is_under("/docs/sub/a.txt", "/docs/"));
        assert!(!is_under("/docs2/a.txt", "/docs"));
        assert!(!is_under("/other/a.txt", "/docs"));
    }
}
