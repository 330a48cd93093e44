//! # PDF
//!
//! In: the bytes of a PDF and the run's [`OcrRequest`]. Out: a [`Document`] with the text of
//! its pages in order (as `pdf-extract` lays it out, or as OCR reads a page that is a scan),
//! each page's text trimmed and separated from the next by a paragraph break, so that the
//! last word of a page never runs into the first of the next, and an anchor where each
//! page's text begins, numbered from 1 (a page without text shares the anchor offset of the
//! next page that has some). An encrypted PDF is read when its user password is empty, and
//! refused plainly otherwise.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use pdf_extract::{Dictionary, MediaBox, Object, ObjectId, OutputDev, OutputError, PlainTextOutput, Transform};

use super::ocr::{self, OcrRequest, PageText};
use super::{Anchor, Document, ExtractError, Place};

/// What separates the text of consecutive pages.
const PAGE_BREAK: &str = "\n\n";

/// Extracts the text of a PDF, page by page, reading the pages that are scans as `ocr` asks.
pub fn extract(bytes: &[u8], ocr: &OcrRequest) -> Result<Document, ExtractError> {
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
    let page_ids = pdf.get_pages();
    let mut pages =
        split_pages(&text, &page_starts, |number| page_ids.get(&number).is_none_or(|&id| shows_image(&pdf, id)));
    let tally = ocr::read_scanned_pages(bytes, &mut pages, ocr)?;
    let mut document = paged(&pages);
    document.ocr = tally;
    Ok(document)
}

/// The pages of `text` as `pdf-extract` wrote it, where each `(page, offset, size)` of
/// `page_starts` says where a page began and how large it is, each page's text trimmed of
/// the whitespace `pdf-extract` leaves at its edges; `shows_image` says whether a page
/// (by number) draws an image.
fn split_pages(
    text: &str,
    page_starts: &[(u32, usize, (f64, f64))],
    shows_image: impl Fn(u32) -> bool,
) -> Vec<PageText> {
    let ends = page_starts.iter().skip(1).map(|&(_, start, _)| start).chain([text.len()]);
    page_starts
        .iter()
        .zip(ends)
        .map(|(&(number, start, size), end)| PageText {
            number,
            text: text[start..end].trim().to_string(),
            size,
            shows_image: shows_image(number),
        })
        .collect()
}

/// The document of `pages`: their texts joined by [`PAGE_BREAK`] (`pdf-extract` itself
/// starts a new line between pages only when the first line of a page stands at another
/// height than the last line of the page before), and an anchor where each page's text
/// begins.
pub(super) fn paged(pages: &[PageText]) -> Document {
    let mut document = Document::default();
    // Pages whose text has not begun yet: the empty ones before the next page with text.
    let mut waiting = Vec::new();
    for page in pages {
        waiting.push(page.number);
        if page.text.is_empty() {
            continue;
        }
        if !document.text.is_empty() {
            document.text.push_str(PAGE_BREAK);
        }
        anchor_pages(&mut document, &mut waiting);
        document.text.push_str(&page.text);
    }
    anchor_pages(&mut document, &mut waiting);
    document
}

/// Anchors each of `pages` where `document`'s text ends now, and empties `pages`.
fn anchor_pages(document: &mut Document, pages: &mut Vec<u32>) {
    let offset = document.text.len();
    document.anchors.extend(pages.drain(..).map(|page| Anchor { offset, place: Place::Page(page) }));
}

/// Whether the page `page` draws an image: an image among its resources' XObjects (or those
/// of a form it draws, a few levels deep), or an inline image in its content. A page whose
/// structure cannot be read counts as showing one, so that OCR gets to look at it.
fn shows_image(pdf: &pdf_extract::Document, page: ObjectId) -> bool {
    let Ok((own, inherited)) = pdf.get_page_resources(page) else { return true };
    let inherited = inherited.into_iter().filter_map(|id| pdf.get_dictionary(id).ok());
    own.into_iter().chain(inherited).any(|resources| resources_show_image(pdf, resources, 0))
        || pdf.get_page_content(page).is_ok_and(|content| has_inline_image(&content))
}

/// How deep forms drawing forms are followed.
const MAX_FORM_DEPTH: u32 = 4;

/// The dictionary `object` is, or refers to.
fn dictionary<'a>(pdf: &'a pdf_extract::Document, object: &'a Object) -> Option<&'a Dictionary> {
    pdf.dereference(object).ok().and_then(|(_, o)| o.as_dict().ok())
}

fn resources_show_image(pdf: &pdf_extract::Document, resources: &Dictionary, depth: u32) -> bool {
    let Some(xobjects) = resources.get(b"XObject").ok().and_then(|o| dictionary(pdf, o)) else { return false };
    xobjects.iter().any(|(_, xobject)| {
        let Some(stream) = pdf.dereference(xobject).ok().and_then(|(_, o)| o.as_stream().ok()) else { return false };
        match stream.dict.get(b"Subtype").and_then(Object::as_name) {
            Ok(b"Image") => true,
            Ok(b"Form") if depth < MAX_FORM_DEPTH => stream
                .dict
                .get(b"Resources")
                .ok()
                .and_then(|o| dictionary(pdf, o))
                .is_some_and(|inner| resources_show_image(pdf, inner, depth + 1)),
            _ => false,
        }
    })
}

/// Whether a content stream holds the `BI` operator that begins an inline image.
fn has_inline_image(content: &[u8]) -> bool {
    content.windows(4).any(|w| w[0].is_ascii_whitespace() && &w[1..3] == b"BI" && w[3].is_ascii_whitespace())
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
    /// Each page's number, the offset in `text` where its output begins, and its size in
    /// points.
    page_starts: Vec<(u32, usize, (f64, f64))>,
}

impl OutputDev for PageMarks<'_> {
    fn begin_page(
        &mut self,
        page: u32,
        media_box: &MediaBox,
        art_box: Option<(f64, f64, f64, f64)>,
    ) -> Result<(), OutputError> {
        let size = (media_box.urx - media_box.llx, media_box.ury - media_box.lly);
        self.page_starts.push((page, self.text.borrow().len(), size));
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
        let pdf = extract(
            &one_line_pages(&["The arm is moved by a controller.", "In chess, the king is safe."]),
            &OcrRequest::default(),
        )
        .unwrap();
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
        let starts: Vec<(u32, usize, (f64, f64))> = (1..)
            .zip(pages.iter().scan(0, |offset, page| Some(std::mem::replace(offset, *offset + page.len()))))
            .map(|(page, offset)| (page, offset, (595.0, 842.0)))
            .collect();
        let document = paged(&split_pages(&pages.concat(), &starts, |_| false));
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

    #[test]
    fn a_text_layer_shows_no_image_and_needs_no_ocr() {
        let bytes = one_line_pages(&["A page of text."]);
        let pdf = pdf_extract::Document::load_mem(&bytes).unwrap();
        let page = pdf.get_pages()[&1];
        assert!(!shows_image(&pdf, page));
        assert!(has_inline_image(b"q 10 0 0 10 0 0 cm\nBI /W 1 /H 1 ID x EI Q"));
        assert!(!has_inline_image(b"BT (BIG) Tj ET"));
        let forced = OcrRequest { mode: ocr::OcrMode::Auto, languages: "eng".into(), max_pages: 0 };
        let document = extract(&bytes, &forced).unwrap();
        assert_eq!(document.ocr, ocr::OcrTally::default(), "no page is a scan, so the cap of 0 is never met");
    }
}
