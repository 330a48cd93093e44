//! # PDF
//!
//! In: the bytes of a PDF. Out: a [`Document`] with the text of its pages in order (as
//! `pdf-extract` lays it out) and an anchor where each page's text begins, numbered from 1.
//! An encrypted PDF is read when its user password is empty, and refused plainly otherwise.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use pdf_extract::{MediaBox, OutputDev, OutputError, PlainTextOutput, Transform};

use super::{Anchor, Document, ExtractError, Place};

/// Extracts the text of a PDF, page by page.
pub fn extract(bytes: &[u8]) -> Result<Document, ExtractError> {
    let failed = |e: &dyn std::fmt::Display| ExtractError::Pdf(e.to_string());
    let mut pdf = pdf_extract::Document::load_mem(bytes).map_err(|e| failed(&e))?;
    if pdf.is_encrypted() && pdf.decrypt("").is_err() {
        return Err(ExtractError::Pdf("it is encrypted with a password".into()));
    }
    let text = Rc::new(RefCell::new(Vec::new()));
    let mut sink = Sink(text.clone());
    let mut output = PageMarks {
        text: text.clone(),
        inner: PlainTextOutput::new(&mut sink as &mut dyn io::Write),
        anchors: Vec::new(),
    };
    pdf_extract::output_doc(&pdf, &mut output).map_err(|e| failed(&e))?;
    let anchors = std::mem::take(&mut output.anchors);
    drop(output);
    let text = String::from_utf8(text.take()).map_err(|e| failed(&e))?;
    Ok(Document { text, anchors, ..Document::default() })
}

/// Where the text goes: a buffer [`PageMarks`] can measure while it is being written.
struct Sink(Rc<RefCell<Vec<u8>>>);

impl io::Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `pdf-extract`'s plain-text output, noting where each page begins.
struct PageMarks<'a> {
    text: Rc<RefCell<Vec<u8>>>,
    inner: PlainTextOutput<&'a mut dyn io::Write>,
    anchors: Vec<Anchor>,
}

impl OutputDev for PageMarks<'_> {
    fn begin_page(
        &mut self,
        page: u32,
        media_box: &MediaBox,
        art_box: Option<(f64, f64, f64, f64)>,
    ) -> Result<(), OutputError> {
        self.anchors.push(Anchor { offset: self.text.borrow().len(), place: Place::Page(page) });
        self.inner.begin_page(page, media_box, art_box)
    }

    fn end_page(&mut self) -> Result<(), OutputError> {
        self.inner.end_page()
    }

    fn output_character(
        &mut self,
        trm: &Transform,
        width: f64,
        spacing: f64,
        font_size: f64,
        char: &str,
    ) -> Result<(), OutputError> {
        self.inner.output_character(trm, width, spacing, font_size, char)
    }

    fn begin_word(&mut self) -> Result<(), OutputError> {
        self.inner.begin_word()
    }

    fn end_word(&mut self) -> Result<(), OutputError> {
        self.inner.end_word()
    }

    fn end_line(&mut self) -> Result<(), OutputError> {
        self.inner.end_line()
    }
}
