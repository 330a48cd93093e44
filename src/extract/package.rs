//! # Zip packages and their XML parts
//!
//! In: the bytes of a zip package (Office Open XML, OpenDocument, EPUB) and the format it
//! should be. Out: its parts as text, each read up to [`PART_LIMIT`] decompressed bytes (a zip
//! bomb fails its file instead of filling memory), its relationships, and the paragraphs of
//! an XML part ([`paragraphs`]), which the DOCX, PPTX and ODT extractors share. Every error is
//! an [`ExtractError::Invalid`] of the package's format.

use std::borrow::Cow;
use std::io::{Cursor, Read};

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use super::{ExtractError, Format};

/// The most decompressed bytes read from one part of a package.
pub const PART_LIMIT: u64 = 64 << 20;

/// The first bytes of an OLE compound file: how password-protected Office files (and the old
/// binary formats) begin.
const COMPOUND_FILE_MAGIC: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

/// An open zip package of some format.
pub struct Package<'a> {
    archive: zip::ZipArchive<Cursor<&'a [u8]>>,
    format: Format,
}

impl<'a> Package<'a> {
    /// Opens `bytes` as a zip package of `format`.
    pub fn open(bytes: &'a [u8], format: Format) -> Result<Self, ExtractError> {
        if bytes.starts_with(COMPOUND_FILE_MAGIC) {
            return Err(format.invalid("it is encrypted (password-protected) or an old binary Office file"));
        }
        if !bytes.starts_with(b"PK") {
            return Err(format.invalid("the file is not a zip package"));
        }
        let archive = zip::ZipArchive::new(Cursor::new(bytes))
            .map_err(|e| format.invalid(format!("its zip package is unreadable ({e})")))?;
        Ok(Self { archive, format })
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The text of part `name`, `None` when the package has no such part.
    pub fn part(&mut self, name: &str) -> Result<Option<String>, ExtractError> {
        let format = self.format;
        let mut file = match self.archive.by_name(name) {
            Ok(file) => file,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(zip::result::ZipError::UnsupportedArchive(zip::result::ZipError::PASSWORD_REQUIRED)) => {
                return Err(format.invalid(format!("its part {name} is encrypted")))
            }
            Err(e) => return Err(format.invalid(format!("its part {name} is unreadable ({e})"))),
        };
        let mut bytes = Vec::new();
        (&mut file)
            .take(PART_LIMIT + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format.invalid(format!("its part {name} is corrupt ({e})")))?;
        if bytes.len() as u64 > PART_LIMIT {
            return Err(format.invalid(format!("its part {name} is over {} MiB uncompressed", PART_LIMIT >> 20)));
        }
        String::from_utf8(bytes).map(Some).map_err(|_| format.invalid(format!("its part {name} is not UTF-8 text")))
    }

    /// The text of part `name`, which the format requires.
    pub fn required(&mut self, name: &str) -> Result<String, ExtractError> {
        let format = self.format;
        self.part(name)?.ok_or_else(|| format.invalid(format!("it has no {name}")))
    }

    /// Whether the package has a part `name`.
    pub fn has(&self, name: &str) -> bool {
        self.archive.index_for_name(name).is_some()
    }

    /// The non-empty paragraphs of XML part `name`, which the format requires.
    pub fn paragraphs(&mut self, name: &str, markup: &Markup) -> Result<Vec<Paragraph>, ExtractError> {
        let xml = self.required(name)?;
        paragraphs(&xml, markup).map_err(|e| self.format.invalid(format!("{name}: {e}")))
    }

    /// The relationships of an Office Open XML part (`ppt/presentation.xml` →
    /// `ppt/_rels/presentation.xml.rels`; `""` for the package's own), their targets resolved
    /// against the part's folder. Empty when the part has none; external targets are left out.
    pub fn relationships(&mut self, part: &str) -> Result<Vec<Relationship>, ExtractError> {
        let (folder, file) = part.rsplit_once('/').unwrap_or(("", part));
        let rels_name =
            if folder.is_empty() { format!("_rels/{file}.rels") } else { format!("{folder}/_rels/{file}.rels") };
        let Some(xml) = self.part(&rels_name)? else { return Ok(Vec::new()) };
        let mut relationships = Vec::new();
        walk(&xml, |event| {
            if let Xml::Start(element) = event {
                if local_name(element) == "Relationship"
                    && attribute(element, "TargetMode").as_deref() != Some("External")
                {
                    if let (Some(id), Some(target)) = (attribute(element, "Id"), attribute(element, "Target")) {
                        let kind = attribute(element, "Type").unwrap_or_default();
                        relationships.push(Relationship { id, target: resolve(folder, &target), kind });
                    }
                }
            }
        })
        .map_err(|e| self.format.invalid(format!("{rels_name}: {e}")))?;
        Ok(relationships)
    }

    /// Refuses an OpenDocument package whose parts are encrypted (password-protected): its
    /// manifest gives them encryption data, and their bytes are not XML.
    pub fn refuse_encrypted_odf(&mut self) -> Result<(), ExtractError> {
        let Some(manifest) = self.part("META-INF/manifest.xml")? else { return Ok(()) };
        let mut encrypted = false;
        walk(&manifest, |event| {
            if let Xml::Start(element) = event {
                encrypted |= local_name(element) == "encryption-data";
            }
        })
        .map_err(|e| self.format.invalid(format!("META-INF/manifest.xml: {e}")))?;
        if encrypted {
            return Err(self.format.invalid("it is encrypted (password-protected)"));
        }
        Ok(())
    }

    /// The first `title` element of a metadata part (`docProps/core.xml` in Office Open XML,
    /// `meta.xml` in OpenDocument, the OPF in EPUB), when it has text.
    pub fn title(&mut self, part: &str) -> Result<Option<String>, ExtractError> {
        let Some(xml) = self.part(part)? else { return Ok(None) };
        first_title(&xml).map_err(|e| self.format.invalid(format!("{part}: {e}")))
    }
}

/// A relationship of an Office Open XML part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relationship {
    pub id: String,
    /// The target part's name in the package.
    pub target: String,
    /// The relationship type, a URI whose last segment names it (`.../slide`).
    pub kind: String,
}

impl Relationship {
    /// Whether the relationship's type is `name` (its URI's last segment).
    pub fn is(&self, name: &str) -> bool {
        self.kind.rsplit('/').next() == Some(name)
    }
}

/// The text of the first `title` element of an XML document, whitespace collapsed; `None`
/// when it has none or an empty one.
pub fn first_title(xml: &str) -> Result<Option<String>, String> {
    let (mut depth, mut title, mut done) = (0usize, String::new(), false);
    walk(xml, |event| match event {
        Xml::Start(element) if !done && (depth > 0 || local_name(element) == "title") => depth += 1,
        Xml::End(_) if depth > 0 => {
            depth -= 1;
            done |= depth == 0;
        }
        Xml::Text(text) if depth > 0 => title.push_str(text),
        _ => {}
    })?;
    let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
    Ok((!title.is_empty()).then_some(title))
}

/// `target` taken relative to `folder` (`ppt` + `slides/slide1.xml`, or `../media/x`), or from
/// the package root when it starts with `/`.
pub fn resolve(folder: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') { Vec::new() } else { folder.split('/').collect() };
    for piece in target.split('/') {
        match piece {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            piece => parts.push(piece),
        }
    }
    parts.retain(|p| !p.is_empty());
    parts.join("/")
}

/// One event of an XML part, with names reduced to their local part and text decoded.
pub enum Xml<'e> {
    /// An element opens (an empty element is a start and an end).
    Start(&'e BytesStart<'e>),
    /// An element closes: its local name.
    End(&'e str),
    /// Character data, entities resolved.
    Text(&'e str),
}

/// The local name of an element (`w:p` → `p`).
pub fn local_name<'e>(element: &'e BytesStart<'_>) -> &'e str {
    element.local_name().into_inner()
}

/// The value of the attribute of `element` whose local name is `name`.
pub fn attribute(element: &BytesStart<'_>, name: &str) -> Option<String> {
    element
        .attributes()
        .flatten()
        .find(|a| a.key.local_name().into_inner() == name)
        .and_then(|a| a.normalized_value(XmlVersion::Implicit1_0).ok().map(Cow::into_owned))
}

/// The relationship id an element refers to: its namespaced `r:id` attribute (not a plain
/// `id`).
pub fn relationship_id(element: &BytesStart<'_>) -> Option<String> {
    element
        .attributes()
        .flatten()
        .find(|a| a.key.local_name().into_inner() == "id" && a.key.prefix().is_some())
        .and_then(|a| a.normalized_value(XmlVersion::Implicit1_0).ok().map(Cow::into_owned))
}

/// Calls `visit` with each event of `xml` in document order; an error names what is malformed
/// and where.
pub fn walk(xml: &str, mut visit: impl FnMut(Xml<'_>)) -> Result<(), String> {
    let mut reader = Reader::from_str(xml);
    let malformed = |position: u64, error: &dyn std::fmt::Display| format!("malformed XML at byte {position}: {error}");
    loop {
        let event = reader.read_event().map_err(|e| malformed(reader.error_position(), &e))?;
        let position = reader.buffer_position();
        match event {
            Event::Start(element) => visit(Xml::Start(&element)),
            Event::Empty(element) => {
                visit(Xml::Start(&element));
                visit(Xml::End(local_name(&element)));
            }
            Event::End(element) => visit(Xml::End(element.local_name().into_inner())),
            Event::Text(text) => visit(Xml::Text(&text.xml10_content())),
            Event::CData(data) => visit(Xml::Text(&data)),
            Event::GeneralRef(reference) => {
                if let Some(c) = reference.resolve_char_ref().map_err(|e| malformed(position, &e))? {
                    visit(Xml::Text(c.encode_utf8(&mut [0; 4])));
                } else {
                    let name: &str = &reference;
                    let text = quick_xml::escape::resolve_predefined_entity(name)
                        .ok_or_else(|| malformed(position, &format!("unknown entity &{name};")))?;
                    visit(Xml::Text(text));
                }
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

/// How a format marks up paragraphs and their text, by local element names.
pub struct Markup {
    /// Paragraph elements (`p`; OpenDocument also `h`).
    pub paragraphs: &'static [&'static str],
    /// Paragraph elements that are headings (OpenDocument `h`).
    pub headings: &'static [&'static str],
    /// The element that holds text (`t` in Office Open XML); `None`: any text inside a
    /// paragraph (OpenDocument).
    pub text: Option<&'static str>,
    /// Elements that stand for a tab.
    pub tabs: &'static [&'static str],
    /// Elements that stand for a line break.
    pub breaks: &'static [&'static str],
    /// An element that stands for `c` spaces (OpenDocument `s`).
    pub spaces: Option<&'static str>,
    /// The paragraph style element whose `val` marks a heading when it starts with `Heading`
    /// or is `Title` (`pStyle` in WordprocessingML).
    pub heading_style: Option<&'static str>,
    /// Elements whose text is left out (deleted changes, field codes, note numbers).
    pub skip: &'static [&'static str],
}

/// A paragraph of an XML part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paragraph {
    pub text: String,
    pub heading: bool,
}

/// The non-empty paragraphs of an XML part, in document order. A paragraph nested in another
/// (a text box, a note) comes before the one that holds it.
pub fn paragraphs(xml: &str, markup: &Markup) -> Result<Vec<Paragraph>, String> {
    let mut done = Vec::new();
    // The open paragraphs, innermost last, and how deep inside a text element we are.
    let mut open: Vec<Paragraph> = Vec::new();
    let mut in_text = 0usize;
    let mut skipped = 0usize;
    walk(xml, |event| match event {
        Xml::Start(element) => {
            let name = local_name(element);
            if skipped > 0 || markup.skip.contains(&name) {
                skipped += 1;
            } else if markup.paragraphs.contains(&name) {
                open.push(Paragraph { text: String::new(), heading: markup.headings.contains(&name) });
            } else if let Some(current) = open.last_mut() {
                if Some(name) == markup.text {
                    in_text += 1;
                } else if markup.tabs.contains(&name) {
                    current.text.push('\t');
                } else if markup.breaks.contains(&name) {
                    current.text.push('\n');
                } else if Some(name) == markup.spaces {
                    let count = attribute(element, "c").and_then(|c| c.parse::<usize>().ok()).unwrap_or(1);
                    current.text.extend(std::iter::repeat_n(' ', count.min(1000)));
                } else if Some(name) == markup.heading_style {
                    let style = attribute(element, "val").unwrap_or_default();
                    current.heading |= style.starts_with("Heading") || style == "Title";
                }
            }
        }
        Xml::End(name) => {
            if skipped > 0 {
                skipped -= 1;
            } else if markup.paragraphs.contains(&name) {
                if let Some(mut paragraph) = open.pop() {
                    paragraph.text = paragraph.text.trim().to_string();
                    if !paragraph.text.is_empty() {
                        done.push(paragraph);
                    }
                }
            } else if Some(name) == markup.text {
                in_text = in_text.saturating_sub(1);
            }
        }
        Xml::Text(text) => {
            if let Some(current) = open.last_mut() {
                if skipped == 0 && (markup.text.is_none() || in_text > 0) {
                    current.text.push_str(text);
                }
            }
        }
    })?;
    Ok(done)
}

/// Appends `paragraphs` to `out`, one per line with a blank line between, recording an anchor
/// at each heading.
pub fn push_paragraphs(out: &mut super::Document, paragraphs: &[Paragraph]) {
    for paragraph in paragraphs {
        if paragraph.heading {
            out.anchors.push(super::Anchor {
                offset: out.text.len(),
                place: super::Place::Heading(paragraph.text.split_whitespace().collect::<Vec<_>>().join(" ")),
            });
        }
        out.text.push_str(&paragraph.text);
        out.text.push_str("\n\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::docx::WORD_TEXT;

    #[test]
    fn targets_resolve_against_their_folder() {
        assert_eq!(resolve("ppt", "slides/slide1.xml"), "ppt/slides/slide1.xml");
        assert_eq!(resolve("ppt/slides", "../notesSlides/notesSlide1.xml"), "ppt/notesSlides/notesSlide1.xml");
        assert_eq!(resolve("OEBPS", "/META-INF/x.xml"), "META-INF/x.xml");
        assert_eq!(resolve("", "word/document.xml"), "word/document.xml");
    }

    #[test]
    fn paragraphs_keep_text_tabs_breaks_entities_and_headings() {
        let xml = r#"<w:document xmlns:w="w"><w:body>
            <w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Tides &amp; currents</w:t></w:r></w:p>
            <w:p><w:r><w:t>A</w:t><w:tab/><w:t>B&#233;</w:t><w:br/><w:t>C</w:t></w:r><w:del><w:r><w:t>gone</w:t></w:r></w:del><w:r><w:instrText>PAGE</w:instrText></w:r></w:p>
            <w:p></w:p></w:body></w:document>"#;
        let found = paragraphs(xml, &WORD_TEXT).unwrap();
        assert_eq!(
            found,
            vec![
                Paragraph { text: "Tides & currents".into(), heading: true },
                Paragraph { text: "A\tBé\nC".into(), heading: false },
            ]
        );
        assert!(paragraphs("<w:p><w:t>open", &WORD_TEXT).is_ok_and(|p| p.is_empty()));
        assert!(paragraphs("<w:p><w:t>x</w:p></w:t>", &WORD_TEXT).unwrap_err().contains("malformed XML"));
    }

    #[test]
    fn titles_come_from_the_first_title_element() {
        let core = r#"<cp:coreProperties xmlns:dc="dc"><dc:title> Harbour
            pilots </dc:title><dc:title>second</dc:title></cp:coreProperties>"#;
        assert_eq!(first_title(core).unwrap().as_deref(), Some("Harbour pilots"));
        assert_eq!(first_title("<a><dc:title/></a>").unwrap(), None);
    }
}
