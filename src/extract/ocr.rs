//! # OCR
//!
//! In: a PDF whose pages lack a text layer, or an image. Out: the text of those pages, read by
//! Tesseract (its command-line program, `tesseract`), after poppler's `pdftoppm` has rendered
//! each PDF page to a grey image; an [`OcrTally`] of the pages read and the time they took.
//!
//! Both programs come from Debian's packages (`./scripts/setup.sh --ocr`). The run looks for
//! them once ([`OcrEngine::find`]) and tells its extractor processes what to do with an
//! [`OcrRequest`]: `off` when OCR is off or missing, so that a page without text is counted
//! as unread rather than read. Each page is rendered at [`FULL_DPI`], lowered for pages so
//! large that the image would pass [`MAX_PIXELS`], and read by a `tesseract` run of its own
//! that finds the page's orientation first (a scan fed sideways reads as well as one fed
//! upright). Both programs run in the extractor process's address space limit and die with
//! it (`PR_SET_PDEATHSIG`), so the file's memory limit bounds them too; its time limit bounds
//! each page, as the extractor process tells its parent when a page begins ([`on_each_page`]).
//!
//! Which pages: in `auto` mode, a page whose text layer holds fewer than
//! [`MIN_CHARS_PER_SQUARE_INCH`] visible characters for its area and which shows an image
//! (a scan, a photograph of a page); in `force` mode, every page. A file needing more than
//! `max_pages` such pages fails before any is read.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use super::ExtractError;

/// The resolution pages are rendered at: Tesseract reads best at 300 dpi.
pub const FULL_DPI: f64 = 300.0;

/// The most pixels a rendered page may have (an A4 page at 300 dpi has 8.7 million): a
/// poster-sized page is rendered at a lower resolution rather than taking the memory.
pub const MAX_PIXELS: f64 = 40_000_000.0;

/// Images with a side shorter than this, or fewer pixels than [`MIN_IMAGE_PIXELS`], are
/// icons and buttons: not read.
pub const MIN_IMAGE_SIDE: usize = 24;
pub const MIN_IMAGE_PIXELS: f64 = 20_000.0;

/// Below this many visible characters per square inch of page, a page showing an image is
/// taken for a scan: about 23 characters on an A4 or letter page, where a page of prose holds
/// some 3,000.
pub const MIN_CHARS_PER_SQUARE_INCH: f64 = 0.25;

/// Whether pages and images are read by OCR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OcrMode {
    /// Never: a scanned page stays without text, and images are not indexed.
    Off,
    /// Pages without a text layer, and images.
    #[default]
    Auto,
    /// Every page, its text layer ignored, and images.
    Force,
}

impl OcrMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Auto => "auto",
            Self::Force => "force",
        }
    }
}

impl FromStr for OcrMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "off" => Ok(Self::Off),
            "auto" => Ok(Self::Auto),
            "force" => Ok(Self::Force),
            other => Err(format!("OCR mode must be auto, off or force (got {other:?})")),
        }
    }
}

/// The OCR programs found on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcrEngine {
    /// Tesseract's version, e.g. `5.3.0`.
    pub tesseract: String,
    /// poppler's version, e.g. `22.12.0`.
    pub renderer: String,
    /// The languages Tesseract has data for (`osd`, its orientation model, left out).
    pub languages: Vec<String>,
}

/// What installs the OCR programs.
pub const INSTALL_HINT: &str = "./scripts/setup.sh --ocr installs it";

impl OcrEngine {
    /// Looks for `tesseract` and `pdftoppm` on `PATH`: the engine, or one sentence saying
    /// what is missing.
    pub fn find() -> Result<Self, String> {
        let tesseract = program_output("tesseract", &["--version"])?;
        let tesseract = version_after(&tesseract, "tesseract ")
            .ok_or_else(|| "tesseract --version did not print a version".to_string())?;
        let renderer = program_output("pdftoppm", &["-v"])?;
        let renderer = version_after(&renderer, "pdftoppm version ")
            .ok_or_else(|| "pdftoppm -v did not print a version".to_string())?;
        let listed = program_output("tesseract", &["--list-langs"])?;
        let languages = listed
            .lines()
            .skip_while(|line| !line.starts_with("List of available languages"))
            .skip(1)
            .map(str::trim)
            .filter(|language| !language.is_empty() && *language != "osd")
            .map(str::to_string)
            .collect();
        Ok(Self { tesseract, renderer, languages })
    }

    /// The languages of `wanted` (`eng+deu`) Tesseract has no data for.
    pub fn missing_languages<'a>(&self, wanted: &'a str) -> Vec<&'a str> {
        wanted.split('+').filter(|language| !self.languages.iter().any(|have| have == language)).collect()
    }
}

/// The output (stdout, then stderr) of `program args`, or why it could not run.
fn program_output(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program).args(args).stdin(Stdio::null()).output().map_err(|error| {
        if error.kind() == std::io::ErrorKind::NotFound {
            format!("{program} is not installed")
        } else {
            format!("{program} cannot run: {error}")
        }
    })?;
    if !output.status.success() {
        return Err(format!("{program} {} failed ({})", args.join(" "), output.status));
    }
    Ok(format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
}

/// The word after `prefix` on the first line that starts with it.
fn version_after(output: &str, prefix: &str) -> Option<String> {
    output.lines().find_map(|line| line.trim().strip_prefix(prefix)?.split_whitespace().next().map(str::to_string))
}

/// A run's OCR: what was asked, and the engine this machine has for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcrSettings {
    pub mode: OcrMode,
    /// Tesseract's languages, `+`-separated as its `-l` takes them.
    pub languages: String,
    /// Pages one file may need read; a file needing more fails.
    pub max_pages: u32,
    /// The engine, or why there is none; not looked for when the mode is off.
    pub engine: Result<OcrEngine, String>,
}

impl OcrSettings {
    /// The settings of `mode`, looking for the engine unless OCR is off. Asking for languages
    /// the engine lacks, or forcing OCR without an engine, is refused with one sentence.
    pub fn new(mode: OcrMode, languages: String, max_pages: u32) -> Result<Self, String> {
        if languages.is_empty() || languages.split('+').any(|l| l.is_empty() || !l.bytes().all(is_language_byte)) {
            return Err(format!(
                "--ocr-languages takes Tesseract's language codes joined by +, e.g. eng+deu (got {languages:?})"
            ));
        }
        let engine = if mode == OcrMode::Off { Err("OCR is off (--ocr off)".to_string()) } else { OcrEngine::find() };
        match (&engine, mode) {
            (Ok(found), _) => {
                let missing = found.missing_languages(&languages);
                if !missing.is_empty() {
                    return Err(format!(
                        "Tesseract has no data for {}; OCR_LANGUAGES={languages} ./scripts/setup.sh --ocr installs it",
                        missing.join(", ")
                    ));
                }
            }
            (Err(why), OcrMode::Force) => return Err(format!("--ocr force needs OCR, but {why}; {INSTALL_HINT}")),
            (Err(_), _) => {}
        }
        Ok(Self { mode, languages, max_pages, engine })
    }

    /// Whether pages and images are read.
    pub fn reads(&self) -> bool {
        self.mode != OcrMode::Off && self.engine.is_ok()
    }

    /// Why pages needing OCR were left unread: OCR is off, or missing and how to install it.
    pub fn unread_reason(&self) -> String {
        match (&self.engine, self.mode) {
            (Ok(_), _) => "OCR is off (--ocr off)".to_string(),
            (Err(why), OcrMode::Off) => why.clone(),
            (Err(why), _) => format!("OCR is not available ({why}; {INSTALL_HINT})"),
        }
    }

    /// What the text of a page read by OCR depends on, for the files' logic fingerprint:
    /// the mode, the engine, its renderer and the languages; `None` when nothing is read.
    pub fn fingerprint(&self) -> Option<String> {
        let engine = self.engine.as_ref().ok().filter(|_| self.reads())?;
        let (mode, languages) = (self.mode.as_str(), &self.languages);
        Some(format!("ocr-{mode}:tesseract-{}/poppler-{}/{languages}", engine.tesseract, engine.renderer))
    }

    /// What the extractor processes are asked to do.
    pub fn request(&self) -> OcrRequest {
        OcrRequest {
            mode: if self.reads() { self.mode } else { OcrMode::Off },
            languages: self.languages.clone(),
            max_pages: self.max_pages,
        }
    }
}

fn is_language_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

/// What an extractor process does with pages that lack text: its mode (`off` when the run
/// has no engine), Tesseract's languages and the most pages one file may need read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcrRequest {
    pub mode: OcrMode,
    pub languages: String,
    pub max_pages: u32,
}

impl Default for OcrRequest {
    /// No OCR.
    fn default() -> Self {
        Self { mode: OcrMode::Off, languages: "eng".into(), max_pages: 0 }
    }
}

/// The pages of a file read by OCR, the time their reading took, and the pages that needed
/// it but were not read (OCR off or missing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OcrTally {
    /// Page numbers, from 1, in increasing order.
    pub pages: Vec<u32>,
    pub time: Duration,
    pub unread: u32,
}

/// A page of a PDF as the text layer gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct PageText {
    pub number: u32,
    /// The text layer's text, trimmed.
    pub text: String,
    /// The page's width and height, in points (1/72 inch).
    pub size: (f64, f64),
    /// Whether the page draws an image.
    pub shows_image: bool,
}

impl PageText {
    /// Whether, in `auto` mode, the page is taken for a scan.
    pub fn looks_scanned(&self) -> bool {
        let square_inches = (self.size.0 / 72.0) * (self.size.1 / 72.0);
        let visible = self.text.chars().filter(|c| !c.is_whitespace()).count();
        self.shows_image && (visible as f64) < (MIN_CHARS_PER_SQUARE_INCH * square_inches).max(8.0)
    }
}

/// What this process does as each page's OCR begins: the extractor process tells its parent,
/// which gives the file its time limit again for the page.
static PAGE_BEGINS: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>> = std::sync::OnceLock::new();

/// Sets what this process does as each page's OCR begins (once; later calls are ignored).
pub fn on_each_page(hook: Box<dyn Fn() + Send + Sync>) {
    PAGE_BEGINS.set(hook).ok();
}

fn page_begins() {
    if let Some(hook) = PAGE_BEGINS.get() {
        hook();
    }
}

/// Replaces the text of the pages `request` has read by OCR, rendering them from the PDF in
/// `pdf`; counts the pages that needed it when OCR is off.
pub fn read_scanned_pages(pdf: &[u8], pages: &mut [PageText], request: &OcrRequest) -> Result<OcrTally, ExtractError> {
    let wanted: Vec<usize> = (0..pages.len())
        .filter(|&i| match request.mode {
            OcrMode::Force => true,
            OcrMode::Auto | OcrMode::Off => pages[i].looks_scanned(),
        })
        .collect();
    let mut tally = OcrTally::default();
    if request.mode == OcrMode::Off || wanted.is_empty() {
        tally.unread = wanted.len() as u32;
        return Ok(tally);
    }
    if wanted.len() > request.max_pages as usize {
        return Err(ExtractError::Ocr(format!(
            "{} pages need OCR, more than --max-ocr-pages {}; raise it to read such files",
            wanted.len(),
            request.max_pages
        )));
    }
    let started = Instant::now();
    let file = SpooledPdf::write(pdf).map_err(|e| ExtractError::Ocr(format!("cannot spool the PDF to disk: {e}")))?;
    for index in wanted {
        page_begins();
        let page = &mut pages[index];
        let text = read_pdf_page(file.path(), page, &request.languages)
            .map_err(|reason| ExtractError::Ocr(format!("page {}: {reason}", page.number)))?;
        page.text = text;
        tally.pages.push(page.number);
    }
    tally.time = started.elapsed();
    Ok(tally)
}

/// The resolution a page of `size` points is rendered at: [`FULL_DPI`], or less when that
/// would pass [`MAX_PIXELS`].
pub fn render_dpi(size: (f64, f64)) -> f64 {
    let square_inches = (size.0.abs() / 72.0) * (size.1.abs() / 72.0);
    if square_inches <= 0.0 {
        return FULL_DPI;
    }
    FULL_DPI.min((MAX_PIXELS / square_inches).sqrt()).max(1.0).floor()
}

/// The text of one page, rendered by `pdftoppm` and piped into `tesseract`.
fn read_pdf_page(pdf: &std::path::Path, page: &PageText, languages: &str) -> Result<String, String> {
    let number = page.number.to_string();
    let dpi = render_dpi(page.size).to_string();
    let mut render = bounded(Command::new("pdftoppm"))
        .args(["-f", &number, "-l", &number, "-r", &dpi, "-gray", "-singlefile"])
        .arg(pdf)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start pdftoppm: {e}"))?;
    let image = render.stdout.take().ok_or("pdftoppm's output was not piped")?;
    let reading = read_image(Stdio::from(image), languages);
    let rendered = render.wait().map_err(|e| format!("waiting for pdftoppm: {e}"));
    // A reader that failed first broke the renderer's pipe: its own failure is the cause.
    let text = reading?;
    match rendered? {
        status if status.success() => Ok(text),
        status => Err(format!("pdftoppm {}", ended(status))),
    }
}

/// The text of an image file's bytes (PNG, JPEG, TIFF, WebP): every frame of a multi-page
/// TIFF, frames separated by a form feed.
pub fn read_image_bytes(bytes: &[u8], languages: &str) -> Result<String, String> {
    page_begins();
    let mut child = tesseract(Stdio::piped(), languages)?;
    let mut stdin = child.stdin.take().ok_or("tesseract's input was not piped")?;
    std::thread::scope(|scope| {
        // Written beside the read of its output, so that neither pipe fills while the other waits.
        let writer = scope.spawn(move || stdin.write_all(bytes));
        let text = collect(child);
        // A tesseract that stops reading early breaks the pipe: its own exit says why.
        writer.join().ok();
        text
    })
}

/// The text `tesseract` reads from `image`.
fn read_image(image: Stdio, languages: &str) -> Result<String, String> {
    collect(tesseract(image, languages)?)
}

/// `tesseract` reading an image from `input` in `languages`, with orientation detection,
/// its text to stdout; one thread, as the extractor processes are the parallelism.
fn tesseract(input: Stdio, languages: &str) -> Result<Child, String> {
    bounded(Command::new("tesseract"))
        .args(["stdin", "stdout", "-l", languages, "--psm", "1"])
        .env("OMP_THREAD_LIMIT", "1")
        .stdin(input)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start tesseract: {e}"))
}

/// The text a `tesseract` child printed, once it has ended well.
fn collect(mut child: Child) -> Result<String, String> {
    let mut text = String::new();
    let read = child.stdout.take().map(|mut out| out.read_to_string(&mut text));
    let status = child.wait().map_err(|e| format!("waiting for tesseract: {e}"))?;
    if !status.success() {
        return Err(format!("tesseract {}", ended(status)));
    }
    read.transpose().map_err(|e| format!("reading tesseract's output: {e}"))?;
    Ok(legible(&text))
}

/// `text` trimmed, or nothing when it holds no word of three letters: what Tesseract makes of
/// a picture without writing (`|`, `©`, `a`) is not text.
fn legible(text: &str) -> String {
    let word = |token: &str| token.chars().filter(|c| c.is_alphabetic()).count() >= 3;
    if text.split_whitespace().any(word) {
        text.trim().to_string()
    } else {
        String::new()
    }
}

/// How a program that failed ended.
fn ended(status: ExitStatus) -> String {
    match (status.signal(), status.code()) {
        (Some(signal), _) => format!("was killed by signal {signal}"),
        (None, Some(code)) => format!("exited with status {code}"),
        _ => format!("ended: {status}"),
    }
}

/// A command whose process dies with the extractor process (which its time limit kills) and
/// keeps its stderr to itself, where nothing reads it.
fn bounded(mut command: Command) -> Command {
    command.stdin(Stdio::null()).stderr(Stdio::null());
    // SAFETY: prctl is async-signal-safe and touches no memory of this process.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

/// How the names of spooled PDFs begin, before the process id of the extractor process.
const SPOOL_PREFIX: &str = "ingest-ocr-";

/// A PDF's bytes in a temporary file for `pdftoppm`, removed on drop; a file left by an
/// extractor process killed meanwhile (at its time limit) is named after its process id, and
/// removed by the next one ([`remove_spooled_leftovers`]).
struct SpooledPdf(std::path::PathBuf);

impl SpooledPdf {
    fn write(bytes: &[u8]) -> std::io::Result<Self> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!("{SPOOL_PREFIX}{}-{}.pdf", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let spooled = Self(std::env::temp_dir().join(name));
        std::fs::write(&spooled.0, bytes)?;
        Ok(spooled)
    }

    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for SpooledPdf {
    fn drop(&mut self) {
        std::fs::remove_file(&self.0).ok();
    }
}

/// Removes the spooled PDFs of extractor processes that no longer run: what a process killed
/// at its time limit left in the temporary directory. Best effort.
pub fn remove_spooled_leftovers() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) =
            name.to_str().and_then(|n| n.strip_prefix(SPOOL_PREFIX)).and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        let Ok(pid) = owner.parse::<libc::pid_t>() else { continue };
        // SAFETY: kill with signal 0 only asks whether the process exists.
        let gone =
            unsafe { libc::kill(pid, 0) } != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            std::fs::remove_file(entry.path()).ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_languages_are_checked() {
        assert_eq!("force".parse::<OcrMode>(), Ok(OcrMode::Force));
        assert!("sometimes".parse::<OcrMode>().is_err());
        assert!(OcrSettings::new(OcrMode::Off, "eng; rm -rf".into(), 10).is_err());
        assert!(OcrSettings::new(OcrMode::Off, "".into(), 10).is_err());
        let off = OcrSettings::new(OcrMode::Off, "eng+deu".into(), 10).unwrap();
        assert!(!off.reads());
        assert_eq!(off.request().mode, OcrMode::Off);
        assert_eq!(off.fingerprint(), None);
        assert_eq!(off.unread_reason(), "OCR is off (--ocr off)");
    }

    #[test]
    fn a_page_is_a_scan_when_it_shows_an_image_and_holds_little_text() {
        let a4 = (595.0, 842.0);
        let page = |text: &str, shows_image| PageText { number: 1, text: text.into(), size: a4, shows_image };
        assert!(page("", true).looks_scanned());
        assert!(page("Bates 000123", true).looks_scanned(), "a stamp on a scan");
        assert!(!page("", false).looks_scanned(), "a blank page has nothing to read");
        assert!(!page(&"words ".repeat(20), true).looks_scanned(), "a text layer with a figure");
    }

    #[test]
    fn spooled_pdfs_of_dead_extractors_are_removed_and_live_ones_kept() {
        let mut ended = Command::new("true").spawn().unwrap();
        let dead = ended.id();
        ended.wait().unwrap();
        let left = std::env::temp_dir().join(format!("{SPOOL_PREFIX}{dead}-0.pdf"));
        std::fs::write(&left, b"%PDF").unwrap();
        let live = SpooledPdf::write(b"%PDF").unwrap();
        remove_spooled_leftovers();
        assert!(!left.exists(), "the file of a process that ended is removed");
        assert!(live.path().exists(), "this process's own is kept");
        let path = live.path().to_path_buf();
        drop(live);
        assert!(!path.exists());
    }

    #[test]
    fn noise_is_not_text() {
        assert_eq!(legible(" | © a\n\u{c}"), "");
        assert_eq!(legible("\nNo exit\n"), "No exit", "one word of three letters is text");
        assert_eq!(legible("OK to go"), "", "but not three words of two");
    }

    #[test]
    fn poster_pages_are_rendered_at_a_lower_resolution() {
        assert_eq!(render_dpi((595.0, 842.0)), 300.0);
        let a0 = (2384.0, 3370.0);
        let dpi = render_dpi(a0);
        assert!(dpi < 300.0 && (a0.0 / 72.0 * dpi) * (a0.1 / 72.0 * dpi) <= MAX_PIXELS, "{dpi}");
        assert!(render_dpi((14_400.0, 14_400.0)) >= 1.0);
    }
}
