//! # Extract
//!
//! In: a file's bytes and its extension. Out: a [`Document`] holding its plain text, or an
//! [`ExtractError`] that says in one readable sentence why the file cannot be indexed
//! (empty, binary, corrupt PDF, not a DOCX package, no text, or an extractor that hung,
//! crashed or ran out of memory).
//!
//! [`extract`] maps a format to its extractor. Plain text and Markdown are read in this
//! process; so are files without an extension (or of an unknown one), which are sniffed: text
//! when valid UTF-8 (or UTF-16 with a byte-order mark) without NUL bytes, otherwise
//! [`ExtractError::NotText`], a file to skip rather than a failure. PDF and DOCX parsers can loop forever, overflow their stack or abort on hostile
//! files, so they run in worker processes of an [`ExtractorPool`] ([`pool`]), under a time
//! and a memory limit; [`extract_in_process`] is what those workers run. Inside a worker,
//! parsers also run behind `catch_unwind`, so a parser panic fails only its file.

pub mod pool;

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::AtomicBool;

pub use pool::{ExtractorPool, ExtractorSettings};

/// The text of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub text: String,
    /// Markdown gets a structure-aware splitter.
    pub is_markdown: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    #[error("file is empty")]
    Empty,
    #[error("file looks binary ({0}), not text")]
    Binary(String),
    #[error("corrupt or unreadable PDF: {0}")]
    Pdf(String),
    #[error("not a valid DOCX document: {0}")]
    Docx(String),
    #[error("no extractable text (the document holds only whitespace, images or scans)")]
    NoText,
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

impl Format {
    pub fn from_extension(extension: &str) -> Self {
        KNOWN_EXTENSIONS.iter().find(|(known, _)| *known == extension).map_or(Self::Sniffed, |&(_, format)| format)
    }

    /// How reasons name the format.
    pub fn name(self) -> &'static str {
        match self {
            Self::Text | Self::Sniffed => "text",
            Self::Markdown => "Markdown",
            Self::Pdf => "PDF",
            Self::Docx => "DOCX",
        }
    }

    /// The version of this format's extractor, part of its files' logic fingerprint: bumped
    /// whenever the format's extracted text changes, so that a re-run re-embeds the files of
    /// that format, and only those.
    pub fn extractor_version(self) -> &'static str {
        match self {
            Self::Text | Self::Markdown | Self::Pdf | Self::Docx => "extract-1",
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

/// Extracts the text of a file from its bytes: plain text in this process, PDF and DOCX in
/// a worker process of `extractors`. Setting `cancel` cuts a wait for a worker short.
pub fn extract(
    extension: &str,
    bytes: &[u8],
    extractors: &ExtractorPool,
    cancel: &AtomicBool,
) -> Result<Document, ExtractError> {
    match Format::from_extension(extension) {
        Format::Pdf | Format::Docx => extractors.extract(extension, bytes, cancel),
        _ => extract_in_process(extension, bytes),
    }
}

/// Extracts the text of a file from its bytes in this process, whatever the format: what the
/// worker processes run.
pub fn extract_in_process(extension: &str, bytes: &[u8]) -> Result<Document, ExtractError> {
    if bytes.is_empty() {
        return Err(ExtractError::Empty);
    }
    let (text, is_markdown) = match Format::from_extension(extension) {
        Format::Text => (plain_text(bytes)?, false),
        Format::Markdown => (plain_text(bytes)?, true),
        Format::Pdf => (pdf_text(bytes)?, false),
        Format::Docx => (docx_text(bytes)?, false),
        Format::Sniffed => (sniffed_text(bytes)?, false),
    };
    if text.trim().is_empty() {
        return Err(ExtractError::NoText);
    }
    Ok(Document { text, is_markdown })
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

fn pdf_text(bytes: &[u8]) -> Result<String, ExtractError> {
    let text = without_panicking(|| pdf_extract::extract_text_from_mem(bytes))
        .map_err(ExtractError::Pdf)?
        .map_err(|e| ExtractError::Pdf(e.to_string()))?;
    Ok(text)
}

fn docx_text(bytes: &[u8]) -> Result<String, ExtractError> {
    if !bytes.starts_with(b"PK") {
        return Err(ExtractError::Docx("the file is not a zip package".into()));
    }
    let docx = without_panicking(|| docx_rs::read_docx(bytes))
        .map_err(ExtractError::Docx)?
        .map_err(|e| ExtractError::Docx(e.to_string()))?;
    let mut out = String::new();
    for child in &docx.document.children {
        match child {
            docx_rs::DocumentChild::Paragraph(p) => push_paragraph(&mut out, p),
            docx_rs::DocumentChild::Table(t) => push_table(&mut out, t),
            _ => {}
        }
    }
    Ok(out)
}

fn push_paragraph(out: &mut String, paragraph: &docx_rs::Paragraph) {
    for child in &paragraph.children {
        push_paragraph_child(out, child);
    }
    out.push_str("\n\n");
}

fn push_paragraph_child(out: &mut String, child: &docx_rs::ParagraphChild) {
    match child {
        docx_rs::ParagraphChild::Run(run) => {
            for part in &run.children {
                match part {
                    docx_rs::RunChild::Text(t) => out.push_str(&t.text),
                    docx_rs::RunChild::Tab(_) => out.push('\t'),
                    docx_rs::RunChild::Break(_) => out.push('\n'),
                    _ => {}
                }
            }
        }
        docx_rs::ParagraphChild::Hyperlink(link) => {
            for inner in &link.children {
                push_paragraph_child(out, inner);
            }
        }
        _ => {}
    }
}

fn push_table(out: &mut String, table: &docx_rs::Table) {
    for docx_rs::TableChild::TableRow(row) in &table.rows {
        for docx_rs::TableRowChild::TableCell(cell) in &row.cells {
            for content in &cell.children {
                match content {
                    docx_rs::TableCellContent::Paragraph(p) => push_paragraph(out, p),
                    docx_rs::TableCellContent::Table(t) => push_table(out, t),
                    _ => {}
                }
            }
        }
    }
}

thread_local! {
    static QUIET_PANICS: Cell<bool> = const { Cell::new(false) };
}

/// Runs a third-party parser, turning a panic into an error message.
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

    #[test]
    fn plain_text_and_markdown() {
        let doc = extract_in_process("txt", "héllo world".as_bytes()).unwrap();
        assert_eq!(doc.text, "héllo world");
        assert!(!doc.is_markdown);
        assert!(extract_in_process("md", b"# Title\n\nbody").unwrap().is_markdown);
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
        let readme = extract_in_process("", b"\xEF\xBB\xBFREADME for the tool\n").unwrap();
        assert_eq!(readme.text, "README for the tool\n", "the UTF-8 byte-order mark is dropped");
        let utf16: Vec<u8> =
            [0xFF, 0xFE].into_iter().chain("Notes, en français".encode_utf16().flat_map(u16::to_le_bytes)).collect();
        assert_eq!(extract_in_process("", &utf16).unwrap().text, "Notes, en français");
        assert_eq!(extract_in_process("txt", &utf16).unwrap().text, "Notes, en français");
        assert!(matches!(extract_in_process("", b"\x7fELF\x02\x01\x01\0\0"), Err(ExtractError::NotText(_))));
        assert!(matches!(extract_in_process("xyz", b"caf\xe9 au lait"), Err(ExtractError::NotText(_))));
        assert_eq!(extract_in_process("rst", b"Title\n=====\n").unwrap().text, "Title\n=====\n");
    }

    #[test]
    fn bad_inputs_get_distinct_reasons() {
        assert_eq!(extract_in_process("txt", b""), Err(ExtractError::Empty));
        assert!(matches!(extract_in_process("txt", b"ab\0cd"), Err(ExtractError::Binary(_))));
        assert_eq!(extract_in_process("md", b"   \n\t "), Err(ExtractError::NoText));
        assert!(matches!(extract_in_process("docx", b"plain text"), Err(ExtractError::Docx(_))));
        assert!(matches!(extract_in_process("docx", b"PK\x03\x04garbage"), Err(ExtractError::Docx(_))));
        assert!(matches!(extract_in_process("pdf", b"%PDF-1.4\n1 0 obj"), Err(ExtractError::Pdf(_))));
    }

    fn fixture(path: &str) -> Vec<u8> {
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(path)).unwrap()
    }

    #[test]
    fn real_pdf_and_docx_fixtures() {
        let pdf = extract_in_process("pdf", &fixture("gardening/tomatoes.pdf")).unwrap();
        assert!(pdf.text.contains("blossom end rot"), "{}", pdf.text);
        let docx = extract_in_process("docx", &fixture("finance/compound-interest.docx")).unwrap();
        assert!(docx.text.contains("rule of 72"), "{}", docx.text);
        assert!(matches!(extract_in_process("pdf", &fixture("bad/truncated.pdf")), Err(ExtractError::Pdf(_))));
    }
}
