//! # EPUB
//!
//! In: the bytes of an EPUB e-book. Out: a [`Document`] with its chapters' text in reading
//! order (the OPF's spine, found through `META-INF/container.xml`), each chapter's XHTML read
//! by the [`html`](super::html) extractor (headings anchored as there), and the book's title
//! (`dc:title`). A chapter the spine lists more than once is read once, where it first
//! appears: a tiny book cannot expand into an endless text by repeating its spine. A book
//! whose chapters are encrypted (DRM) is refused plainly.

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
    // The chapters read so far, by part: an id listed again, or another id for the same part,
    // adds nothing.
    let mut read = HashSet::new();
    for id in &spine {
        let Some((part, media_type)) = manifest.get(id) else {
            return Err(format.invalid(format!("its spine names {id:?}, which its manifest does not list")));
        };
        if !matches!(media_type.as_str(), "application/xhtml+xml" | "text/html") || !read.insert(part) {
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
    use std::io::Write;

    use super::*;
    use crate::extract::Place;

    /// An EPUB of `chapters` (an XHTML part under `OEBPS/` of each name, headed by its name),
    /// whose manifest lists the items `manifest` (id, href) and whose spine the ids `spine`.
    fn book(chapters: &[&str], manifest: &[(&str, &str)], spine: &[&str]) -> Vec<u8> {
        let items: String = manifest
            .iter()
            .map(|(id, href)| format!(r#"<item id="{id}" href="{href}" media-type="application/xhtml+xml"/>"#))
            .collect();
        let itemrefs: String = spine.iter().map(|id| format!(r#"<itemref idref="{id}"/>"#)).collect();
        let opf = format!(
            r#"<package xmlns="http://www.idpf.org/2007/opf" version="3.0">
            <manifest>{items}</manifest><spine>{itemrefs}</spine></package>"#
        );
        let container = r#"<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
            <rootfiles><rootfile full-path="OEBPS/content.opf"/></rootfiles></container>"#;
        let mut parts = vec![
            ("mimetype".to_string(), MIMETYPE.to_string()),
            ("META-INF/container.xml".to_string(), container.to_string()),
            ("OEBPS/content.opf".to_string(), opf),
        ];
        parts.extend(chapters.iter().map(|name| {
            let body = format!("<h1>{name}</h1><p>The text of {name}.</p>");
            (
                format!("OEBPS/{name}.xhtml"),
                format!(r#"<html xmlns="http://www.w3.org/1999/xhtml"><body>{body}</body></html>"#),
            )
        }));
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, contents) in parts {
            zip.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
            zip.write_all(contents.as_bytes()).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    fn headings(document: &Document) -> Vec<&str> {
        document
            .anchors
            .iter()
            .map(|anchor| match &anchor.place {
                Place::Heading(heading) => heading.as_str(),
                other => panic!("not a heading: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_chapter_the_spine_repeats_is_read_once_where_it_first_appears() {
        let manifest = [("tides", "Tides.xhtml"), ("currents", "Currents.xhtml")];
        let spine: Vec<&str> = ["currents"].into_iter().chain(["tides", "currents"].repeat(50_000)).collect();
        let document = extract(&book(&["Tides", "Currents"], &manifest, &spine)).unwrap();
        assert_eq!(headings(&document), ["Currents", "Tides"]);
        assert_eq!(document.text, "Currents\n\nThe text of Currents.\n\nTides\n\nThe text of Tides.\n\n");
    }

    #[test]
    fn two_ids_for_one_part_read_it_once() {
        let manifest = [("tides", "Tides.xhtml"), ("again", "./Tides.xhtml#slack-water"), ("end", "End.xhtml")];
        let document = extract(&book(&["Tides", "End"], &manifest, &["tides", "again", "end"])).unwrap();
        assert_eq!(headings(&document), ["Tides", "End"]);
    }

    #[test]
    fn hrefs_are_percent_decoded_without_their_fragment() {
        assert_eq!(percent_decoded("Text/Chapter%201.xhtml#start"), "Text/Chapter 1.xhtml");
        assert_eq!(percent_decoded("100%.xhtml"), "100%.xhtml");
    }
}
