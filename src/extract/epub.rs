//! # EPUB
//!
//! In: the bytes of an EPUB e-book. Out: a [`Document`] with its chapters' text in reading
//! order (the OPF's spine, found through `META-INF/container.xml`), each chapter's XHTML read
//! by the [`html`](super::html) extractor (headings anchored as there), and the book's title
//! (`dc:title`). A book whose chapters are encrypted (DRM) is refused plainly.

use std::collections::{HashMap, HashSet};

use super::package::{self, Package, Xml};
use super::{html, Anchor, Document, ExtractError, Format};

const MIMETYPE: &str = "application/epub+zip";

/// Extracts the text of an e-book.
pub fn extract(bytes: &[u8]) -> Result<Document, ExtractError> {
    let format = Format::Epub;
    let invalid = |part: &str, e: String| format.invalid(format!("{part}: {e}"));
    let mut package = Package::open(bytes, format)?;
    if let Some(mimetype) = package.part("mimetype")? {
        if mimetype.trim() != MIMETYPE {
            return Err(format.invalid(format!("it is a package of type {:?}, not an e-book", mimetype.trim())));
        }
    }
    let container = package.required("META-INF/container.xml")?;
    let mut opf_path = None;
    package::walk(&container, |event| {
        if let Xml::Start(element) = event {
            if package::local_name(element) == "rootfile" && opf_path.is_none() {
                opf_path = package::attribute(element, "full-path");
            }
        }
    })
    .map_err(|e| invalid("META-INF/container.xml", e))?;
    let opf_path = opf_path.ok_or_else(|| format.invalid("its container names no package document"))?;
    let opf = package.required(&opf_path)?;
    let folder = opf_path.rsplit_once('/').map_or("", |(folder, _)| folder);

    // The manifest (id → part and media type) and the spine (ids in reading order).
    let mut manifest = HashMap::new();
    let mut spine = Vec::new();
    package::walk(&opf, |event| {
        if let Xml::Start(element) = event {
            match package::local_name(element) {
                "item" => {
                    if let (Some(id), Some(href)) =
                        (package::attribute(element, "id"), package::attribute(element, "href"))
                    {
                        let media_type = package::attribute(element, "media-type").unwrap_or_default();
                        manifest.insert(id, (package::resolve(folder, &percent_decoded(&href)), media_type));
                    }
                }
                "itemref" => spine.extend(package::attribute(element, "idref")),
                _ => {}
            }
        }
    })
    .map_err(|e| invalid(&opf_path, e))?;
    let title = package::first_title(&opf).map_err(|e| invalid(&opf_path, e))?;

    let encrypted = encrypted_parts(&mut package)?;
    let mut document = Document { title, ..Document::default() };
    for id in &spine {
        let Some((part, media_type)) = manifest.get(id) else {
            return Err(format.invalid(format!("its spine names {id:?}, which its manifest does not list")));
        };
        if !matches!(media_type.as_str(), "application/xhtml+xml" | "text/html") {
            continue;
        }
        if encrypted.contains(part) {
            return Err(format.invalid("its chapters are encrypted (DRM)"));
        }
        let chapter = html::extract(&package.required(part)?);
        let offset = document.text.len();
        document.anchors.extend(chapter.anchors.into_iter().map(|a| Anchor { offset: a.offset + offset, ..a }));
        document.text.push_str(&chapter.text);
        document.text.push('\n');
    }
    Ok(document)
}

/// The parts `META-INF/encryption.xml` says are encrypted (fonts obfuscated by the publisher
/// are listed there too, and harmless).
fn encrypted_parts(package: &mut Package) -> Result<HashSet<String>, ExtractError> {
    let Some(xml) = package.part("META-INF/encryption.xml")? else { return Ok(HashSet::new()) };
    let mut parts = HashSet::new();
    package::walk(&xml, |event| {
        if let Xml::Start(element) = event {
            if package::local_name(element) == "CipherReference" {
                parts
                    .extend(package::attribute(element, "URI").map(|uri| package::resolve("", &percent_decoded(&uri))));
            }
        }
    })
    .map_err(|e| package.format().invalid(format!("META-INF/encryption.xml: {e}")))?;
    Ok(parts)
}

/// `href` with its `%XX` escapes decoded (`Chapter%201.xhtml` → `Chapter 1.xhtml`), without
/// its fragment.
fn percent_decoded(href: &str) -> String {
    let href = href.split('#').next().unwrap_or(href);
    percent_encoding::percent_decode_str(href).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrefs_are_percent_decoded_without_their_fragment() {
        assert_eq!(percent_decoded("Text/Chapter%201.xhtml#start"), "Text/Chapter 1.xhtml");
        assert_eq!(percent_decoded("100%.xhtml"), "100%.xhtml");
    }
}
