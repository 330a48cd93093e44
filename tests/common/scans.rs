//! Scanned documents made here, from text: a PDF with a text layer is written by hand
//! ([`text_pdf`]), rendered by poppler's `pdftoppm` (the renderer `./scripts/setup.sh --ocr`
//! installs) to PNG or TIFF at a chosen resolution, and the renders wrapped into PDFs that
//! hold nothing but images ([`scanned_pdf`]), as a scanner makes them. Pages can be set in
//! two columns or turned sideways, and [`mixed_pdf`] puts a text layer and a scanned figure
//! on one page. No file of unknown origin is involved: every pixel comes from the text given.

#![allow(dead_code)] // each test binary uses a part

use std::io::Write;
use std::process::{Command, Stdio};

/// A4, in points.
pub const PAGE_SIZE: (f64, f64) = (595.0, 842.0);

/// One page of text: its lines, in one column or two, in a standard PDF font.
#[derive(Debug, Clone)]
pub struct TextPage {
    /// Each column's lines, left to right.
    pub columns: Vec<Vec<String>>,
    /// A standard font: `Times-Roman`, `Helvetica`, `Courier`.
    pub font: &'static str,
    pub size: f64,
    /// The text runs up the page, as on a sheet fed into the scanner sideways.
    pub sideways: bool,
}

impl TextPage {
    /// A page of `lines` in one column of 11-point Times.
    pub fn prose(lines: &[&str]) -> Self {
        Self {
            columns: vec![lines.iter().map(|l| l.to_string()).collect()],
            font: "Times-Roman",
            size: 11.0,
            sideways: false,
        }
    }
}

/// Writes a PDF of `objects` (numbered from 1, the first the catalog) with its cross-reference
/// table.
pub fn write_pdf(objects: &[Vec<u8>]) -> Vec<u8> {
    let mut pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::new();
    for (index, object) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        writeln!(pdf, "{} 0 obj", index + 1).unwrap();
        pdf.extend_from_slice(object);
        pdf.extend_from_slice(b"\nendobj\n");
    }
    let xref = pdf.len();
    write!(pdf, "xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).unwrap();
    for offset in offsets {
        writeln!(pdf, "{offset:010} 00000 n ").unwrap();
    }
    write!(pdf, "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).unwrap();
    pdf
}

/// A stream object of `dictionary` entries and `data`.
fn stream(dictionary: &str, data: &[u8]) -> Vec<u8> {
    let mut object = format!("<< {dictionary} /Length {} >>\nstream\n", data.len()).into_bytes();
    object.extend_from_slice(data);
    object.extend_from_slice(b"\nendstream");
    object
}

/// `text` as a PDF string literal in WinAnsi: parentheses and backslashes escaped, characters
/// outside Latin-1 as `?`.
fn literal(text: &str) -> String {
    let mut out = String::from("(");
    for c in text.chars() {
        match c {
            '(' | ')' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 => out.push(' '),
            c if (c as u32) < 0x80 => out.push(c),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\{:03o}", c as u32)),
            _ => out.push('?'),
        }
    }
    out.push(')');
    out
}

/// The content stream that sets `page`'s lines.
fn text_content(page: &TextPage) -> String {
    let (width, height) = PAGE_SIZE;
    let leading = page.size * 1.3;
    let margin = 56.0;
    let gutter = 24.0;
    let columns = page.columns.len().max(1) as f64;
    let column_width = (width - 2.0 * margin - gutter * (columns - 1.0)) / columns;
    let mut content = String::new();
    if page.sideways {
        // Turned a quarter: the lines run up the page, from its bottom right corner.
        content.push_str(&format!("q 0 1 -1 0 {width} 0 cm\n"));
    }
    for (index, lines) in page.columns.iter().enumerate() {
        let x = margin + index as f64 * (column_width + gutter);
        let top = if page.sideways { width - margin } else { height - margin };
        content.push_str(&format!("BT /F1 {} Tf {leading} TL {x} {top} Td\n", page.size));
        for line in lines {
            content.push_str(&format!("{} Tj T*\n", literal(line)));
        }
        content.push_str("ET\n");
    }
    if page.sideways {
        content.push_str("Q\n");
    }
    content
}

/// A PDF with a text layer: each page set from its [`TextPage`].
pub fn text_pdf(pages: &[TextPage]) -> Vec<u8> {
    let mut objects = vec![b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(), Vec::new()];
    let mut kids = Vec::new();
    for page in pages {
        let font = objects.len() + 1;
        objects.push(
            format!("<< /Type /Font /Subtype /Type1 /BaseFont /{} /Encoding /WinAnsiEncoding >>", page.font)
                .into_bytes(),
        );
        objects.push(stream("", text_content(page).as_bytes()));
        let content = objects.len();
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {} {}] /Resources << /Font << /F1 {font} 0 R >> >> \
                 /Contents {content} 0 R >>",
                PAGE_SIZE.0, PAGE_SIZE.1
            )
            .into_bytes(),
        );
        kids.push(format!("{} 0 R", objects.len()));
    }
    objects[1] = format!("<< /Type /Pages /Kids [{}] /Count {} >>", kids.join(" "), kids.len()).into_bytes();
    write_pdf(&objects)
}

/// The pages of the PDF `pdf`.
pub fn page_count(pdf: &[u8]) -> u32 {
    let text = String::from_utf8_lossy(pdf);
    text.matches("/Type /Page ").count() as u32
}

/// Page `page` of `pdf` rendered by `pdftoppm` at `dpi`, in `format` (`png` or `tiff`), grey.
pub fn render(pdf: &[u8], page: u32, dpi: u32, format: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pdf");
    std::fs::write(&input, pdf).unwrap();
    let number = page.to_string();
    let output = Command::new("pdftoppm")
        .args([&format!("-{format}"), "-gray", "-r", &dpi.to_string(), "-f", &number, "-l", &number, "-singlefile"])
        .arg(&input)
        .arg(dir.path().join("out"))
        .stdin(Stdio::null())
        .output()
        .expect("pdftoppm runs (./scripts/setup.sh --ocr installs it)");
    assert!(output.status.success(), "pdftoppm: {}", String::from_utf8_lossy(&output.stderr));
    let extension = if format == "tiff" { "tif" } else { format };
    std::fs::read(dir.path().join(format!("out.{extension}"))).unwrap()
}

/// A PNG's size and its pixels as a PDF image takes them: the concatenated `IDAT` data (zlib
/// with PNG's row filters, which PDF's `/Predictor 15` undoes) and its colour components.
struct PngImage {
    width: u32,
    height: u32,
    colors: u32,
    data: Vec<u8>,
}

fn parse_png(png: &[u8]) -> PngImage {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let mut image = PngImage { width: 0, height: 0, colors: 0, data: Vec::new() };
    let mut at = 8;
    while at + 8 <= png.len() {
        let length = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        let kind = &png[at + 4..at + 8];
        let body = &png[at + 8..at + 8 + length];
        match kind {
            b"IHDR" => {
                image.width = u32::from_be_bytes(body[0..4].try_into().unwrap());
                image.height = u32::from_be_bytes(body[4..8].try_into().unwrap());
                assert_eq!(body[8], 8, "8 bits a component");
                image.colors = match body[9] {
                    0 => 1,
                    2 => 3,
                    other => panic!("PNG colour type {other}"),
                };
                assert_eq!(body[12], 0, "not interlaced");
            }
            b"IDAT" => image.data.extend_from_slice(body),
            _ => {}
        }
        at += 12 + length;
    }
    image
}

/// The image XObject of a PNG.
fn image_object(png: &PngImage) -> Vec<u8> {
    let space = if png.colors == 1 { "/DeviceGray" } else { "/DeviceRGB" };
    stream(
        &format!(
            "/Type /XObject /Subtype /Image /Width {} /Height {} /ColorSpace {space} /BitsPerComponent 8 \
             /Filter /FlateDecode /DecodeParms << /Predictor 15 /Colors {} /BitsPerComponent 8 /Columns {} >>",
            png.width, png.height, png.colors, png.width
        ),
        &png.data,
    )
}

/// A PDF of pages that are nothing but an image each: page `n` shows `page_images[n]` (an
/// index into `images`, PNGs rendered at `dpi`) over the whole page, so one image may fill
/// many pages.
fn image_pages_pdf(images: &[Vec<u8>], page_images: &[usize], dpi: u32) -> Vec<u8> {
    let parsed: Vec<PngImage> = images.iter().map(|png| parse_png(png)).collect();
    let mut objects = vec![b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(), Vec::new()];
    let first_image = objects.len() + 1;
    objects.extend(parsed.iter().map(image_object));
    let mut kids = Vec::with_capacity(page_images.len());
    for &image in page_images {
        let png = &parsed[image];
        let (width, height) = (png.width as f64 * 72.0 / dpi as f64, png.height as f64 * 72.0 / dpi as f64);
        objects.push(stream("", format!("q {width:.2} 0 0 {height:.2} 0 0 cm /Im0 Do Q").as_bytes()));
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width:.2} {height:.2}] /Resources << /XObject << /Im0 {} \
                 0 R >> >> /Contents {} 0 R >>",
                first_image + image,
                objects.len()
            )
            .into_bytes(),
        );
        kids.push(format!("{} 0 R", objects.len()));
    }
    objects[1] = format!("<< /Type /Pages /Kids [{}] /Count {} >>", kids.join(" "), kids.len()).into_bytes();
    write_pdf(&objects)
}

/// `pdf` as a scanner would give it back: each page rendered at `dpi` and kept only as an
/// image, without a text layer.
pub fn scanned_pdf(pdf: &[u8], dpi: u32) -> Vec<u8> {
    let pages = page_count(pdf);
    let images: Vec<Vec<u8>> = (1..=pages).map(|page| render(pdf, page, dpi, "png")).collect();
    let order: Vec<usize> = (0..images.len()).collect();
    image_pages_pdf(&images, &order, dpi)
}

/// A PDF of `pages` pages, each the same small scan of one line of text: tens of thousands of
/// pages needing OCR in a file of a few kilobytes.
pub fn page_bomb(pages: usize) -> Vec<u8> {
    let line = text_pdf(&[TextPage::prose(&["Every page of this file is the same scan."])]);
    let image = render(&line, 1, 20, "png");
    image_pages_pdf(&[image], &vec![0; pages], 20)
}

/// One page holding a text layer (`lines`, at its top) and, below it, a scanned figure: the
/// image of `figure` (a PDF page, rendered at 300 dpi) drawn at half the page's height.
pub fn mixed_pdf(lines: &[&str], figure: &[u8]) -> Vec<u8> {
    let png = parse_png(&render(figure, 1, 300, "png"));
    let (width, height) = PAGE_SIZE;
    let mut content = text_content(&TextPage::prose(lines));
    content.push_str(&format!("q {:.2} 0 0 {:.2} 60 40 cm /Im0 Do Q\n", width - 120.0, (height / 2.0) - 60.0));
    let objects = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [5 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman /Encoding /WinAnsiEncoding >>".to_vec(),
        image_object(&png),
        format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width} {height}] /Resources << /Font << /F1 3 0 R >> \
             /XObject << /Im0 4 0 R >> >> /Contents 6 0 R >>"
        )
        .into_bytes(),
        stream("", content.as_bytes()),
    ];
    write_pdf(&objects)
}

/// Whether `pdftoppm` and `tesseract` are on `PATH`.
pub fn ocr_installed() -> bool {
    ["pdftoppm", "tesseract"]
        .iter()
        .all(|program| Command::new(program).arg("-v").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok())
}
