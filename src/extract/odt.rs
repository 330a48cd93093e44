//! # ODT
//!
//! In: the bytes of an OpenDocument text (`.odt`). Out: a [`Document`] with its paragraphs and
//! headings one a line (tables cell by cell, notes before the paragraph that cites them),
//! then the text of its page headers and footers, an anchor at each heading (`text:h`), and
//! the title from `meta.xml`. Deleted tracked changes and note numbers are left out.

use super::package::{self, Markup, Package};
use super::{Document, ExtractError, Format};

/// OpenDocument text: paragraphs `text:p`, headings `text:h`, text directly inside them.
const ODF_TEXT: Markup = Markup {
    paragraphs: &["p", "h"],
    headings: &["h"],
    text: None,
    tabs: &["tab"],
    breaks: &["line-break"],
    spaces: Some("s"),
    heading_style: None,
    skip: &["tracked-changes", "note-citation"],
};

const MIMETYPE: &str = "application/vnd.oasis.opendocument.text";

/// Extracts the text of an OpenDocument text.
pub fn extract(bytes: &[u8]) -> Result<Document, ExtractError> {
    let format = Format::Odt;
    let mut package = Package::open(bytes, format)?;
    if let Some(mimetype) = package.part("mimetype")? {
        if mimetype.trim() != MIMETYPE {
            return Err(format.invalid(format!("it is a package of type {:?}, not a text document", mimetype.trim())));
        }
    }
    package.refuse_encrypted_odf()?;
    let mut document = Document { title: package.title("meta.xml")?, ..Document::default() };
    package::push_paragraphs(&mut document, &package.paragraphs("content.xml", &ODF_TEXT)?);
    // Page headers and footers live in the styles, with the master pages.
    if package.has("styles.xml") {
        let mut margins = package.paragraphs("styles.xml", &ODF_TEXT)?;
        margins.iter_mut().for_each(|p| p.heading = false);
        package::push_paragraphs(&mut document, &margins);
    }
    Ok(document)
}
