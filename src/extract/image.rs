//! # Images
//!
//! In: the bytes of a PNG, JPEG, TIFF or WebP image and the run's [`OcrRequest`]. Out: a
//! [`Document`] of the text OCR reads on it ([`ocr`]), as one page (a multi-page TIFF
//! as one page a frame), every page marked as read by OCR; with OCR off, no text and one page
//! unread. An icon (under [`ocr::MIN_IMAGE_SIDE`] pixels a side, or
//! [`ocr::MIN_IMAGE_PIXELS`] in all) has no text worth the time; an image over
//! [`ocr::MAX_PIXELS`] fails unread.

use super::{ocr, Document, ExtractError, Format, OcrRequest, OcrTally};

/// The document of an image, as the module says.
pub fn extract(bytes: &[u8], ocr: &OcrRequest) -> Result<Document, ExtractError> {
    if ocr.mode == ocr::OcrMode::Off {
        return Ok(Document { ocr: OcrTally { unread: 1, ..OcrTally::default() }, ..Document::default() });
    }
    let size =
        imagesize::blob_size(bytes).map_err(|e| Format::Image.invalid(format!("its size is unreadable ({e})")))?;
    let pixels = size.width as f64 * size.height as f64;
    if size.width.min(size.height) < ocr::MIN_IMAGE_SIDE || pixels < ocr::MIN_IMAGE_PIXELS {
        // An icon or a button: no text worth the time.
        return Ok(Document::default());
    }
    if pixels > ocr::MAX_PIXELS {
        return Err(ExtractError::Ocr(format!(
            "the image is {}×{} pixels, more than the {:.0} million OCR reads",
            size.width,
            size.height,
            ocr::MAX_PIXELS / 1e6
        )));
    }
    let started = std::time::Instant::now();
    let text = ocr::read_image_bytes(bytes, &ocr.languages).map_err(ExtractError::Ocr)?;
    let frames: Vec<&str> = text.split('\u{c}').map(str::trim).collect();
    if frames.len() > ocr.max_pages.max(1) as usize {
        return Err(ExtractError::Ocr(format!(
            "the image has {} frames, more than --max-ocr-pages {}; raise it to read such files",
            frames.len(),
            ocr.max_pages
        )));
    }
    let pages: Vec<ocr::PageText> = (1..)
        .zip(frames)
        .map(|(number, text)| ocr::PageText { number, text: text.to_string(), size: (0.0, 0.0), shows_image: true })
        .collect();
    let mut document = super::pdf::paged(&pages);
    document.ocr = OcrTally { pages: pages.iter().map(|p| p.number).collect(), time: started.elapsed(), unread: 0 };
    Ok(document)
}
