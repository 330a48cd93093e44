//! # PPTX
//!
//! In: the bytes of a PowerPoint (Office Open XML) presentation. Out: a [`Document`] with each
//! slide's text, then its speaker notes, one paragraph a line, slides in presentation order
//! (the order of `ppt/presentation.xml`'s slide list, not of the part names), an anchor at each
//! slide (numbered from 1), and the title from the package's metadata. Field values (slide
//! numbers, dates) are left out.

use super::package::{self, Markup, Package};
use super::{Anchor, Document, ExtractError, Format, Place};

/// DrawingML text: paragraphs `a:p`, runs of `a:t`.
const DRAWING_TEXT: Markup = Markup {
    paragraphs: &["p"],
    headings: &[],
    text: Some("t"),
    tabs: &["tab"],
    breaks: &["br"],
    spaces: None,
    heading_style: None,
    skip: &["fld"],
};

/// Extracts the text of a presentation.
pub fn extract(bytes: &[u8]) -> Result<Document, ExtractError> {
    let format = Format::Pptx;
    let mut package = Package::open(bytes, format)?;
    let presentation = package.required("ppt/presentation.xml")?;
    let relationships = package.relationships("ppt/presentation.xml")?;
    let mut slide_ids = Vec::new();
    package::walk(&presentation, |event| {
        if let package::Xml::Start(element) = event {
            if package::local_name(element) == "sldId" {
                slide_ids.extend(package::relationship_id(element));
            }
        }
    })
    .map_err(|e| format.invalid(format!("ppt/presentation.xml: {e}")))?;
    let mut document = Document { title: package.title("docProps/core.xml")?, ..Document::default() };
    for (number, id) in slide_ids.iter().enumerate() {
        let slide = relationships
            .iter()
            .find(|r| &r.id == id && r.is("slide"))
            .ok_or_else(|| format.invalid(format!("its slide list names {id}, which is not a slide")))?
            .target
            .clone();
        let mut paragraphs = package.paragraphs(&slide, &DRAWING_TEXT)?;
        if let Some(notes) = package.relationships(&slide)?.into_iter().find(|r| r.is("notesSlide")) {
            paragraphs.extend(package.paragraphs(&notes.target, &DRAWING_TEXT)?);
        }
        document.anchors.push(Anchor { offset: document.text.len(), place: Place::Slide(number as u32 + 1) });
        package::push_paragraphs(&mut document, &paragraphs);
    }
    Ok(document)
}
