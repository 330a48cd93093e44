//! # Extractor processes
//!
//! In: a file's extension and bytes. Out: its [`Document`], or an [`ExtractError`], made by a
//! child process (`ingest extractor`), so that a parser that hangs, aborts, overflows its
//! stack or exhausts memory fails its own file and nothing else.
//!
//! [`ExtractorPool`] starts up to `processes` children as calls need them and gives each call an
//! idle one. A call waits at most `timeout`: then the child is killed (SIGKILL), reaped, and
//! replaced by the next call that needs one. A child that dies mid-file is reported by cause:
//! stack overflow, out of memory (its address space is capped with `RLIMIT_AS`; the reason
//! names the limit and `--extract-memory`, which raises it), or the signal or status it died
//! with. Children die with the pool (on drop) and with this process (`PR_SET_PDEATHSIG`), even
//! when it is killed with SIGKILL.
//!
//! [`serve`] is the child's side: one request at a time, until stdin closes.
//!
//! ## Framing
//!
//! A *field* is a little-endian `u64` length followed by that many bytes.
//!
//! - Request (parent → child): field `extension`, field `bytes` (the file's contents).
//! - Response (child → parent): a tag byte, a byte, then fields:
//!   `0`, `is_markdown` (0 or 1), field `text`, field `title` (empty for none), then the
//!   anchors: a little-endian `u64` count and, for each, a `u64` byte offset, a kind byte
//!   (`0` page, `1` sheet, `2` slide, `3` heading) and a field (a `u32` for pages and
//!   slides, the name for sheets and headings), then what OCR did: a `u64` count of pages
//!   it read and each page as a `u32`, the nanoseconds it took (`u64`) and the pages it
//!   was not asked to read (`u32`), for a document; or
//!   `1`, the [`ExtractError`] kind, field `message` for a reason (for a file its format's
//!   extractor cannot read: the format's name, a newline, the reason).
//! - Before its response, the child may say, any number of times, that it begins reading a
//!   page by OCR: `2`, `0`, an empty field. Each such word gives the file the pool's whole
//!   timeout again from then: `--file-timeout` bounds the parsing and each page's OCR, not
//!   all of a long scan together (at most `--max-ocr-pages` pages are read).
//!
//! The request carries the file's bytes rather than its path: the child extracts exactly the
//! bytes whose hash the catalog records, even if the file changes meanwhile, and the parent
//! has read them already.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::{Anchor, Document, ExtractError, Format, OcrRequest, OcrTally, Place};

/// The hidden subcommand that runs [`serve`].
pub const EXTRACTOR_SUBCOMMAND: &str = "extractor";

/// How often a call waiting for its child looks at the cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(100);

/// How much of a child's stderr is kept to tell why it died.
const STDERR_TAIL_BYTES: usize = 8192;

/// How the pool runs its children.
#[derive(Debug, Clone)]
pub struct ExtractorSettings {
    /// The `ingest` binary, run as `PROGRAM extractor --memory-limit MIB --ocr MODE
    /// --ocr-languages LANGUAGES --max-ocr-pages N`.
    pub program: PathBuf,
    /// How long one file may take, its extraction and then its chunking together; a child
    /// still busy then is killed.
    pub timeout: Duration,
    /// Each child's address space (`RLIMIT_AS`), in MiB.
    pub memory_limit_mib: u64,
    /// Children at most, hence files extracted at once.
    pub processes: usize,
    /// What the children do with scanned pages and images.
    pub ocr: OcrRequest,
}

/// Child processes that extract files (PDF, DOCX, HTML, spreadsheets, ...), shared by the threads that call
/// [`ExtractorPool::extract`].
pub struct ExtractorPool {
    settings: ExtractorSettings,
    /// Idle children, and how many are alive: at most `settings.processes`.
    slots: Mutex<Slots>,
    /// Signalled when a child goes back to `slots` or ends, for calls waiting for one.
    returned: Condvar,
    spawner: Spawner,
}

struct Slots {
    idle: Vec<ExtractorProcess>,
    live: usize,
}

impl ExtractorPool {
    /// A pool with no children yet: they start as calls need them.
    pub fn new(settings: ExtractorSettings) -> anyhow::Result<Self> {
        anyhow::ensure!(settings.processes > 0, "an extractor pool needs at least one process");
        let spawner = Spawner::new(&settings.program, settings.memory_limit_mib, &settings.ocr)
            .context("starting the thread that starts extractor processes")?;
        Ok(Self { settings, slots: Mutex::new(Slots { idle: Vec::new(), live: 0 }), returned: Condvar::new(), spawner })
    }

    /// Extracts one file in a child process, waiting at most the pool's timeout. Setting
    /// `cancel` stops the wait (and the child) early.
    pub fn extract(&self, extension: &str, bytes: &[u8], cancel: &AtomicBool) -> Result<Document, ExtractError> {
        self.extract_until(extension, bytes, Instant::now() + self.settings.timeout, cancel)
    }

    /// Extracts one file in a child process, waiting until `deadline` at most: the end of the
    /// time its file was given as a whole, of which extraction is one part.
    pub fn extract_until(
        &self,
        extension: &str,
        bytes: &[u8],
        deadline: Instant,
        cancel: &AtomicBool,
    ) -> Result<Document, ExtractError> {
        let format_name = Format::from_extension(extension).name();
        let mut process = self.take().map_err(|error| {
            ExtractError::NoExtractor(format!("cannot start the {format_name} extractor: {error:#}"))
        })?;
        match process.run(extension, bytes, deadline, self.settings.timeout, cancel) {
            Ok(result) => {
                self.put_back(process);
                result
            }
            Err(failure) => {
                let (status, stderr) = process.stop();
                drop(process);
                self.release_slot();
                let what = match failure {
                    Failure::TimedOut => format!(
                        "timed out after {} s; raise --file-timeout to give such files more time",
                        self.settings.timeout.as_secs_f64()
                    ),
                    Failure::Cancelled => "was stopped: the job is cancelled".to_string(),
                    Failure::Ended(error) if died(&error) => {
                        crash_cause(status, &stderr, self.settings.memory_limit_mib)
                    }
                    Failure::Ended(error) => format!("failed ({error})"),
                };
                Err(ExtractError::Extractor(format!("{format_name} extractor {what}")))
            }
        }
    }

    /// An idle child, a new one if fewer than `processes` live, or else the next one returned.
    fn take(&self) -> io::Result<ExtractorProcess> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            while let Some(mut process) = slots.idle.pop() {
                if process.is_alive() {
                    return Ok(process);
                }
                slots.live -= 1;
            }
            if slots.live < self.settings.processes {
                slots.live += 1;
                drop(slots);
                return self.spawner.start().inspect_err(|_| self.release_slot());
            }
            slots = self.returned.wait(slots).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn put_back(&self, process: ExtractorProcess) {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner).idle.push(process);
        self.returned.notify_one();
    }

    fn release_slot(&self) {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner).live -= 1;
        self.returned.notify_one();
    }
}

/// Starts children from one thread that lives as long as the pool: `PR_SET_PDEATHSIG` fires
/// when the *thread* that started a child ends, and a caller's thread may end while a child it
/// started serves another.
struct Spawner {
    requests: mpsc::Sender<mpsc::Sender<io::Result<ExtractorProcess>>>,
}

impl Spawner {
    fn new(program: &Path, memory_limit_mib: u64, ocr: &OcrRequest) -> io::Result<Self> {
        let (requests, incoming) = mpsc::channel::<mpsc::Sender<io::Result<ExtractorProcess>>>();
        let program = program.to_path_buf();
        let ocr = ocr.clone();
        std::thread::Builder::new().name("extractor-spawner".into()).spawn(move || {
            for reply in incoming {
                // A caller that stopped waiting drops the reply, and with it the new child.
                reply.send(ExtractorProcess::start(&program, memory_limit_mib, &ocr)).ok();
            }
        })?;
        Ok(Self { requests })
    }

    fn start(&self) -> io::Result<ExtractorProcess> {
        let stopped = || io::Error::other("the extractor spawner thread stopped");
        let (reply, answer) = mpsc::channel();
        self.requests.send(reply).map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }
}

/// Why a call got no response.
enum Failure {
    TimedOut,
    Cancelled,
    /// The child's pipes broke or its response was malformed.
    Ended(io::Error),
}

/// Whether a pipe error means the child is gone.
fn died(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::UnexpectedEof | io::ErrorKind::BrokenPipe)
}

/// What a child sends about the file it works on.
#[derive(Debug, PartialEq)]
enum Frame {
    /// It begins reading a page by OCR.
    OcrPage,
    /// Its response: the document, or why there is none.
    Response(Result<Document, ExtractError>),
}

/// What a reader thread decodes from a child's stdout; an error ends the stream.
type Responses = mpsc::Receiver<io::Result<Frame>>;

/// One child process and the threads that read its pipes. Dropping it kills the child.
struct ExtractorProcess {
    child: Child,
    stdin: BufWriter<ChildStdin>,
    responses: Responses,
    /// Ends with the child and returns the tail of its stderr.
    stderr: Option<JoinHandle<String>>,
}

impl ExtractorProcess {
    fn start(program: &Path, memory_limit_mib: u64, ocr: &OcrRequest) -> io::Result<Self> {
        let parent = std::process::id();
        let mut command = Command::new(program);
        command
            .args([EXTRACTOR_SUBCOMMAND, "--memory-limit", &memory_limit_mib.to_string()])
            .args(["--ocr", ocr.mode.as_str(), "--ocr-languages", &ocr.languages])
            .args(["--max-ocr-pages", &ocr.max_pages.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a Ctrl-C at the terminal reaches this process, which cancels
            // the job, and not the child, which would fail its file as crashed.
            .process_group(0);
        // SAFETY: `die_with_parent` runs between fork and exec and only makes async-signal-safe
        // calls, allocating nothing.
        unsafe { command.pre_exec(move || die_with_parent(parent)) };
        let mut child = command.spawn().map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", program.display())))?;
        match Self::attach(&mut child) {
            Ok((stdin, responses, stderr)) => Ok(Self { child, stdin, responses, stderr: Some(stderr) }),
            Err(error) => {
                // The child is useless without its pipes' readers.
                child.kill().ok();
                child.wait().ok();
                Err(error)
            }
        }
    }

    fn attach(child: &mut Child) -> io::Result<(BufWriter<ChildStdin>, Responses, JoinHandle<String>)> {
        let missing = || io::Error::other("the extractor's pipes were not set up");
        let stdin = child.stdin.take().ok_or_else(missing)?;
        let stdout = child.stdout.take().ok_or_else(missing)?;
        let mut stderr = child.stderr.take().ok_or_else(missing)?;
        let (sender, responses) = mpsc::channel();
        std::thread::Builder::new().name("extractor-out".into()).spawn(move || {
            let mut stdout = BufReader::new(stdout);
            loop {
                let response = read_frame(&mut stdout);
                let ended = response.is_err();
                if sender.send(response).is_err() || ended {
                    return;
                }
            }
        })?;
        let stderr = std::thread::Builder::new().name("extractor-err".into()).spawn(move || {
            let mut tail = Vec::new();
            let mut buffer = [0u8; 4096];
            while let Ok(read @ 1..) = stderr.read(&mut buffer) {
                tail.extend_from_slice(&buffer[..read]);
                tail.drain(..tail.len().saturating_sub(STDERR_TAIL_BYTES));
            }
            String::from_utf8_lossy(&tail).into_owned()
        })?;
        Ok((BufWriter::new(stdin), responses, stderr))
    }

    fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends one file and waits for its response until `deadline`, or, once the child
    /// begins a page of OCR, until `per_page` after the latest page began, if later.
    fn run(
        &mut self,
        extension: &str,
        bytes: &[u8],
        mut deadline: Instant,
        per_page: Duration,
        cancel: &AtomicBool,
    ) -> Result<Result<Document, ExtractError>, Failure> {
        write_request(&mut self.stdin, extension, bytes).map_err(Failure::Ended)?;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now()).min(CANCEL_POLL);
            match self.responses.recv_timeout(wait) {
                Ok(Ok(Frame::OcrPage)) => deadline = deadline.max(Instant::now() + per_page),
                Ok(Ok(Frame::Response(response))) => return Ok(response),
                Ok(Err(error)) => return Err(Failure::Ended(error)),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(Failure::Ended(io::ErrorKind::UnexpectedEof.into()))
                }
                Err(mpsc::RecvTimeoutError::Timeout) if cancel.load(Ordering::SeqCst) => {
                    return Err(Failure::Cancelled)
                }
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() >= deadline => return Err(Failure::TimedOut),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// Kills and reaps the child: how it ended, and the tail of its stderr.
    fn stop(&mut self) -> (Option<ExitStatus>, String) {
        // Fails only when the child has exited already; the wait reaps it either way.
        self.child.kill().ok();
        let status = self.child.wait().ok();
        let stderr = self.stderr.take().and_then(|reader| reader.join().ok()).unwrap_or_default();
        (status, stderr)
    }
}

impl Drop for ExtractorProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// In the child, between fork and exec: asks for SIGKILL when the parent dies, and gives up
/// if it has died already.
fn die_with_parent(parent: u32) -> io::Result<()> {
    // SAFETY: prctl and getppid are async-signal-safe and touch no memory of this process.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::getppid() as u32 != parent {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
    }
    Ok(())
}

/// Why a child died, from its exit and its last words on stderr (the Rust runtime reports a
/// stack overflow and a failed allocation there before aborting): "crashed (stack overflow)",
/// "crashed (killed by signal 6)", or, for an allocation its address space of
/// `memory_limit_mib` MiB could not hold, that it ran out of memory, with the limit and the
/// flag that raises it.
fn crash_cause(status: Option<ExitStatus>, stderr: &str, memory_limit_mib: u64) -> String {
    if stderr.contains("has overflowed its stack") {
        return "crashed (stack overflow)".to_string();
    }
    if stderr.contains("memory allocation of") {
        return format!(
            "ran out of memory: it needed more than its {memory_limit_mib} MiB (--extract-memory); \
             raise --extract-memory to read such files"
        );
    }
    let exit = match status {
        Some(status) => match (status.signal(), status.code()) {
            (Some(signal), _) => format!("killed by signal {signal}"),
            (None, Some(code)) => format!("exited with status {code}"),
            (None, None) => format!("ended: {status}"),
        },
        None => "its exit status could not be read".to_string(),
    };
    format!("crashed ({exit})")
}

/// The child's side: sets the memory limit, then answers requests on stdin, one at a time,
/// reading scans as `ocr` asks, until stdin closes.
pub fn serve(memory_limit_mib: u64, ocr: &OcrRequest) -> anyhow::Result<()> {
    super::run_behind_the_model();
    limit_address_space(memory_limit_mib)
        .with_context(|| format!("setting the extractor's memory limit to {memory_limit_mib} MiB"))?;
    let responses = take_stdout().context("taking stdout for responses")?;
    super::ocr::remove_spooled_leftovers();
    let mut input = io::stdin().lock();
    let output = std::sync::Arc::new(Mutex::new(BufWriter::new(responses)));
    let pages = output.clone();
    super::ocr::on_each_page(Box::new(move || {
        // A word that cannot be written is a parent gone: the response's write says so.
        write_ocr_page(&mut *pages.lock().unwrap_or_else(PoisonError::into_inner)).ok();
    }));
    while let Some((extension, bytes)) = read_request(&mut input).context("reading a request")? {
        #[cfg(feature = "fault-injection")]
        fault::inject(&bytes);
        let result = super::extract_in_process(&extension, &bytes, ocr);
        let mut output = output.lock().unwrap_or_else(PoisonError::into_inner);
        write_response(&mut *output, &result).context("writing a response")?;
    }
    Ok(())
}

fn limit_address_space(mib: u64) -> io::Result<()> {
    let bytes = mib.saturating_mul(1 << 20) as libc::rlim_t;
    let limit = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
    // SAFETY: setrlimit reads the struct it is given and changes only this process's limit.
    if unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Keeps stdout for responses alone, and points file descriptor 1 at stderr, so that a
/// parser printing to stdout cannot corrupt the framing.
fn take_stdout() -> io::Result<File> {
    // SAFETY: dup and dup2 only duplicate descriptors; the duplicate is owned by the returned
    // File alone.
    unsafe {
        let responses = libc::dup(libc::STDOUT_FILENO);
        if responses < 0 {
            return Err(io::Error::last_os_error());
        }
        let responses = File::from_raw_fd(responses);
        if libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(responses)
    }
}

fn write_field(output: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    output.write_all(&(bytes.len() as u64).to_le_bytes())?;
    output.write_all(bytes)
}

/// Reads one field. Its buffer grows as bytes arrive, so a corrupt length cannot make it
/// allocate more than the peer sends.
fn read_field(input: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut length = [0u8; 8];
    input.read_exact(&mut length)?;
    let length = u64::from_le_bytes(length);
    let mut bytes = Vec::new();
    input.take(length).read_to_end(&mut bytes)?;
    if bytes.len() as u64 != length {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(bytes)
}

fn utf8(bytes: Vec<u8>) -> io::Result<String> {
    String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn write_request(output: &mut impl Write, extension: &str, bytes: &[u8]) -> io::Result<()> {
    write_field(output, extension.as_bytes())?;
    write_field(output, bytes)?;
    output.flush()
}

/// The next request, or `None` when the input ends between requests.
fn read_request(input: &mut impl BufRead) -> io::Result<Option<(String, Vec<u8>)>> {
    if input.fill_buf()?.is_empty() {
        return Ok(None);
    }
    let extension = utf8(read_field(input)?)?;
    Ok(Some((extension, read_field(input)?)))
}

const RESPONSE_DOCUMENT: u8 = 0;
const RESPONSE_ERROR: u8 = 1;
const OCR_PAGE: u8 = 2;

fn write_ocr_page(output: &mut impl Write) -> io::Result<()> {
    output.write_all(&[OCR_PAGE, 0])?;
    write_field(output, b"")?;
    output.flush()
}

fn write_response(output: &mut impl Write, result: &Result<Document, ExtractError>) -> io::Result<()> {
    match result {
        Ok(document) => {
            output.write_all(&[RESPONSE_DOCUMENT, u8::from(document.is_markdown)])?;
            write_field(output, document.text.as_bytes())?;
            write_field(output, document.title.as_deref().unwrap_or_default().as_bytes())?;
            output.write_all(&(document.anchors.len() as u64).to_le_bytes())?;
            for anchor in &document.anchors {
                output.write_all(&(anchor.offset as u64).to_le_bytes())?;
                let (kind, value): (u8, &[u8]) = match &anchor.place {
                    Place::Page(page) => (ANCHOR_PAGE, &page.to_le_bytes()),
                    Place::Sheet(name) => (ANCHOR_SHEET, name.as_bytes()),
                    Place::Slide(slide) => (ANCHOR_SLIDE, &slide.to_le_bytes()),
                    Place::Heading(text) => (ANCHOR_HEADING, text.as_bytes()),
                };
                output.write_all(&[kind])?;
                write_field(output, value)?;
            }
            let ocr = &document.ocr;
            output.write_all(&(ocr.pages.len() as u64).to_le_bytes())?;
            for page in &ocr.pages {
                output.write_all(&page.to_le_bytes())?;
            }
            output.write_all(&(ocr.time.as_nanos() as u64).to_le_bytes())?;
            output.write_all(&ocr.unread.to_le_bytes())?;
        }
        Err(error) => {
            let (kind, message) = error_to_wire(error);
            output.write_all(&[RESPONSE_ERROR, kind])?;
            write_field(output, message.as_bytes())?;
        }
    }
    output.flush()
}

const ANCHOR_PAGE: u8 = 0;
const ANCHOR_SHEET: u8 = 1;
const ANCHOR_SLIDE: u8 = 2;
const ANCHOR_HEADING: u8 = 3;

fn invalid_data(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn read_u64(input: &mut impl Read) -> io::Result<u64> {
    let mut bytes = [0u8; 8];
    input.read_exact(&mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}

fn read_u32(input: &mut impl Read) -> io::Result<u32> {
    let mut bytes = [0u8; 4];
    input.read_exact(&mut bytes)?;
    Ok(u32::from_le_bytes(bytes))
}

fn read_frame(input: &mut impl Read) -> io::Result<Frame> {
    let mut head = [0u8; 2];
    input.read_exact(&mut head)?;
    let field = utf8(read_field(input)?)?;
    let response = match head {
        [OCR_PAGE, 0] => return Ok(Frame::OcrPage),
        [RESPONSE_DOCUMENT, markdown @ (0 | 1)] => {
            let title = utf8(read_field(input)?)?;
            let mut count = [0u8; 8];
            input.read_exact(&mut count)?;
            // Pushed one by one: a corrupt count cannot make it allocate.
            let mut anchors = Vec::new();
            for _ in 0..u64::from_le_bytes(count) {
                let mut offset = [0u8; 8];
                input.read_exact(&mut offset)?;
                let mut kind = [0u8; 1];
                input.read_exact(&mut kind)?;
                let value = read_field(input)?;
                let number = || {
                    <[u8; 4]>::try_from(value.as_slice())
                        .map(u32::from_le_bytes)
                        .map_err(|_| invalid_data(format!("an anchor number of {} bytes", value.len())))
                };
                let place = match kind[0] {
                    ANCHOR_PAGE => Place::Page(number()?),
                    ANCHOR_SHEET => Place::Sheet(utf8(value)?),
                    ANCHOR_SLIDE => Place::Slide(number()?),
                    ANCHOR_HEADING => Place::Heading(utf8(value)?),
                    other => return Err(invalid_data(format!("unknown anchor kind {other}"))),
                };
                anchors.push(Anchor { offset: u64::from_le_bytes(offset) as usize, place });
            }
            let title = (!title.is_empty()).then_some(title);
            let mut ocr = OcrTally::default();
            for _ in 0..read_u64(input)? {
                ocr.pages.push(read_u32(input)?);
            }
            ocr.time = Duration::from_nanos(read_u64(input)?);
            ocr.unread = read_u32(input)?;
            Ok(Document { text: field, is_markdown: markdown == 1, title, anchors, ocr })
        }
        [RESPONSE_ERROR, kind] => Err(error_from_wire(kind, field)?),
        [tag, value] => return Err(invalid_data(format!("malformed response header [{tag}, {value}]"))),
    };
    Ok(Frame::Response(response))
}

fn error_to_wire(error: &ExtractError) -> (u8, std::borrow::Cow<'_, str>) {
    match error {
        ExtractError::Empty => (0, "".into()),
        ExtractError::Binary(message) => (1, message.into()),
        ExtractError::Pdf(message) => (2, message.into()),
        ExtractError::Invalid { format, reason } => (3, format!("{}\n{reason}", format.name()).into()),
        ExtractError::NoText => (4, "".into()),
        ExtractError::NotText(message) => (5, message.into()),
        ExtractError::Extractor(message) | ExtractError::NoExtractor(message) => (6, message.into()),
        ExtractError::NeedsOcr(pages) => (7, pages.to_string().into()),
        ExtractError::Ocr(message) => (8, message.into()),
    }
}

fn error_from_wire(kind: u8, message: String) -> io::Result<ExtractError> {
    Ok(match kind {
        0 => ExtractError::Empty,
        1 => ExtractError::Binary(message),
        2 => ExtractError::Pdf(message),
        3 => {
            let (name, reason) = message.split_once('\n').unwrap_or((message.as_str(), ""));
            let format = Format::from_name(name).ok_or_else(|| invalid_data(format!("unknown format {name:?}")))?;
            format.invalid(reason)
        }
        4 => ExtractError::NoText,
        5 => ExtractError::NotText(message),
        6 => ExtractError::Extractor(message),
        7 => ExtractError::NeedsOcr(message.parse().map_err(|_| invalid_data(format!("a page count of {message:?}")))?),
        8 => ExtractError::Ocr(message),
        other => return Err(invalid_data(format!("unknown extraction error kind {other}"))),
    })
}

/// Faults for tests, in builds with the `fault-injection` feature only (`scripts/test.sh`
/// builds with it; the quickstart's build never does): with `INGEST_EXTRACT_FAULT` set, a file containing
/// `INGEST-FAULT:hang`, `INGEST-FAULT:abort`, `INGEST-FAULT:alloc` or `INGEST-FAULT:stack`
/// makes the child hang, abort, allocate without bound, or recurse until its stack
/// overflows, before any parser sees it.
#[cfg(feature = "fault-injection")]
mod fault {
    use std::hint::black_box;
    use std::time::Duration;

    const ENV: &str = "INGEST_EXTRACT_FAULT";

    pub fn inject(bytes: &[u8]) {
        if std::env::var_os(ENV).is_none() {
            return;
        }
        let marked = |fault: &str| {
            let marker = format!("INGEST-FAULT:{fault}");
            bytes.windows(marker.len()).any(|window| window == marker.as_bytes())
        };
        if marked("hang") {
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        if marked("abort") {
            std::process::abort();
        }
        if marked("alloc") {
            let mut hoard = Vec::new();
            loop {
                hoard.push(black_box(vec![0u8; 64 << 20]));
            }
        }
        if marked("stack") {
            black_box(recurse(0));
        }
    }

    fn recurse(depth: u64) -> u64 {
        let frame = black_box([depth as u8; 4096]);
        if black_box(depth) == u64::MAX {
            return 0;
        }
        recurse(depth + 1) + u64::from(frame[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response_round_trip(result: Result<Document, ExtractError>) {
        let mut wire = Vec::new();
        write_ocr_page(&mut wire).unwrap();
        write_response(&mut wire, &result).unwrap();
        let mut input = wire.as_slice();
        assert_eq!(read_frame(&mut input).unwrap(), Frame::OcrPage);
        assert_eq!(read_frame(&mut input).unwrap(), Frame::Response(result));
    }

    #[test]
    fn responses_round_trip() {
        response_round_trip(Ok(Document::plain("héllo\0world".into())));
        response_round_trip(Ok(Document { text: "# Title".into(), is_markdown: true, ..Document::default() }));
        response_round_trip(Ok(Document {
            text: "Budget\nrent\t1200\n".into(),
            is_markdown: false,
            title: Some("Household".into()),
            anchors: vec![
                Anchor { offset: 0, place: Place::Page(1) },
                Anchor { offset: 3, place: Place::Sheet("Budget".into()) },
                Anchor { offset: 7, place: Place::Slide(12) },
                Anchor { offset: 9, place: Place::Heading("Rent".into()) },
            ],
            ocr: OcrTally { pages: vec![1, 4], time: Duration::from_millis(1500), unread: 2 },
        }));
        for error in [
            ExtractError::Empty,
            ExtractError::Binary("it contains NUL bytes".into()),
            ExtractError::Pdf("parser failed: bad xref".into()),
            Format::Docx.invalid("the file is not a zip package"),
            Format::Xlsx.invalid("its part xl/workbook.xml is encrypted"),
            Format::Epub.invalid("it has no META-INF/container.xml\nor anything"),
            ExtractError::NoText,
            ExtractError::NotText("it contains NUL bytes".into()),
            ExtractError::Extractor("PDF extractor timed out after 60 s".into()),
            ExtractError::NeedsOcr(3),
            ExtractError::Ocr("page 2: tesseract was killed by signal 9".into()),
        ] {
            response_round_trip(Err(error));
        }
    }

    #[test]
    fn requests_round_trip_until_the_input_ends() {
        let mut wire = Vec::new();
        write_request(&mut wire, "pdf", b"%PDF-1.7 bytes").unwrap();
        write_request(&mut wire, "docx", b"").unwrap();
        let mut input = wire.as_slice();
        assert_eq!(read_request(&mut input).unwrap(), Some(("pdf".into(), b"%PDF-1.7 bytes".to_vec())));
        assert_eq!(read_request(&mut input).unwrap(), Some(("docx".into(), Vec::new())));
        assert_eq!(read_request(&mut input).unwrap(), None);
    }

    #[test]
    fn truncated_and_malformed_frames_are_errors() {
        let mut wire = Vec::new();
        write_response(&mut wire, &Ok(Document::plain("some text".into()))).unwrap();
        for cut in [1, 2, 9, wire.len() - 1] {
            let error = read_frame(&mut &wire[..cut]).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof, "cut at {cut}");
        }
        let error = read_request(&mut &wire[..wire.len() - 1]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);

        let mut bad_tag = wire.clone();
        bad_tag[0] = 7;
        assert_eq!(read_frame(&mut bad_tag.as_slice()).unwrap_err().kind(), io::ErrorKind::InvalidData);
        let mut bad_kind = Vec::new();
        write_response(&mut bad_kind, &Err(ExtractError::NoText)).unwrap();
        bad_kind[1] = 200;
        assert_eq!(read_frame(&mut bad_kind.as_slice()).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_corrupt_length_does_not_allocate_it() {
        let mut wire = u64::MAX.to_le_bytes().to_vec();
        wire.extend_from_slice(b"short");
        assert_eq!(read_field(&mut wire.as_slice()).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn crash_causes_read_the_runtime_report_then_the_exit() {
        let abort = ExitStatus::from_raw(libc::SIGABRT);
        let overflow = "\nthread 'main' has overflowed its stack\nfatal runtime error: stack overflow\n";
        assert_eq!(crash_cause(Some(abort), overflow, 1024), "crashed (stack overflow)");
        assert_eq!(
            crash_cause(Some(abort), "memory allocation of 67108864 bytes failed\n", 1024),
            "ran out of memory: it needed more than its 1024 MiB (--extract-memory); \
             raise --extract-memory to read such files"
        );
        assert_eq!(crash_cause(Some(abort), "", 1024), "crashed (killed by signal 6)");
        assert_eq!(crash_cause(Some(ExitStatus::from_raw(3 << 8)), "", 1024), "crashed (exited with status 3)");
    }
}
