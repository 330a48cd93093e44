//! # DOCX
//!
//! In: the bytes of a Word (Office Open XML) document. Out: a [`Document`] with its body's
//! paragraphs one a line (tables cell by cell, text boxes included), then its footnotes and
//! endnotes, then the text of its page headers and footers (each distinct one once), an anchor
//! at each heading (a paragraph styled `Heading…` or `Title`), and the title from the
//! package's metadata. Deleted tracked changes and field codes are left out; a field's shown
//! value is kept.

use super::package::{self, Markup, Package};
use super::{Document, ExtractError, Format};

/// WordprocessingML: paragraphs `w:p`, text in `w:t`, headings by paragraph style.
pub(super) const WORD_TEXT: Markup = Markup {
    paragraphs: &["p"],
    headings: &[],
    text: Some("t"),
    tabs: &["tab"],
    breaks: &["br", "cr"],
    spaces: None,
    heading_style: Some("pStyle"),
    skip: &["del", "instrText"],
};

/// The parts besides the body whose text is read, in this order, by relationship type.
const NOTES_AND_MARGINS: &[&str] = &["footnotes", "endnotes", "header", "footer"];

/// Extracts the text of a Word document.
pub fn extract(bytes: &[u8]) -> Result<Document, ExtractError> {
    let format = Format::Docx;
    let mut package = Package::open(bytes, format)?;
    let main = package
        .relationships("")?
        .into_iter()
        .find(|r| r.is("officeDocument"))
        .map_or_else(|| "word/document.xml".to_string(), |r| r.target);
    let mut document = Document { title: package.title("docProps/core.xml")?, ..Document::default() };
    package::push_paragraphs(&mut document, &package.paragraphs(&main, &WORD_TEXT)?);
    let related = package.relationships(&main)?;
    let mut seen = Vec::new();
    for kind in NOTES_AND_MARGINS {
        for part in related.iter().filter(|r| r.is(kind)) {
            let mut paragraphs = package.paragraphs(&part.target, &WORD_TEXT)?;
            paragraphs.iter_mut().for_each(|p| p.heading = false);
            // The first-page, even-page and default headers often say the same.
            if !paragraphs.is_empty() && !seen.contains(&paragraphs) {
                package::push_paragraphs(&mut document, &paragraphs);
                seen.push(paragraphs);
            }
        }
    }
    Ok(document)
}
