//! The whole run through the real binary on the shipped fixtures: the real model, the
//! parquet copy read back, and each backend: the embedded catalog and engine, and
//! PostgreSQL with the gRPC test Qdrant server.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use common::{show, Workspace};
use ingest::parquet_copy::{read_points, ParquetCopy};

/// A query about each good fixture's topic, phrased without its title words where possible.
const QUERIES: &[(&str, &str)] = &[
    ("astronomy/black-holes.txt", "what happens when light crosses the event horizon of a collapsed star"),
    ("cooking/sourdough.md", "how do I feed my starter and proof the dough in a banneton"),
    ("gardening/tomatoes.pdf", "why does my vegetable fruit get dark sunken patches at the bottom"),
    ("finance/compound-interest.docx", "how many years until my savings double at six percent"),
    ("history/roman-aqueducts.txt", "how did ancient Rome carry water from springs into the city"),
    ("biology/honeybees.md", "how do foragers tell the hive where the flowers are"),
    ("sports/marathon-training.pdf", "how long should my longest run be before the race and what is tapering"),
    ("music/jazz-improvisation.docx", "soloing over the ii V I chord changes with swing feel"),
    ("software/README", "forecast when the sea is highest in a port from harmonic constituents"),
    ("software/LICENSE", "may I sell copies, and is there any warranty if it breaks"),
    ("maritime/lighthouse-keeping.html", "who designed the beacon lens of concentric glass prism rings"),
    ("cycling/bike-maintenance.xlsx", "after how many kilometres should a stretched bicycle chain be replaced"),
    ("weather/rainfall.ods", "which city has the most rainy days a year and how many millimetres of precipitation"),
    ("coffee/espresso-brewing.pptx", "how to texture milk into silky microfoam for a latte"),
    (
        "architecture/gothic-cathedrals.odt",
        "external half arches that carry the thrust of the vault so the walls can hold big windows",
    ),
    ("sailing/knots.epub", "a fixed loop at the end of a rope that will not slip or jam"),
];

/// Where in its file the top hit of a query must be: a JSON search row's field and value.
const PLACES: &[(&str, &str, &str)] = &[
    ("coffee/espresso-brewing.pptx", "slide", "1"),
    ("cycling/bike-maintenance.xlsx", "sheet", "Service intervals"),
    ("weather/rainfall.ods", "sheet", "Annual rainfall"),
];

/// The bad inputs of the formats read from zip packages (and HTML, and XLS): each fails
/// alone, with a reason naming its format.
const BAD_PACKAGES: &[(&str, &str)] = &[
    ("truncated.xlsx", "not a valid XLSX file: its zip package is unreadable"),
    ("truncated.ods", "not a valid ODS file: its zip package is unreadable"),
    ("truncated.pptx", "not a valid PPTX file: its zip package is unreadable"),
    ("truncated.odt", "not a valid ODT file: its zip package is unreadable"),
    ("truncated.epub", "not a valid EPUB file: its zip package is unreadable"),
    ("not-a-zip.xlsx", "not a valid XLSX file: the file is not a zip package"),
    ("not-a-zip.ods", "not a valid ODS file: the file is not a zip package"),
    ("not-a-zip.pptx", "not a valid PPTX file: the file is not a zip package"),
    ("not-a-zip.odt", "not a valid ODT file: the file is not a zip package"),
    ("not-a-zip.epub", "not a valid EPUB file: the file is not a zip package"),
    ("wrong-content.xlsx", "not a valid XLSX file: "),
    ("wrong-content.ods", "not a valid ODS file: "),
    ("wrong-content.pptx", "not a valid PPTX file: it has no ppt/presentation.xml"),
    (
        "wrong-content.odt",
        "not a valid ODT file: it is a package of type \"application/vnd.oasis.opendocument.spreadsheet\"",
    ),
    (
        "wrong-content.epub",
        "not a valid EPUB file: it is a package of type \"application/vnd.oasis.opendocument.text\"",
    ),
    ("encrypted.xlsx", "not a valid XLSX file: it is encrypted"),
    ("encrypted.pptx", "not a valid PPTX file: it is encrypted"),
    ("encrypted.docx", "not a valid DOCX file: it is encrypted"),
    ("encrypted.odt", "not a valid ODT file: it is encrypted"),
    ("encrypted.ods", "not a valid ODS file: it is encrypted"),
    ("encrypted.epub", "not a valid EPUB file: its chapters are encrypted (DRM)"),
    ("not-a-workbook.xls", "not a valid XLS file: "),
    ("image.html", "not a valid HTML file: it looks binary"),
];

#[test]
fn fixtures_are_indexed_searchable_and_copied_to_parquet_embedded() {
    fixtures_are_indexed_searchable_and_copied_to_parquet(Workspace::new().with_fixtures());
}

#[test]
fn fixtures_are_indexed_searchable_and_copied_to_parquet_on_servers() {
    fixtures_are_indexed_searchable_and_copied_to_parquet(Workspace::on_servers().with_fixtures());
}

fn fixtures_are_indexed_searchable_and_copied_to_parquet(ws: Workspace) {
    let docs = ws.docs();
    let report = ws.ingest_json([docs.as_os_str(), "--json".as_ref(), "--quiet".as_ref()], 2);

    assert_eq!(report["status"], "completed", "{report:#}");
    assert_eq!(report["added"], 16, "{report:#}");
    assert_eq!(report["files_seen"], 45, "{report:#}");
    let failed: BTreeMap<String, String> = report["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let path = f["path"].as_str().unwrap();
            let name = path.rsplit('/').next().unwrap().to_string();
            (name, f["reason"].as_str().unwrap().to_string())
        })
        .collect();
    let expect = [
        ("truncated.pdf", "corrupt or unreadable PDF"),
        ("not-a-zip.docx", "not a valid DOCX file: the file is not a zip package"),
        ("binary.txt", "file looks binary"),
        ("caf\u{FFFD}-latin1-name.txt", "file name is not valid UTF-8"),
    ]
    .into_iter()
    .chain(BAD_PACKAGES.iter().copied());
    let expect: Vec<(&str, &str)> = expect.collect();
    assert_eq!(failed.len(), expect.len(), "{failed:#?}");
    for (name, reason) in expect {
        let got = failed.get(name).unwrap_or_else(|| panic!("{name} not reported as failed: {failed:#?}"));
        assert!(got.starts_with(reason), "{name}: {got}");
    }
    let reasons: BTreeSet<&String> = failed.values().collect();
    assert_eq!(reasons.len(), failed.len(), "reasons must be distinct: {failed:#?}");
    // An empty file holds no text: recorded as such, not as a failure.
    let no_text = &report["no_text"];
    assert_eq!(no_text.as_array().map(Vec::len), Some(1), "{report:#}");
    assert!(no_text[0]["path"].as_str().unwrap().ends_with("bad/empty.md"), "{report:#}");
    assert_eq!(no_text[0]["reason"], "file is empty", "{report:#}");
    // A file without an extension is taken for its contents: README and LICENSE are text
    // (indexed above), an executable is not, and is skipped, not failed.
    let not_text = &report["not_text"];
    assert_eq!(not_text.as_array().map(Vec::len), Some(1), "{report:#}");
    assert!(not_text[0]["path"].as_str().unwrap().ends_with("bad/tool-binary"), "{report:#}");
    assert_eq!(not_text[0]["reason"], "not text: it contains NUL bytes", "{report:#}");

    for (fixture, query) in QUERIES {
        let hits = ws.ingest_json(["search", query, "--limit", "3", "--json"], 0);
        let top = hits[0]["path"].as_str().unwrap_or_default();
        assert!(top.ends_with(fixture), "query {query:?}: top hit {top}, expected {fixture}\n{hits:#}");
        if let Some((_, field, value)) = PLACES.iter().find(|(f, _, _)| f == fixture) {
            let found = hits[0][field].to_string();
            assert_eq!(found.trim_matches('"'), *value, "query {query:?}: {field} of the top hit\n{hits:#}");
        }
    }
    // Each paragraph of the tomato PDF is a page: the chunk holding the fourth's answer spans
    // page 4, and the one of the fifth alone is on page 5.
    let pages = |query: &str| {
        let hits = ws.ingest_json(["search", query, "--limit", "1", "--json"], 0);
        assert!(hits[0]["path"].as_str().unwrap().ends_with("tomatoes.pdf"), "{hits:#}");
        (hits[0]["page"].as_u64().unwrap(), hits[0]["page_end"].as_u64().unwrap(), hits[0]["content"].to_string())
    };
    let (page, page_end, content) = pages("irregular watering and poor calcium uptake rot the bottom of tomato fruit");
    assert!(content.contains("blossom end rot") && page <= 4 && 4 <= page_end, "pages {page}-{page_end}: {content}");
    let (page, page_end, content) = pages("tomato hornworms, early blight and late blight");
    assert_eq!((page, page_end), (5, 5), "{content}");
    // Titles the files declare travel with their chunks.
    let hits = ws.ingest_json(["search", QUERIES[13].1, "--limit", "1", "--json"], 0);
    assert_eq!(hits[0]["title"], "Espresso training for new baristas", "{hits:#}");
    assert_eq!(hits[0].get("page"), None, "a slide has no page: {hits:#}");
    // The plain listing cites the place.
    let listing = show(&ws.ingest(["search", QUERIES[13].1, "--limit", "1"]));
    assert!(listing.contains("espresso-brewing.pptx slide 1  #"), "{listing}");

    // The parquet copy holds exactly the points, vectors included.
    let stored = ws.stored_points("documents", true);
    assert_eq!(stored.len() as u64, report["points"].as_u64().unwrap());
    let copy = ParquetCopy::new(&ws.data(), "documents", 384);
    let files = copy.files().unwrap();
    assert_eq!(files.len(), 1, "one compacted file per job: {files:?}");
    let rows = read_points(&files[0], 384).unwrap();
    assert_eq!(rows.len(), stored.len());
    for row in rows {
        let point = stored.get(&row.id).unwrap_or_else(|| panic!("parquet row {} has no point", row.id));
        assert_eq!(point.payload, row.payload);
        assert_eq!(point.vector.len(), 384);
        for (a, b) in point.vector.iter().zip(&row.vector) {
            assert!((a - b).abs() < 1e-6, "vector of {} differs", row.id);
        }
    }

    // A second run over the same tree embeds nothing; the empty file and the binary are
    // settled too.
    let again = ws.ingest_json([docs.as_os_str(), "--json".as_ref(), "--quiet".as_ref()], 2);
    assert_eq!(again["unchanged"], 18, "{again:#}");
    assert_eq!(again["chunks"], 0, "{again:#}");
}

#[test]
fn wrong_flags_missing_directory_and_missing_model_get_one_clear_sentence() {
    let ws = Workspace::new();
    /// Arguments, extra environment, and what stderr must say.
    type Case<'a> = (Vec<String>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (vec!["--chunk-size".into(), "lots".into(), "x".into()], vec![], "invalid value 'lots'"),
        (vec![ws.temp.path().join("nope").display().to_string()], vec![], "is not a directory"),
        (
            vec![ws.temp.path().display().to_string(), "--chunk-size".into(), "5000".into()],
            vec![],
            "--chunk-size must be between 1 and 254",
        ),
        (
            vec![ws.temp.path().display().to_string()],
            vec![("INGEST_HOME", "/nonexistent-ingest-home")],
            "run scripts/setup.sh",
        ),
    ];
    for (args, envs, expected) in cases {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_ingest"))
            .args(&args)
            .arg("--data-dir")
            .arg(ws.data())
            .envs(envs.iter().copied())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}\n{}", show(&output));
        assert!(stderr.contains(expected), "{args:?}: expected {expected:?}\n{}", show(&output));
        assert!(!stderr.contains("panicked") && !stderr.contains("stack backtrace"), "{}", show(&output));
    }
}

#[test]
fn check_and_migrate_report_each_part_on_both_backends() {
    for ws in [Workspace::new(), Workspace::on_servers()] {
        let migrate = ws.ingest(["migrate"]);
        assert_eq!(migrate.status.code(), Some(0), "{}", show(&migrate));
        assert!(String::from_utf8_lossy(&migrate.stdout).contains("1 jobs and files"), "{}", show(&migrate));

        let check = ws.ingest(["check"]);
        let stdout = String::from_utf8_lossy(&check.stdout);
        assert_eq!(check.status.code(), Some(0), "{}", show(&check));
        for part in ["ok      model", "ok      catalog", "ok      vector store"] {
            assert!(stdout.contains(part), "{part}: {}", show(&check));
        }
    }
    // A wrong Qdrant address: the store line fails, the others still report.
    let ws = Workspace::new();
    let check = ws.ingest(["check", "--qdrant-url", "http://127.0.0.1:1"]);
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(1), "{}", show(&check));
    assert!(
        stdout.contains("ok      model") && stdout.contains("FAILED  vector store: cannot reach Qdrant"),
        "{stdout}"
    );
}
