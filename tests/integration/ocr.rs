//! OCR through the binary, on scans made from known text (`tests/common/scans.rs`): scanned
//! PDFs and images are found by a sentence on them, a page with a text layer is never read by
//! OCR, `--ocr off` and a missing engine leave scans without text and say why once, a page
//! bomb stops at its cap, and a killed `tesseract` fails only its file. Each test says plainly
//! when it did not run because `tesseract` or `pdftoppm` is missing
//! (`./scripts/setup.sh --ocr` installs them; `scripts/test.sh` does).

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::scans::{self, TextPage};
use common::{json_of, show, Workspace};

/// A workspace with an empty `docs/`, when the OCR programs are here; `None`, said plainly,
/// when they are not.
fn scans_workspace(test: &str) -> Option<(Workspace, PathBuf)> {
    if !scans::ocr_installed() {
        eprintln!("DID NOT RUN: {test} needs tesseract and pdftoppm; ./scripts/setup.sh --ocr installs them");
        return None;
    }
    let ws = Workspace::new();
    let docs = ws.docs();
    std::fs::create_dir_all(&docs).unwrap();
    Some((ws, docs))
}

const LEASE: &[&str] = &[
    "Clause four. The tenant shall keep the greenhouse heated above eight degrees all winter.",
    "Clause five. Rent for the orchard cottage is paid on the first Monday of every month.",
    "Clause six. The landlord repairs the slate roof within thirty days of a written notice.",
];
const COLUMNS: [&[&str]; 2] = [
    &[
        "The left column tells how the beekeeper",
        "smokes the hive before lifting the brood",
        "frames. Cool smoke makes the guard bees",
        "gorge on honey, and a bee with a full",
        "stomach stings less. The keeper works",
        "from the side of the hive, never in front",
        "of the entrance, and lifts each frame",
        "slowly so that no bee is crushed between",
        "the frame and the wall of the box.",
    ],
    &[
        "The right column explains why the",
        "lighthouse lens rotates once every twenty",
        "seconds. Each light has its own pattern",
        "of flashes, its character, printed on the",
        "charts, so that a navigator who counts",
        "the seconds between flashes knows which",
        "headland is ahead. The lens floats on a",
        "bath of mercury, and a clockwork weight",
        "turns it through the night.",
    ],
];
const SIDEWAYS: &[&str] = &["This page was fed into the scanner sideways, and the", "glacier moraine still reads."];
const PHOTO: &[&str] = &["A photograph of a whiteboard: the choir rehearses", "the madrigal every Thursday evening."];
const FAX: &[&str] = &["Faxed order form: twelve crates of quince jelly", "for the harbour market stall."];
const TYPESET: &[&str] = &["A typeset page with a real text layer about sourdough", "starters and rye flour."];
const FIGURE: &[&str] = &["Figure caption inside the scanned diagram: compost", "heap temperature rises."];

/// The scans, text PDFs and a note, written under `docs`.
fn write_scans(docs: &Path) {
    let contract = scans::text_pdf(&[
        TextPage::prose(LEASE),
        TextPage {
            columns: COLUMNS.iter().map(|c| c.iter().map(|l| l.to_string()).collect()).collect(),
            ..TextPage::prose(&[])
        },
        TextPage { sideways: true, ..TextPage::prose(SIDEWAYS) },
    ]);
    std::fs::write(docs.join("contract-scan.pdf"), scans::scanned_pdf(&contract, 300)).unwrap();
    std::fs::write(
        docs.join("whiteboard.png"),
        scans::render(&scans::text_pdf(&[TextPage::prose(PHOTO)]), 1, 150, "png"),
    )
    .unwrap();
    std::fs::write(docs.join("fax.tiff"), scans::render(&scans::text_pdf(&[TextPage::prose(FAX)]), 1, 300, "tiff"))
        .unwrap();
    std::fs::write(docs.join("typeset.pdf"), scans::text_pdf(&[TextPage::prose(TYPESET)])).unwrap();
    let figure = scans::text_pdf(&[TextPage { size: 22.0, ..TextPage::prose(FIGURE) }]);
    std::fs::write(docs.join("mixed.pdf"), scans::mixed_pdf(TYPESET, &figure)).unwrap();
    std::fs::write(docs.join("notes.txt"), "Plain notes about the allotment's water butts.\n").unwrap();
}

/// The top hit of `query` as JSON.
fn top_hit(ws: &Workspace, query: &str) -> serde_json::Value {
    let hits = ws.ingest_json(["search", query, "--limit", "1", "--json"], 0);
    hits[0].clone()
}

fn file_name(hit: &serde_json::Value) -> &str {
    hit["path"].as_str().and_then(|p| p.rsplit('/').next()).unwrap_or_default()
}

#[test]
fn scans_and_images_are_found_by_a_sentence_on_them_and_text_layers_are_not_read_by_ocr() {
    let Some((ws, docs)) = scans_workspace("scans_and_images_are_found_by_a_sentence_on_them") else { return };
    write_scans(&docs);
    let run = |extra: &[&str]| {
        let args = [docs.to_str().unwrap(), "--json", "--quiet", "--chunk-size", "48", "--chunk-overlap", "0"];
        ws.ingest_json(args.iter().chain(extra), 0)
    };
    let report = run(&[]);
    assert_eq!(report["files_seen"], 6, "the images are walked once OCR reads them\n{report:#}");
    assert_eq!(report["ocr_pages"], 5, "three scanned pages and two images, no typeset page\n{report:#}");
    assert!(report["stage_seconds"]["ocr"].as_f64().unwrap() > 0.0, "{report:#}");
    assert!(report.get("ocr_unread").is_none(), "{report:#}");

    for (query, file, page) in [
        ("who keeps the greenhouse heated in winter", "contract-scan.pdf", 1),
        ("how does a navigator tell which headland the lighthouse is on", "contract-scan.pdf", 2),
        ("why does smoke make guard bees sting less", "contract-scan.pdf", 2),
        ("glacier moraine page fed sideways into the scanner", "contract-scan.pdf", 3),
        ("when does the choir rehearse the madrigal", "whiteboard.png", 1),
        ("crates of quince jelly for the harbour market", "fax.tiff", 1),
    ] {
        let hit = top_hit(&ws, query);
        assert_eq!(file_name(&hit), file, "{query}: {hit:#}");
        assert_eq!(hit["ocr"], true, "{query}: {hit:#}");
        assert_eq!(hit["page"], page, "{query}: {hit:#}");
    }
    // Two columns are read one after the other, not across.
    let scanned: String = ws
        .stored_points("documents", false)
        .values()
        .filter(|p| p.payload.path.ends_with("contract-scan.pdf"))
        .map(|p| p.payload.content.replace('\n', " "))
        .collect();
    assert!(scanned.contains("beekeeper smokes the hive before lifting the brood frames"), "{scanned}");
    assert!(scanned.contains("lighthouse lens rotates once every twenty seconds"), "{scanned}");
    let listing = show(&ws.ingest(["search", "quince jelly crates", "--limit", "1"]));
    assert!(listing.contains("fax.tiff p.1 (OCR)"), "the listing cites a scan as one: {listing}");

    // A page with a text layer is read from it, figure or not.
    let typeset = top_hit(&ws, "sourdough starters and rye flour");
    assert!(["typeset.pdf", "mixed.pdf"].contains(&file_name(&typeset)), "{typeset:#}");
    let stored = ws.stored_points("documents", false);
    let read_by_ocr = |name: &str| -> Vec<bool> {
        stored.values().filter(|p| p.payload.path.ends_with(name)).map(|p| p.payload.origin.ocr).collect()
    };
    for name in ["typeset.pdf", "mixed.pdf", "notes.txt"] {
        let marks = read_by_ocr(name);
        assert!(!marks.is_empty() && marks.iter().all(|ocr| !ocr), "{name}: {marks:?}");
    }
    assert!(!stored.values().any(|p| p.payload.content.contains("compost")), "the figure on a text page is not read");
    for name in ["contract-scan.pdf", "whiteboard.png", "fax.tiff"] {
        assert!(read_by_ocr(name).iter().all(|ocr| *ocr), "{name}");
    }

    // The parquet copy keeps the mark, so a restore does too.
    let copy = ingest::parquet_copy::ParquetCopy::new(&ws.data(), "documents", 384);
    let rows: Vec<_> =
        copy.files().unwrap().iter().flat_map(|f| ingest::parquet_copy::read_points(f, 384).unwrap()).collect();
    let marked: BTreeMap<uuid::Uuid, bool> = rows.iter().map(|p| (p.id, p.payload.origin.ocr)).collect();
    assert_eq!(marked, stored.iter().map(|(id, p)| (*id, p.payload.origin.ocr)).collect::<BTreeMap<_, _>>());

    // A re-run reads nothing; another language re-reads the scans, and only them.
    let again = run(&[]);
    assert_eq!((again["unchanged"].as_u64(), again["files_read"].as_u64()), (Some(6), Some(0)), "{again:#}");
    let languages = std::process::Command::new("tesseract").arg("--list-langs").output().unwrap();
    if String::from_utf8_lossy(&languages.stdout).lines().any(|l| l.trim() == "deu") {
        let relearned = run(&["--ocr-languages", "eng+deu"]);
        assert_eq!(relearned["updated"], 3, "{relearned:#}");
        assert_eq!(relearned["unchanged"], 3, "{relearned:#}");
    } else {
        eprintln!("NOTE: Tesseract has no deu data here; the change of languages was not tried");
    }
    // Turning OCR off re-reads nothing and keeps what the scans said.
    let off = run(&["--ocr", "off"]);
    assert_eq!((off["files_read"].as_u64(), off["deleted"].as_u64()), (Some(0), Some(0)), "{off:#}");
    assert_eq!(file_name(&top_hit(&ws, "quince jelly for the harbour market")), "fax.tiff");
}

#[test]
fn with_ocr_off_or_missing_scans_stay_without_text_said_once_and_are_read_once_it_is_there() {
    let Some((ws, docs)) = scans_workspace("with_ocr_off_or_missing_scans_stay_without_text") else { return };
    for (name, lines) in [("lease.pdf", LEASE), ("fax.pdf", FAX)] {
        std::fs::write(docs.join(name), scans::scanned_pdf(&scans::text_pdf(&[TextPage::prose(lines)]), 300)).unwrap();
    }
    std::fs::write(docs.join("photo.png"), scans::render(&scans::text_pdf(&[TextPage::prose(PHOTO)]), 1, 300, "png"))
        .unwrap();
    std::fs::write(docs.join("notes.txt"), "Plain notes about the allotment's water butts.\n").unwrap();
    let dir = docs.to_str().unwrap();

    let off = ws.ingest_json([dir, "--json", "--quiet", "--ocr", "off"], 0);
    assert_eq!(off["files_seen"], 3, "images are not walked without OCR\n{off:#}");
    assert_eq!(off["ocr_unread"]["files"], 2, "{off:#}");
    assert_eq!(off["ocr_unread"]["reason"], "OCR is off (--ocr off)", "{off:#}");
    let reasons: Vec<&str> = off["no_text"].as_array().unwrap().iter().map(|f| f["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["no extractable text: 1 scanned pages were not read by OCR"; 2], "{off:#}");

    // Without the programs on PATH: the same, and the run says once what installs them.
    let missing = ws.command([dir, "--full"]).env("PATH", "/nonexistent").output().unwrap();
    let said = show(&missing);
    assert_eq!(missing.status.code(), Some(0), "{said}");
    assert_eq!(said.matches("./scripts/setup.sh --ocr").count(), 1, "{said}");
    assert!(said.contains("OCR: 2 files have scanned pages left unread: OCR is not available"), "{said}");
    let check = ws.command(["check"]).env("PATH", "/nonexistent").output().unwrap();
    let checked = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "OCR is optional\n{}", show(&check));
    assert!(checked.contains("ok      ocr: OCR is not available (tesseract is not installed;"), "{checked}");
    let check = ws.ingest(["check"]);
    let checked = String::from_utf8_lossy(&check.stdout);
    assert!(checked.contains("ok      ocr: tesseract ") && checked.contains("languages installed: "), "{checked}");
    let forced = ws.command([dir, "--ocr", "force"]).env("PATH", "/nonexistent").output().unwrap();
    let refusal = String::from_utf8_lossy(&forced.stderr);
    assert_eq!(forced.status.code(), Some(1), "{}", show(&forced));
    assert_eq!(refusal.trim().lines().count(), 1, "one sentence: {refusal}");
    assert!(refusal.contains("--ocr force needs OCR, but tesseract is not installed"), "{refusal}");

    // Once OCR is there, the scans left unread are read, and the image joins.
    let read = ws.ingest_json([dir, "--json", "--quiet"], 0);
    assert_eq!(read["ocr_pages"], 3, "{read:#}");
    assert_eq!(read["unchanged"], 1, "the text file is not read again\n{read:#}");
    assert_eq!(file_name(&top_hit(&ws, "rent for the orchard cottage")), "lease.pdf");
    assert_eq!(file_name(&top_hit(&ws, "choir madrigal rehearsal on Thursday")), "photo.png");
}

/// The processes whose ancestry reaches `root`, as (pid, parent pid, command line).
fn descendants(root: u32) -> Vec<(u32, u32, Vec<String>)> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some(after_name) = stat.rsplit_once(')').map(|(_, rest)| rest) else { continue };
        let Some(parent) = after_name.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) else { continue };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args =
            cmdline.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into()).collect();
        all.push((pid, parent, args));
    }
    let parents: BTreeMap<u32, u32> = all.iter().map(|(pid, parent, _)| (*pid, *parent)).collect();
    let reaches = |mut pid: u32| {
        while let Some(&parent) = parents.get(&pid) {
            if parent == root {
                return true;
            }
            pid = parent;
        }
        false
    };
    all.into_iter().filter(|(pid, _, _)| reaches(*pid)).collect()
}

#[test]
fn a_page_bomb_stops_at_the_cap_and_a_killed_ocr_fails_only_its_file() {
    let Some((ws, docs)) = scans_workspace("a_page_bomb_stops_at_the_cap_and_a_killed_ocr_fails_only_its_file") else {
        return;
    };
    std::fs::write(docs.join("bomb.pdf"), scans::page_bomb(10_000)).unwrap();
    let long: Vec<TextPage> = (1..=5).map(|_| TextPage::prose(LEASE)).collect();
    std::fs::write(docs.join("long-scan.pdf"), scans::scanned_pdf(&scans::text_pdf(&long), 300)).unwrap();
    std::fs::write(docs.join("fax.pdf"), scans::scanned_pdf(&scans::text_pdf(&[TextPage::prose(FAX)]), 300)).unwrap();
    std::fs::write(docs.join("notes.txt"), "Plain notes about the allotment's water butts.\n").unwrap();

    let mut run = ws.spawn(&docs, &["--json", "--quiet", "--extractors", "1"]);
    // Kill the tesseract reading page 3 of the long scan, the only file with a third page.
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut killed = false;
    while !killed && Instant::now() < deadline && run.try_wait().unwrap().is_none() {
        let family = descendants(run.id());
        let third = family.iter().find(|(_, _, args)| {
            args.first().is_some_and(|a| a.ends_with("pdftoppm"))
                && args.windows(2).any(|w| w[0] == "-f" && w[1] == "3")
        });
        if let Some((_, extractor, _)) = third {
            let reader = family.iter().find(|(_, parent, args)| {
                parent == extractor && args.first().is_some_and(|a| a.ends_with("tesseract"))
            });
            if let Some((pid, _, _)) = reader {
                // SAFETY: kill sends a signal and touches no memory.
                killed = unsafe { libc::kill(*pid as i32, libc::SIGKILL) } == 0;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let output = run.wait_with_output().unwrap();
    assert!(killed, "no tesseract reading page 3 was seen\n{}", show(&output));
    let report = json_of(&output, 2);
    let failed: BTreeMap<&str, &str> = report["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap().rsplit('/').next().unwrap(), f["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        failed.get("bomb.pdf").copied(),
        Some("OCR failed: 10000 pages need OCR, more than --max-ocr-pages 200; raise it to read such files"),
        "{report:#}"
    );
    assert_eq!(
        failed.get("long-scan.pdf").copied(),
        Some("OCR failed: page 3: tesseract was killed by signal 9"),
        "{report:#}"
    );
    assert_eq!(failed.len(), 2, "{report:#}");
    assert_eq!(report["added"], 2, "the fax and the notes\n{report:#}");
    assert_eq!(file_name(&top_hit(&ws, "quince jelly for the harbour market stall")), "fax.pdf");
}
