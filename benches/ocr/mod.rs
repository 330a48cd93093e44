//! Section 13, OCR accuracy and speed: pages of real text from this machine (man pages
//! rendered by `man`, and package documentation) set in 10-point Courier on A4 pages
//! (`tests/common/scans.rs`), rendered by poppler at 300 dpi (and 150 dpi beside it), and read
//! back by the extractor's OCR path (`extract_in_process` on the page image, Tesseract under
//! it): the character error rate against the text set on the page (whitespace runs counted as
//! one space), pages/s with one reader and with one per core, and, in a mixed run of the
//! binary (the texts as files, plus scanned PDFs of some of them), the OCR stage's seconds and
//! the wall time the scans add beside the same run without them.
//!
//! `INGEST_BENCH_OCR_PAGES` sets the page count (default 60; 12 with `--quick`).

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;

use ingest::extract::ocr::{OcrMode, OcrRequest};

use crate::scans::{self, TextPage};
use crate::Bench;

/// Characters a line of 10-point Courier holds between the page's margins.
const LINE_CHARS: usize = 78;
const LINES_PER_PAGE: usize = 56;

/// Section 13: see the module's documentation.
pub fn ocr(bench: &Bench) -> Result<serde_json::Value> {
    if !scans::ocr_installed() {
        println!("\n13. OCR: DID NOT RUN: tesseract and pdftoppm are missing (./scripts/setup.sh --ocr installs them)");
        return Ok(json!({ "ran": false }));
    }
    let pages_wanted: usize = match std::env::var("INGEST_BENCH_OCR_PAGES") {
        Ok(text) => text.parse().context("INGEST_BENCH_OCR_PAGES must be a number of pages")?,
        Err(_) if bench.quick => 12,
        Err(_) => 60,
    };
    let pages = real_pages(pages_wanted)?;
    anyhow::ensure!(!pages.is_empty(), "no man pages or package documentation found to set");
    let request = OcrRequest { mode: OcrMode::Auto, languages: "eng".into(), max_pages: 10 };

    let mut figures = serde_json::Map::new();
    for dpi in [300, 150] {
        let images: Vec<(String, Vec<u8>)> = pages
            .iter()
            .map(|lines| {
                let pdf = scans::text_pdf(&[courier(lines)]);
                (lines.join("\n"), scans::render(&pdf, 1, dpi, "png"))
            })
            .collect();
        // One reader, page after page.
        let started = Instant::now();
        let (mut errors, mut characters) = (0usize, 0usize);
        let (mut worst, mut worst_page) = (0f64, String::new());
        for (source, image) in &images {
            let read = ingest::extract::extract_in_process("png", image, &request)
                .map(|document| document.text)
                .unwrap_or_default();
            let (expected, got) = (normalized(source), normalized(&read));
            let distance = levenshtein(&expected, &got);
            let rate = distance as f64 / expected.len().max(1) as f64;
            if rate > worst {
                (worst, worst_page) = (rate, source.lines().find(|l| !l.trim().is_empty()).unwrap_or("").to_string());
            }
            errors += distance;
            characters += expected.len();
        }
        let one_reader = images.len() as f64 / started.elapsed().as_secs_f64();
        // One reader per core, as the extractor processes run.
        let cores = bench.threads.max(1);
        let started = Instant::now();
        let request = &request;
        std::thread::scope(|scope| {
            for part in images.chunks(images.len().div_ceil(cores)) {
                scope.spawn(move || {
                    for (_, image) in part {
                        ingest::extract::extract_in_process("png", image, request).ok();
                    }
                });
            }
        });
        let all_cores = images.len() as f64 / started.elapsed().as_secs_f64();
        let cer = errors as f64 / characters.max(1) as f64;
        println!(
            "\n13. OCR of {} pages of real text at {dpi} dpi: character error rate {:.2}% (worst page {:.2}%){}",
            images.len(),
            cer * 100.0,
            worst * 100.0,
            if dpi == 300 { " (target < 2%)" } else { "" }
        );
        println!("   the worst page begins {worst_page:?}");
        println!("   {one_reader:.2} pages/s with one reader, {all_cores:.2} pages/s with {cores} (one per core)");
        figures.insert(
            format!("dpi_{dpi}"),
            json!({
                "pages": images.len(), "characters": characters, "character_error_rate": cer,
                "worst_page_error_rate": worst, "worst_page_begins": worst_page,
                "pages_per_second_one_reader": one_reader,
                "pages_per_second_all_cores": all_cores, "cores": cores,
            }),
        );
    }
    figures.insert("mixed_run".into(), mixed_run(bench, &pages)?);
    figures.insert("target_character_error_rate_at_300_dpi".into(), json!(0.02));
    Ok(serde_json::Value::Object(figures))
}

/// A run of the binary over the pages' texts as files, with scanned PDFs of a quarter of the
/// pages beside them, against the same run without the scans: the OCR stage's seconds, and
/// the share of the mixed run's wall time the scans add.
fn mixed_run(bench: &Bench, pages: &[Vec<String>]) -> Result<serde_json::Value> {
    let texts = bench.dir("ocr-texts");
    std::fs::create_dir_all(&texts)?;
    for (i, lines) in pages.iter().enumerate() {
        std::fs::write(texts.join(format!("page-{i:03}.txt")), lines.join("\n"))?;
    }
    let mixed = bench.dir("ocr-mixed");
    std::fs::create_dir_all(&mixed)?;
    for entry in std::fs::read_dir(&texts)? {
        let entry = entry?;
        std::fs::copy(entry.path(), mixed.join(entry.file_name()))?;
    }
    let scanned: Vec<&Vec<String>> = pages.iter().step_by(4).collect();
    for (i, group) in scanned.chunks(5).enumerate() {
        let pdf = scans::text_pdf(&group.iter().map(|lines| courier(lines)).collect::<Vec<_>>());
        std::fs::write(mixed.join(format!("scan-{i:02}.pdf")), scans::scanned_pdf(&pdf, 300))?;
    }
    let run = |docs: &Path, name: &str| -> Result<(f64, serde_json::Value)> {
        let data = bench.dir(name);
        let args: Vec<&std::ffi::OsStr> =
            vec![docs.as_os_str(), "--data-dir".as_ref(), data.as_os_str(), "--ocr".as_ref(), "auto".as_ref()];
        let (code, seconds, _, report) = crate::measured_run(&args)?;
        anyhow::ensure!(code == 0, "the run over {} failed: {report}", docs.display());
        Ok((seconds, report))
    };
    let (without, _) = run(&texts, "ocr-texts-data")?;
    let (with, report) = run(&mixed, "ocr-mixed-data")?;
    let ocr_seconds = report["stage_seconds"]["ocr"].as_f64().unwrap_or_default();
    let added_share = (with - without).max(0.0) / with;
    println!(
        "   a mixed run ({} text files and {} scanned pages): {with:.1} s, {:.1} s of it reading {} pages by OCR; \
         without the scans {without:.1} s: the scans add {:.0}% of the mixed run's time",
        pages.len(),
        scanned.len(),
        ocr_seconds,
        report["ocr_pages"],
        added_share * 100.0
    );
    Ok(json!({
        "text_files": pages.len(), "scanned_pages": scanned.len(), "ocr_pages": report["ocr_pages"],
        "seconds": with, "seconds_without_scans": without, "ocr_stage_seconds": ocr_seconds,
        "share_of_time_added_by_scans": added_share,
    }))
}

/// Up to `count` pages of real text: rendered man pages, then package documentation, in ASCII
/// (other characters dropped), lines cut to [`LINE_CHARS`] and blank runs folded.
fn real_pages(count: usize) -> Result<Vec<Vec<String>>> {
    let sources = crate::RealSources::find();
    let mut lines = Vec::new();
    let man = sources.man_pages.iter().map(|p| crate::render_man_page(p));
    let docs = sources.docs.iter().map(|p| crate::read_doc(p));
    for text in man.chain(docs) {
        let Ok(text) = text else { continue };
        let text = String::from_utf8_lossy(&text).replace(|c: char| !c.is_ascii() || (c.is_control() && c != '\n'), "");
        for line in text.lines() {
            let line: String = line.trim_end().chars().take(LINE_CHARS).collect();
            if line.trim().is_empty() && lines.last().is_none_or(|l: &String| l.trim().is_empty()) {
                continue;
            }
            lines.push(line);
        }
        if lines.len() >= count * LINES_PER_PAGE {
            break;
        }
    }
    Ok(lines.chunks(LINES_PER_PAGE).take(count).map(<[String]>::to_vec).collect())
}

/// A page of `lines` in 10-point Courier.
fn courier(lines: &[String]) -> TextPage {
    TextPage { columns: vec![lines.to_vec()], font: "Courier", size: 10.0, sideways: false }
}

/// `text` with every run of whitespace as one space, trimmed.
fn normalized(text: &str) -> Vec<char> {
    text.split_whitespace().collect::<Vec<_>>().join(" ").chars().collect()
}

/// The edit distance between `a` and `b`, in characters.
fn levenshtein(a: &[char], b: &[char]) -> usize {
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}
