//! # Extract
//!
//! In: a file's bytes and its extension. Out: a [`Document`] holding its plain text, where in
//! the file each part of the text came from ([`Anchor`]s: pages, sheets, slides, headings) and
//! the title the file declares, or an [`ExtractError`] that says in one readable sentence why
//! the file cannot be indexed (empty, binary, a corrupt file of its format, no text, or an
//! extractor that hung, crashed or ran out of memory).
//!
//! [`extract`] maps a format to its extractor. Plain text and Markdown are read in this
//! process; so are files without an extension (or of an unknown one), which are sniffed: text
//! when valid UTF-8 (or UTF-16 with a byte-order mark) without NUL bytes, otherwise
//! [`ExtractError::NotText`], a file to skip rather than a failure. The parsers of every other
//! format (PDF, DOCX, HTML, spreadsheets, PPTX, ODT, EPUB, images) can loop forever, overflow their
//! stack or abort on hostile files, so they run in worker processes of an [`ExtractorPool`]
//! ([`pool`]), under a time and a memory limit; [`extract_in_process`] is what those workers
//! run. Inside a worker, parsers also run behind `catch_unwind`, so a parser panic fails only
//! its file. One module per format: [`pdf`], [`docx`], [`html`], [`spreadsheet`], [`pptx`],
//! [`odt`], [`epub`]; [`package`] reads the zip packages and XML parts several of them share;
//! [`ocr`] reads the PDF pages that are scans, and [`image`]s, as the run's [`OcrRequest`] asks.

pub mod docx;
pub mod epub;
pub mod html;
pub mod image;
pub mod ocr;
pub mod odt;
pub mod package;
pub mod pdf;
pub mod pool;
pub mod pptx;
pub mod spreadsheet;

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

pub use ocr::{OcrRequest, OcrTally};
pub use pool::{ExtractorPool, ExtractorSettings};

/// The text of one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Document {
    pub text: String,
    /// Markdown gets a structure-aware splitter.
    pub is_markdown: bool,
    /// The title the file declares (HTML `<title>`, a package's metadata), if any.
    pub title: Option<String>,
    /// Where each part of `text` came from, in increasing offset order.
    pub anchors: Vec<Anchor>,
    /// The pages OCR read, and those it was not asked to.
    pub ocr: OcrTally,
}

/// A place in the file that `text` from `offset` (a byte offset) on belongs to, until the
/// next anchor of the same kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub offset: usize,
    pub place: Place,
}

/// A page, sheet, slide or heading of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A PDF page, from 1.
    Page(u32),
    /// A spreadsheet's sheet, by name.
    Sheet(String),
    /// A presentation's slide, from 1, in presentation order.
    Slide(u32),
    /// A heading's text: the section it opens.
    Heading(String),
}

/// Where a chunk came from: what its payload carries besides its text. Each field is set only
/// when the format has it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Origin {
    /// The page the chunk starts on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    /// The page the chunk ends on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_end: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sheet: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slide: Option<u32>,
    /// The nearest heading above the chunk's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heading: Option<String>,
    /// The document's title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The chunk's text, or part of it, was read by OCR from a scan or an image.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ocr: bool,
}

impl Document {
    /// A document of plain text, without anchors or title.
    pub fn plain(text: String) -> Self {
        Self { text, ..Self::default() }
    }

    /// Where the text from byte `start` to byte `end` came from: the last anchor of each kind
    /// at or before `start`, the page `end` falls on, and whether OCR read any of its pages.
    pub fn origin(&self, start: usize, end: usize) -> Origin {
        let mut origin = Origin { title: self.title.clone(), ..Origin::default() };
        let before_end = self.anchors.partition_point(|a| a.offset < end.max(start + 1));
        for anchor in self.anchors[..before_end].iter().rev() {
            if let Place::Page(page) = anchor.place {
                origin.page_end.get_or_insert(page);
            }
            if anchor.offset > start {
                continue;
            }
            match &anchor.place {
                Place::Page(page) => _ = origin.page.get_or_insert(*page),
                Place::Sheet(sheet) => _ = origin.sheet.get_or_insert_with(|| sheet.clone()),
                Place::Slide(slide) => _ = origin.slide.get_or_insert(*slide),
                Place::Heading(heading) => _ = origin.heading.get_or_insert_with(|| heading.clone()),
            }
        }
        if let (Some(first), Some(last)) = (origin.page, origin.page_end) {
            origin.ocr = self.ocr.pages.iter().any(|page| (first..=last).contains(page));
        }
        origin
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    #[error("file is empty")]
    Empty,
    #[error("file looks binary ({0}), not text")]
    Binary(String),
    #[error("corrupt or unreadable PDF: {0}")]
    Pdf(String),
    /// A file of another format that its extractor cannot read: a broken or encrypted
    /// package, or the wrong contents for its extension.
    #[error("not a valid {} file: {reason}", format.name())]
    Invalid { format: Format, reason: String },
    #[error("no extractable text (the document holds only whitespace, images or scans)")]
    NoText,
    /// No text, and this many pages that are scans (or an image) which OCR was not asked to
    /// read: the run says why.
    #[error("no extractable text: {0} scanned pages were not read by OCR")]
    NeedsOcr(u32),
    /// OCR of a page failed, or a file needs more pages read than allowed.
    #[error("OCR failed: {0}")]
    Ocr(String),
    /// A file sniffed for text (no extension, or an unknown one) whose contents are not text.
    #[error("not text: {0}")]
    NotText(String),
    /// The worker process failed, e.g. "PDF extractor timed out after 60 s".
    #[error("{0}")]
    Extractor(String),
    /// No worker process could be started: a fault of this machine, not of the file, so the
    /// job stops instead of failing every file of the format.
    #[error("{0}")]
    NoExtractor(String),
}

/// The formats read, by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Plain text by its extension (`txt`, and plain-text formats such as `rst` or `csv`).
    Text,
    Markdown,
    Pdf,
    Docx,
    /// HTML and XHTML pages.
    Html,
    Xlsx,
    Xls,
    Ods,
    Pptx,
    Odt,
    Epub,
    /// PNG, JPEG, TIFF and WebP images, read by OCR.
    Image,
    /// No extension, or one not known: indexed when its contents turn out to be text.
    Sniffed,
}

/// The extensions read by a format of their own (lower case, without the dot), and that
/// format: the extensions a walk keeps by default. Any other is [`Format::Sniffed`].
pub const KNOWN_EXTENSIONS: &[(&str, Format)] = &[
    ("txt", Format::Text),
    ("md", Format::Markdown),
    ("markdown", Format::Markdown),
    ("pdf", Format::Pdf),
    ("docx", Format::Docx),
    ("html", Format::Html),
    ("htm", Format::Html),
    ("xhtml", Format::Html),
    ("xlsx", Format::Xlsx),
    ("xls", Format::Xls),
    ("ods", Format::Ods),
    ("pptx", Format::Pptx),
    ("odt", Format::Odt),
    ("epub", Format::Epub),
    ("rst", Format::Text),
    ("adoc", Format::Text),
    ("asciidoc", Format::Text),
    ("org", Format::Text),
    ("tex", Format::Text),
    ("csv", Format::Text),
    ("tsv", Format::Text),
    ("log", Format::Text),
    ("json", Format::Text),
    ("yaml", Format::Text),
    ("yml", Format::Text),
    ("toml", Format::Text),
    ("ini", Format::Text),
];

/// The extensions of images, read by OCR: a walk keeps them by default only when the run
/// reads them.
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "tif", "tiff", "webp"];

impl Format {
    pub fn from_extension(extension: &str) -> Self {
        if IMAGE_EXTENSIONS.contains(&extension) {
            return Self::Image;
        }
        KNOWN_EXTENSIONS.iter().find(|(known, _)| *known == extension).map_or(Self::Sniffed, |&(_, format)| format)
    }

    /// How reasons name the format.
    pub fn name(self) -> &'static str {
        match self {
            Self::Text | Self::Sniffed => "text",
            Self::Markdown => "Markdown",
            Self::Pdf => "PDF",
            Self::Docx => "DOCX",
            Self::Html => "HTML",
            Self::Xlsx => "XLSX",
            Self::Xls => "XLS",
            Self::Ods => "ODS",
            Self::Pptx => "PPTX",
            Self::Odt => "ODT",
            Self::Epub => "EPUB",
            Self::Image => "image",
        }
    }

    /// Whether the format's parser runs in a worker process.
    pub fn needs_worker(self) -> bool {
        !matches!(self, Self::Text | Self::Markdown | Self::Sniffed)
    }

    /// The format named `name` (as [`Format::name`] says it), among those with an extension.
    pub fn from_name(name: &str) -> Option<Self> {
        KNOWN_EXTENSIONS.iter().map(|&(_, format)| format).chain([Self::Image]).find(|format| format.name() == name)
    }

    /// Whether OCR may read the format's files: PDFs (their scanned pages) and images.
    pub fn reads_scans(self) -> bool {
        matches!(self, Self::Pdf | Self::Image)
    }

    /// An [`ExtractError::Invalid`] of this format.
    pub fn invalid(self, reason: impl Into<String>) -> ExtractError {
        ExtractError::Invalid { format: self, reason: reason.into() }
    }

    /// The version of this format's extractor, part of its files' logic fingerprint: bumped
    /// whenever the format's extracted text changes, so that a re-run re-embeds the files of
    /// that format, and only those.
    pub fn extractor_version(self) -> &'static str {
        match self {
            Self::Text => "extract-1",
            // 2: Markdown headings, PDF pages, and DOCX headers, footers, footnotes, headings and
            // title, in each chunk's payload and (DOCX) its text.
            Self::Markdown | Self::Docx => "extract-2",
            // 3: a paragraph break between pages, so that words on either side of one stay apart.
            Self::Pdf => "pdf-3",
            Self::Html => "html-1",
            Self::Xlsx | Self::Xls | Self::Ods => "sheet-1",
            Self::Pptx => "pptx-1",
            Self::Odt => "odt-1",
            // 2: a chapter the spine lists again is read once.
            Self::Epub => "epub-2",
            Self::Image => "image-1",
            Self::Sniffed => "sniff-1",
        }
    }
}

/// How much lower than the model's threads extraction and chunking are scheduled (a nice
/// value; Linux applies it per thread).
const BEHIND_THE_MODEL: libc::c_int = 10;

/// Lowers the calling thread's scheduling priority, so that parsing and chunking use the CPU
/// the model leaves idle instead of slowing its calls: on two cores every cycle they take
/// while the model runs is a cycle the model waits for. When the model waits for text, they
/// have the cores to themselves. Best effort: a refusal changes only the speed.
pub fn run_behind_the_model() {
    // SAFETY: setpriority on this thread (who = 0) reads and writes no memory of ours.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, BEHIND_THE_MODEL);
    }
}

/// Extracts the text of a file from its bytes: plain text in this process, other formats in
/// a worker process of `extractors`, which is stopped at `deadline`. Setting `cancel` cuts a
/// wait for a worker short.
pub fn extract(
    extension: &str,
    bytes: &[u8],
    extractors: &ExtractorPool,
    deadline: Instant,
    cancel: &AtomicBool,
) -> Result<Document, ExtractError> {
    if Format::from_extension(extension).needs_worker() {
        extractors.extract_until(extension, bytes, deadline, cancel)
    } else {
        extract_in_process(extension, bytes, &OcrRequest::default())
    }
}

/// Extracts the text of a file from its bytes in this process, whatever the format, reading
/// scans as `ocr` asks: what the worker processes run.
pub fn extract_in_process(extension: &str, bytes: &[u8], ocr: &OcrRequest) -> Result<Document, ExtractError> {
    if bytes.is_empty() {
        return Err(ExtractError::Empty);
    }
    let format = Format::from_extension(extension);
    let document = without_panicking(|| parse(format, bytes, ocr)).map_err(|panic| match format {
        Format::Pdf => ExtractError::Pdf(panic),
        _ => format.invalid(panic),
    })??;
    if document.text.trim().is_empty() {
        return Err(match document.ocr.unread {
            0 => ExtractError::NoText,
            unread => ExtractError::NeedsOcr(unread),
        });
    }
    Ok(document)
}

/// The document of a file of `format`, by its extractor.
fn parse(format: Format, bytes: &[u8], ocr: &OcrRequest) -> Result<Document, ExtractError> {
    Ok(match format {
        Format::Text => Document::plain(plain_text(bytes)?),
        Format::Markdown => markdown(plain_text(bytes)?),
        Format::Pdf => pdf::extract(bytes, ocr)?,
        Format::Image => image::extract(bytes, ocr)?,
        Format::Docx => docx::extract(bytes)?,
        Format::Html => html::extract(&decoded_text(format, bytes)?),
        Format::Xlsx | Format::Xls | Format::Ods => spreadsheet::extract(format, bytes)?,
        Format::Pptx => pptx::extract(bytes)?,
        Format::Odt => odt::extract(bytes)?,
        Format::Epub => epub::extract(bytes)?,
        Format::Sniffed => Document::plain(sniffed_text(bytes)?),
    })
}

/// A Markdown document, with an anchor at each ATX heading (`# Title`) outside fenced code
/// blocks.
fn markdown(text: String) -> Document {
    let mut anchors = Vec::new();
    let mut fence: Option<&str> = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (fence, marker) {
            (None, Some(marker)) => fence = Some(marker),
            (Some(open), Some(marker)) if open == marker => fence = None,
            (None, None) => {
                let hashes = trimmed.bytes().take_while(|&b| b == b'#').count();
                let rest = &trimmed[hashes..];
                if (1..=6).contains(&hashes) && (rest.starts_with([' ', '\t']) || rest.trim().is_empty()) {
                    let heading = rest.trim().trim_end_matches('#').trim();
                    if !heading.is_empty() {
                        anchors.push(Anchor { offset, place: Place::Heading(heading.to_string()) });
                    }
                }
            }
            _ => {}
        }
        offset += line.len();
    }
    Document { text, is_markdown: true, anchors, ..Document::default() }
}

/// The text of a file whose format is text-based (HTML): UTF-8 or UTF-16 with a byte-order
/// mark, refused when it looks binary.
fn decoded_text(format: Format, bytes: &[u8]) -> Result<String, ExtractError> {
    plain_text(bytes).map_err(|error| match error {
        ExtractError::Binary(reason) => format.invalid(format!("it looks binary ({reason})")),
        other => other,
    })
}

/// How much of a file the text checks look at.
const SNIFF_BYTES: usize = 8192;

/// The text of a file with a byte-order mark for UTF-16 (either order), decoded; `None`
/// without one.
fn utf16_text(bytes: &[u8]) -> Option<Result<String, ExtractError>> {
    let decode = |body: &[u8], unit: fn([u8; 2]) -> u16| {
        let units: Vec<u16> = body.chunks_exact(2).map(|pair| unit([pair[0], pair[1]])).collect();
        String::from_utf16(&units).map_err(|_| ExtractError::NotText("invalid UTF-16 after its byte-order mark".into()))
    };
    match bytes {
        [0xFF, 0xFE, body @ ..] => Some(decode(body, u16::from_le_bytes)),
        [0xFE, 0xFF, body @ ..] => Some(decode(body, u16::from_be_bytes)),
        _ => None,
    }
}

/// The text of a file known only by its contents: UTF-16 with a byte-order mark, or UTF-8
/// without NUL bytes in its first block and valid throughout.
fn sniffed_text(bytes: &[u8]) -> Result<String, ExtractError> {
    if let Some(text) = utf16_text(bytes) {
        return text;
    }
    if bytes[..bytes.len().min(SNIFF_BYTES)].contains(&0) {
        return Err(ExtractError::NotText("it contains NUL bytes".into()));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| ExtractError::NotText(format!("it is not valid UTF-8 (from byte {})", e.valid_up_to())))?;
    Ok(text.strip_prefix('\u{FEFF}').unwrap_or(text).to_string())
}

fn plain_text(bytes: &[u8]) -> Result<String, ExtractError> {
    if let Some(text) = utf16_text(bytes) {
        return text.map_err(|e| ExtractError::Binary(e.to_string()));
    }
    let sample = &bytes[..bytes.len().min(SNIFF_BYTES)];
    if sample.contains(&0) {
        return Err(ExtractError::Binary("it contains NUL bytes".into()));
    }
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(&text);
    let total = text.chars().take(SNIFF_BYTES).count().max(1);
    let suspicious =
        text.chars().take(SNIFF_BYTES).filter(|c| *c == '\u{FFFD}' || (c.is_control() && !c.is_whitespace())).count();
    if suspicious * 10 > total {
        return Err(ExtractError::Binary("over 10% of it is not valid text".into()));
    }
    Ok(text.to_string())
}

thread_local! {
    static QUIET_PANICS: Cell<bool> = const { Cell::new(false) };
}

/// Runs a parser, turning a panic into an error message.
fn without_panicking<T>(parse: impl FnOnce() -> T) -> Result<T, String> {
    QUIET_PANICS.with(|q| q.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(parse));
    QUIET_PANICS.with(|q| q.set(false));
    result.map_err(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("the parser crashed");
        format!("parser failed: {message}")
    })
}

/// Installs a panic hook that stays silent for parser panics caught by this module and
/// keeps the default report for every other panic.
pub fn install_quiet_parser_panics() {
    let default_hook = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if !QUIET_PANICS.with(Cell::get) {
            default_hook(info);
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Extracts without OCR.
    fn in_process(extension: &str, bytes: &[u8]) -> Result<Document, ExtractError> {
        extract_in_process(extension, bytes, &OcrRequest::default())
    }

    #[test]
    fn plain_text_and_markdown() {
        let doc = in_process("txt", "héllo world".as_bytes()).unwrap();
        assert_eq!(doc.text, "héllo world");
        assert!(!doc.is_markdown);
        assert!(in_process("md", b"# Title\n\nbody").unwrap().is_markdown);
    }

    #[test]
    fn extraction_threads_run_behind_the_model_and_others_do_not() {
        // SAFETY: getpriority on this thread reads no memory of ours.
        let nice = || unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let before = nice();
        let behind = std::thread::spawn(move || {
            run_behind_the_model();
            nice()
        })
        .join()
        .unwrap();
        assert!(behind >= BEHIND_THE_MODEL, "nice {behind} after lowering, from {before}");
        assert_eq!(nice(), before, "only the calling thread is lowered");
    }

    #[test]
    fn files_without_a_known_extension_are_sniffed() {
        let readme = in_process("", b"\xEF\xBB\xBFREADME for the tool\n").unwrap();
        assert_eq!(readme.text, "README for the tool\n", "the UTF-8 byte-order mark is dropped");
        let utf16: Vec<u8> =
            [0xFF, 0xFE].into_iter().chain("Notes, en français".encode_utf16().flat_map(u16::to_le_bytes)).collect();
        assert_eq!(in_process("", &utf16).unwrap().text, "Notes, en français");
        assert_eq!(in_process("txt", &utf16).unwrap().text, "Notes, en français");
        assert!(matches!(in_process("", b"\x7fELF\x02\x01\x01\0\0"), Err(ExtractError::NotText(_))));
        assert!(matches!(in_process("xyz", b"caf\xe9 au lait"), Err(ExtractError::NotText(_))));
        assert_eq!(in_process("rst", b"Title\n=====\n").unwrap().text, "Title\n=====\n");
    }

    #[test]
    fn bad_inputs_get_distinct_reasons() {
        assert_eq!(in_process("txt", b""), Err(ExtractError::Empty));
        assert!(matches!(in_process("txt", b"ab\0cd"), Err(ExtractError::Binary(_))));
        assert_eq!(in_process("md", b"   \n\t "), Err(ExtractError::NoText));
        let invalid = |extension: &str, bytes: &[u8]| match in_process(extension, bytes) {
            Err(ExtractError::Invalid { format, reason }) => (format.name(), reason),
            other => panic!("{extension}: {other:?}"),
        };
        assert_eq!(invalid("docx", b"plain text"), ("DOCX", "the file is not a zip package".into()));
        assert!(invalid("docx", b"PK\x03\x04garbage").1.contains("zip package is unreadable"));
        let encrypted = [&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1][..], &[0; 504]].concat();
        for extension in ["docx", "xlsx", "pptx", "odt", "ods", "epub"] {
            let (name, reason) = invalid(extension, &encrypted);
            assert_eq!(name, extension.to_uppercase());
            assert!(reason.contains("encrypted"), "{extension}: {reason}");
            assert!(invalid(extension, b"PK\x03\x04 cut short").1.contains("unreadable"));
        }
        let html = in_process("html", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").unwrap_err();
        assert!(html.to_string().starts_with("not a valid HTML file: it looks binary"), "{html}");
        assert!(matches!(in_process("pdf", b"%PDF-1.4\n1 0 obj"), Err(ExtractError::Pdf(_))));
    }

    fn fixture(path: &str) -> Vec<u8> {
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(path)).unwrap()
    }

    /// The fixture at `path`, extracted by its extension.
    fn extracted(path: &str) -> Document {
        let extension = path.rsplit_once('.').map_or("", |(_, e)| e);
        in_process(extension, &fixture(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The text from each anchor of the kind `pick` accepts to the next one of that kind.
    fn sections(doc: &Document, pick: impl Fn(&Place) -> bool) -> Vec<(Place, &str)> {
        let anchors: Vec<&Anchor> = doc.anchors.iter().filter(|a| pick(&a.place)).collect();
        let ends = anchors.iter().skip(1).map(|a| a.offset).chain([doc.text.len()]);
        anchors.iter().zip(ends).map(|(a, end)| (a.place.clone(), &doc.text[a.offset..end])).collect()
    }

    fn headings(doc: &Document) -> Vec<String> {
        sections(doc, |p| matches!(p, Place::Heading(_)))
            .into_iter()
            .map(|(place, text)| {
                let Place::Heading(heading) = place else { unreachable!() };
                let marked = text.trim_start_matches('#').trim_start();
                assert!(marked.starts_with(&heading), "the anchor of {heading:?} is where it begins: {text:?}");
                heading
            })
            .collect()
    }

    #[test]
    fn pdf_pages_are_anchored() {
        let pdf = extracted("gardening/tomatoes.pdf");
        let pages = sections(&pdf, |p| matches!(p, Place::Page(_)));
        assert_eq!(
            pages.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
            (1..=5).map(Place::Page).collect::<Vec<_>>()
        );
        assert!(pages[0].1.contains("Growing tomatoes") && pages[3].1.contains("blossom end rot"), "{pages:#?}");
        assert!(matches!(in_process("pdf", &fixture("bad/truncated.pdf")), Err(ExtractError::Pdf(_))));
    }

    #[test]
    fn icons_are_not_read_and_posters_are_refused_unread() {
        let png = |width: u32, height: u32| {
            let header =
                [&b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR"[..], &width.to_be_bytes(), &height.to_be_bytes()].concat();
            [header.as_slice(), &[8, 0, 0, 0, 0], &[0; 4]].concat()
        };
        let auto = OcrRequest { mode: ocr::OcrMode::Auto, languages: "eng".into(), max_pages: 1 };
        assert_eq!(extract_in_process("png", &png(16, 16), &auto), Err(ExtractError::NoText));
        let poster = extract_in_process("png", &png(20_000, 20_000), &auto);
        assert!(matches!(&poster, Err(ExtractError::Ocr(reason)) if reason.contains("20000×20000")), "{poster:?}");
        assert_eq!(in_process("png", &png(800, 600)), Err(ExtractError::NeedsOcr(1)), "OCR off: unread");
    }

    #[test]
    fn markdown_headings_are_anchored_outside_code() {
        let doc = in_process("md", b"# Bread\n\nintro\n\n```sh\n# not a heading\n```\n## Proofing ##\ntext\n").unwrap();
        assert_eq!(headings(&doc), ["Bread", "Proofing"]);
        assert_eq!(doc.origin(doc.text.find("text").unwrap(), doc.text.len()).heading.as_deref(), Some("Proofing"));
    }

    #[test]
    fn docx_keeps_body_notes_margins_headings_and_title() {
        let docx = extracted("finance/compound-interest.docx");
        assert!(docx.text.contains("rule of 72"), "{}", docx.text);
        let jazz = extracted("music/jazz-improvisation.docx");
        assert_eq!(jazz.title.as_deref(), Some("Jazz improvisation"));
        assert_eq!(headings(&jazz), ["Jazz improvisation"]);
        let body = jazz.text.find("Trading fours").unwrap();
        let note = jazz.text.find("Charlie Parker recorded Ko-Ko").unwrap();
        let header = jazz.text.find("Jazz workshop handout").unwrap();
        let footer = jazz.text.find("Improvisation level two").unwrap();
        assert!(body < note && note < header && header < footer, "{}", jazz.text);
    }

    #[test]
    fn html_keeps_the_article_and_drops_the_site_around_it() {
        let page = extracted("maritime/lighthouse-keeping.html");
        assert_eq!(page.title.as_deref(), Some("Keeping the light | Coastal Heritage Society"));
        assert_eq!(headings(&page), ["Keeping the light", "The keeper's watch", "The Fresnel lens", "Automation"]);
        assert!(page.text.contains("\nWind the rotation clockwork\n"), "list items are lines: {}", page.text);
        for boilerplate in ["Become a member", "Gift shop", "Cookie", "analytics", "font-family"] {
            assert!(!page.text.contains(boilerplate), "{boilerplate}: {}", page.text);
        }
    }

    #[test]
    fn spreadsheets_give_sheets_of_rows_with_cached_formula_values() {
        let xlsx = extracted("cycling/bike-maintenance.xlsx");
        assert_eq!(xlsx.title.as_deref(), Some("Bicycle maintenance log"));
        let sheets = sections(&xlsx, |p| matches!(p, Place::Sheet(_)));
        assert_eq!(sheets[0].0, Place::Sheet("Service intervals".into()));
        assert!(
            sheets[0].1.starts_with("Service intervals\n\nComponent\tInterval (km)\tTask\nChain\t3000\t"),
            "{xlsx:?}"
        );
        assert_eq!(sheets[1].0, Place::Sheet("Parts budget".into()));
        assert!(sheets[1].1.contains("\nChain\t2\t35\t70\n") && sheets[1].1.contains("\nSum\t\t\t142\n"), "{xlsx:?}");

        let ods = extracted("weather/rainfall.ods");
        assert_eq!(ods.title.as_deref(), Some("Rainfall of four cities"));
        let sheets = sections(&ods, |p| matches!(p, Place::Sheet(_)));
        assert_eq!(
            sheets.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
            [Place::Sheet("Annual rainfall".into()), Place::Sheet("Sources".into())]
        );
        assert!(sheets[0].1.contains("\nBergen\t2250\t231\tOne of the wettest"), "{ods:?}");
    }

    #[test]
    fn pptx_slides_come_in_presentation_order_with_their_notes() {
        let deck = extracted("coffee/espresso-brewing.pptx");
        assert_eq!(deck.title.as_deref(), Some("Espresso training for new baristas"));
        let slides = sections(&deck, |p| matches!(p, Place::Slide(_)));
        assert_eq!(
            slides.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
            (1..=4).map(Place::Slide).collect::<Vec<_>>()
        );
        assert!(slides[0].1.starts_with("Steaming milk") && slides[0].1.contains("whirlpool"), "{slides:#?}");
        assert!(slides[1].1.starts_with("Espresso basics"), "{slides:#?}");
        assert!(
            deck.text.lines().all(|line| line.parse::<u32>().is_err()),
            "slide number fields are left out: {}",
            deck.text
        );
    }

    #[test]
    fn odt_keeps_headings_notes_and_margins() {
        let odt = extracted("architecture/gothic-cathedrals.odt");
        assert_eq!(odt.title.as_deref(), Some("Gothic cathedrals"));
        assert_eq!(
            headings(&odt),
            ["Gothic cathedrals", "Pointed arches and rib vaults", "Flying buttresses", "Stained glass"]
        );
        assert!(odt.text.contains("Gothic builders replaced the round Romanesque arch"), "{}", odt.text);
        assert!(odt.text.contains("\nAbbot Suger rebuilt the choir"), "{}", odt.text);
        assert!(odt.text.contains("Architecture reading group") && odt.text.contains("Handout three"), "{}", odt.text);
    }

    #[test]
    fn epub_chapters_come_in_spine_order() {
        let book = extracted("sailing/knots.epub");
        assert_eq!(book.title.as_deref(), Some("Knots and sail handling"));
        assert_eq!(headings(&book), ["The bowline", "The cleat hitch", "Reefing the mainsail"]);
        assert!(!book.text.contains("Contents"), "the navigation document is not a chapter: {}", book.text);
    }

    #[test]
    fn every_bad_input_of_the_further_formats_fails_alone_naming_its_format() {
        let mut checked = 0;
        for entry in std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bad")).unwrap() {
            let path = entry.unwrap().path();
            let Some(extension) = path.extension().and_then(|e| e.to_str()) else { continue };
            let format = Format::from_extension(extension);
            if matches!(format, Format::Text | Format::Markdown | Format::Pdf | Format::Sniffed) {
                continue;
            }
            match in_process(extension, &std::fs::read(&path).unwrap()) {
                Err(error @ ExtractError::Invalid { format: named, .. }) => {
                    assert_eq!(named, format, "{}: {error}", path.display());
                    assert!(error.to_string().starts_with(&format!("not a valid {} file: ", format.name())));
                }
                other => panic!("{}: {other:?}", path.display()),
            }
            checked += 1;
        }
        assert_eq!(checked, 24, "every bad input of the zip and HTML formats, DOCX included");
    }
}
