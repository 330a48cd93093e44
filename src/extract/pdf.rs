//! # PDF
//!
//! In: the bytes of a PDF. Out: a [`Document`] with the text of its pages in order (as
//! `pdf-extract` lays it out), each page's text trimmed and separated from the next by a
//! paragraph break, so that the last word of a page never runs into the first of the next,
//! and an anchor where each page's text begins, numbered from 1 (a page without text shares
//! the anchor offset of the next page that has some). An encrypted PDF is read when its user
//! password is empty, and refused plainly otherwise.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use pdf_extract::{MediaBox, OutputDev, OutputError, PlainTextOutput, Transform};

use super::{Anchor, Document, ExtractError, Place};

/// What separates the text of consecutive pages.
const PAGE_BREAK: &str = "\n\n";

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
        page_starts: Vec::new(),
    };
    pdf_extract::output_doc(&pdf, &mut output).map_err(|e| failed(&e))?;
    let page_starts = std::mem::take(&mut output.page_starts);
    drop(output);
    let text = String::from_utf8(text.take()).map_err(|e| failed(&e))?;
    Ok(paged(&text, &page_starts))
}

/// The document of `text` as `pdf-extract` wrote it, where each `(page, offset)` of
/// `page_starts` says where a page began: each page's text trimmed of the whitespace
/// `pdf-extract` leaves at its edges, pages joined by [`PAGE_BREAK`] (`pdf-extract` itself
/// starts a new line between pages only when the first line of a page stands at another
/// height than the last line of the page before), and an anchor where each page's text
/// begins.
fn paged(text: &str, page_starts: &[(u32, usize)]) -> Document {
    let mut document = Document::default();
    // Pages whose text has not begun yet: the empty ones before the next page with text.
    let mut waiting = Vec::new();
    let ends = page_starts.iter().skip(1).map(|&(_, start)| start).chain([text.len()]);
    for (&(page, start), end) in page_starts.iter().zip(ends) {
        waiting.push(page);
        let page_text = text[start..end].trim();
        if page_text.is_empty() {
            continue;
        }
        if !document.text.is_empty() {
            document.text.push_str(PAGE_BREAK);
        }
        anchor_pages(&mut document, &mut waiting);
        document.text.push_str(page_text);
    }
    anchor_pages(&mut document, &mut waiting);
    document
}

/// Anchors each of `pages` where `document`'s text ends now, and empties `pages`.
fn anchor_pages(document: &mut Document, pages: &mut Vec<u32>) {
    let offset = document.text.len();
    document.anchors.extend(pages.drain(..).map(|page| Anchor { offset, place: Place::Page(page) }));
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

/// `pdf-extract`'s plain-text output, noting where in it each page begins.
struct PageMarks<'a> {
    text: Rc<RefCell<Vec<u8>>>,
    inner: PlainTextOutput<&'a mut dyn io::Write>,
    /// Each page's number and the offset in `text` where its output begins.
    page_starts: Vec<(u32, usize)>,
}

impl OutputDev for PageMarks<'_> {
    fn begin_page(
        &mut self,
        page: u32,
        media_box: &MediaBox,
        art_box: Option<(f64, f64, f64, f64)>,
    ) -> Result<(), OutputError> {
        self.page_starts.push((page, self.text.borrow().len()));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A PDF whose pages each hold one line of Helvetica, all at the same place on the page:
    /// where a line that ends one page and the line that begins the next stand level.
    fn one_line_pages(lines: &[&str]) -> Vec<u8> {
        let mut objects = vec![
            "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
            String::new(),
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_string(),
        ];
        let mut kids = Vec::new();
        for line in lines {
            let content = format!("BT /F1 11 Tf 56 780 Td ({line}) Tj ET");
            objects.push(format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()));
            objects.push(format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> \
                 /Contents {} 0 R >>",
                objects.len()
            ));
            kids.push(format!("{} 0 R", objects.len()));
        }
        objects[1] = format!("<< /Type /Pages /Kids [{}] /Count {} >>", kids.join(" "), kids.len());
        let mut pdf = String::from("%PDF-1.4\n");
        let mut offsets = Vec::new();
        for (number, object) in objects.iter().enumerate() {
            offsets.push(pdf.len());
            pdf.push_str(&format!("{} 0 obj\n{object}\nendobj\n", number + 1));
        }
        let xref = pdf.len();
        pdf.push_str(&format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1));
        offsets.iter().for_each(|offset| pdf.push_str(&format!("{offset:010} 00000 n \n")));
        pdf.push_str(&format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1));
        pdf.into_bytes()
    }

    #[test]
    fn level_lines_on_consecutive_pages_do_not_run_together() {
        let pdf =
            extract(&one_line_pages(&["The arm is moved by a controller.", "In chess, the king is safe."])).unwrap();
        assert_eq!(pdf.text, "The arm is moved by a controller.\n\nIn chess, the king is safe.");
        let second = pdf.text.find("In chess").unwrap();
        assert_eq!(
            pdf.anchors,
            [Anchor { offset: 0, place: Place::Page(1) }, Anchor { offset: second, place: Place::Page(2) }]
        );
    }

    #[test]
    fn pages_are_trimmed_and_empty_ones_anchor_with_the_next() {
        let pages = ["\nFirst page.  ", "\n", " \n\nSecond page\n   ", ""];
        let starts: Vec<(u32, usize)> = (1..)
            .zip(pages.iter().scan(0, |offset, page| Some(std::mem::replace(offset, *offset + page.len()))))
            .collect();
        let document = paged(&pages.concat(), &starts);
        assert_eq!(document.text, "First page.\n\nSecond page");
        let offsets: Vec<(u32, usize)> = document
            .anchors
            .iter()
            .map(|a| match a.place {
                Place::Page(page) => (page, a.offset),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(offsets, [(1, 0), (2, 13), (3, 13), (4, document.text.len())]);
    }
}
