//! Hybrid retrieval (BM25 sparse vectors beside the model's dense ones), through the real
//! binary on both backends: exact identifiers and paraphrases each find their file, filters
//! narrow every mode, restore brings the sparse vectors back, and `ingest migrate` gives a
//! collection an older build left its sparse vectors without the model.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::process::Output;

use common::{json_of, show, write, Backend, Workspace};
use ingest::sparse::{Analyzer, ANALYZER_VERSION};
use ingest::store::Point;
use serde_json::Value;

/// A model directory that does not exist: what a sparse search and `migrate` must do without.
const NO_MODEL: &str = "/nonexistent/model";

/// Honeybees' waggle dance: the paraphrase query's only answer.
const BEES: &str = "bees.txt";
/// The one file that names the `--frobnicate-widgets` flag.
const GUIDE: &str = "gearbox-guide.md";
/// The one file that names error QX-7731.
const INCIDENT: &str = "sub/incident-review.txt";
/// A Markdown file with an upper-case extension, under `sub/`.
const LOGBOOK: &str = "sub/Keeper-Log.MD";
/// Beside `sub/`, not under it, although its path starts with `<docs>/sub`.
const SUBWAY: &str = "subway-changes.md";
/// Codes that look like QX-7731 but share no term with it: the model alone ranks this file
/// first for `QX-7731`, so only the sparse side puts the incident review first.
const FAULTS: &str = "controller-faults.txt";

const DOCUMENTS: &[(&str, &str)] = &[
    (
        BEES,
        "Honeybee foragers share their discoveries through the waggle dance. A worker returning from a rich \
         patch of clover climbs onto the vertical comb inside the dark hive. She runs a short straight line while \
         shaking her abdomen, then loops back and repeats the run.\n\n\
         The angle of that straight run, measured from the vertical, matches the angle between the sun and the \
         flowers as seen from the entrance. The length of the waggle phase grows with distance: roughly one \
         second of waggling for every kilometre of flight.\n\n\
         Her nestmates crowd around her, follow her movements with their antennae and taste the nectar she \
         offers. Then they leave the colony and fly along the same bearing to the blossoms.",
    ),
    (
        GUIDE,
        "# gearbox sync\n\n\
         The `gearbox sync` command copies a project's assets to the build cache. By default it skips files \
         whose checksum has not changed since the last run.\n\n\
         ## Flags\n\n\
         - `--dry-run` prints what would be copied without touching the cache.\n\
         - `--frobnicate-widgets` rewrites every embedded asset manifest into the compact binary form before \
         copying; use it only when the target runtime is version 4 or later.\n\
         - `--jobs N` sets how many copies run at once; the default is the number of cores.\n\n\
         ## Exit status\n\n\
         The command exits with 0 when everything was copied, and with 2 when some assets were skipped because \
         they could not be read.",
    ),
    (
        INCIDENT,
        "Post-incident review: checkout outage on 14 March.\n\n\
         At 09:42 the payments database began rejecting writes after its replication log filled the disk \
         volume. The application logged error QX-7731 on every order submission for twenty-three minutes. \
         That code means the replica lag exceeded the commit window.\n\n\
         The on-call engineer expanded the volume, restarted the lagging replica and replayed the queued orders \
         from the message broker. No payments were lost, but about four hundred customers saw a failed checkout \
         page.\n\n\
         Follow-up actions: alert on disk usage above eighty percent, shorten the log retention to six hours, \
         and add a runbook entry for this error code.",
    ),
    (
        LOGBOOK,
        "# Keeper's log, Skerry Point light\n\n\
         The lamp was lit at dusk and trimmed twice during the night. A strong westerly gale drove spray over \
         the gallery rail, so the lantern glass was wiped at midnight and again at four.\n\n\
         The fog signal sounded every two minutes for three hours after the wind dropped and a bank of mist \
         rolled in from the sound.\n\n\
         The supply boat could not land; the relief keeper will come ashore when the swell eases. Paraffin \
         stock is down to eleven drums.",
    ),
    (
        SUBWAY,
        "# Weekend service changes\n\n\
         From Saturday the Green Line runs every twelve minutes instead of every eight, while crews replace \
         the track between Harbour Street and Central.\n\n\
         Replacement buses stop outside each closed station. Step-free access at Central is unaffected, and \
         night services keep their usual timetable.\n\n\
         Season tickets are valid on the replacement buses; single fares bought on the platform machines are \
         refunded at the ticket office.",
    ),
    (
        FAULTS,
        "Fault codes of the R-series milling controller.\n\n\
         QZ-7713: the coolant pump stalled; stop the spindle and clear the impeller.\n\
         QS-7137: the door interlock opened during a cycle; close it and press reset.\n\
         XQ-1773: an axis drive is over temperature; let it cool before restarting.\n\n\
         Codes that begin with Q are cleared from the operator panel. Codes that begin with X need a service \
         engineer, who reads the drive log over the maintenance port.",
    ),
];

/// Queries naming one file's identifier, found in no other file, not even in part.
const IDENTIFIER_QUERIES: &[(&str, &str)] = &[("QX-7731", INCIDENT), ("what does --frobnicate-widgets do", GUIDE)];

/// No word in common with any document once stemmed and stop words dropped; its answer is
/// the waggle dance.
const PARAPHRASE: &str = "how do insects tell each other where the food is";

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Runtime::new().unwrap().block_on(future)
}

/// Writes the documents and indexes them in small chunks; returns the number of points.
fn indexed(ws: &Workspace) -> usize {
    let docs = ws.docs();
    std::fs::create_dir_all(docs.join("sub")).unwrap();
    for (name, body) in DOCUMENTS {
        write(&docs, name, body);
    }
    let run =
        ws.ingest([docs.into_os_string()].into_iter().chain(
            ["--json", "--quiet", "--chunk-size", "48", "--chunk-overlap", "0"].into_iter().map(OsString::from),
        ));
    let report = json_of(&run, 0);
    assert_eq!(report["failed"], serde_json::json!([]), "{report:#}");
    let points = report["points"].as_u64().unwrap() as usize;
    assert!(points > DOCUMENTS.len(), "each file should have several chunks: {report:#}");
    points
}

fn path(ws: &Workspace, name: &str) -> String {
    ws.docs().join(name).display().to_string()
}

/// `ingest search QUERY -k K --json EXTRA...`.
fn search(ws: &Workspace, query: &str, k: usize, extra: &[&str]) -> Output {
    let k = k.to_string();
    ws.ingest(["search", query, "-k", &k, "--json"].iter().chain(extra))
}

/// The hits of a search that must succeed.
fn hits(ws: &Workspace, query: &str, k: usize, extra: &[&str]) -> Vec<Value> {
    let output = search(ws, query, k, extra);
    let hits = json_of(&output, 0);
    hits.as_array().unwrap_or_else(|| panic!("search --json must print an array\n{}", show(&output))).clone()
}

fn paths(hits: &[Value]) -> Vec<&str> {
    hits.iter().map(|h| h["path"].as_str().expect("every hit has a path")).collect()
}

/// (path, chunk index) of points.
type Chunks = BTreeSet<(String, u64)>;

/// (path, chunk index) of each hit.
fn chunks(hits: &[Value]) -> Chunks {
    hits.iter().map(|h| (h["path"].as_str().unwrap().to_string(), h["chunk_index"].as_u64().unwrap())).collect()
}

fn a_rare_identifier_ranks_its_file_first_sparse_and_hybrid_and_a_paraphrase_dense_and_hybrid(ws: Workspace) {
    indexed(&ws);
    for &(query, file) in IDENTIFIER_QUERIES {
        let expected = path(&ws, file);
        // Sparse, without the model.
        let sparse = hits(&ws, query, 5, &["--mode", "sparse", "--ranks", "--model-dir", NO_MODEL]);
        assert_eq!(paths(&sparse).first(), Some(&expected.as_str()), "--mode sparse {query:?}: {sparse:#?}");
        assert!(paths(&sparse).iter().all(|p| *p == expected), "only {file} holds any term of {query:?}: {sparse:#?}");
        for (i, hit) in sparse.iter().enumerate() {
            assert_eq!(hit["sparse_rank"], i + 1, "a sparse search ranks by BM25 alone: {sparse:#?}");
            assert_eq!(hit["dense_rank"], Value::Null, "a sparse search has no dense ranking: {sparse:#?}");
        }
        // Hybrid, the default: the fusion puts the only lexical match first.
        let hybrid = hits(&ws, query, 5, &["--ranks"]);
        assert_eq!(paths(&hybrid).first(), Some(&expected.as_str()), "hybrid {query:?}: {hybrid:#?}");
        assert_eq!(hybrid[0]["sparse_rank"], 1, "{hybrid:#?}");
        // Every point is among the dense side's candidates in a collection this small.
        assert!(hybrid.iter().all(|h| h["dense_rank"].as_u64().is_some_and(|r| r >= 1)), "{hybrid:#?}");
        assert_eq!(paths(&hits(&ws, query, 5, &["--mode", "hybrid"])), paths(&hybrid), "hybrid is the default");
        // The hit is the chunk that holds the identifier.
        let identifier = query.split(' ').find(|w| w.contains('-')).unwrap();
        assert!(hybrid[0]["content"].as_str().unwrap().contains(identifier), "{hybrid:#?}");
    }

    // The paraphrase shares no term with any document, by the analyzer the vectors are made with.
    let analyzer = Analyzer::english();
    let query_terms = analyzer.query(PARAPHRASE);
    assert!(!query_terms.is_empty(), "the paraphrase must have terms for BM25, or hybrid would fall back to dense");
    for (name, body) in DOCUMENTS {
        let document = analyzer.document(body);
        let shared: Vec<u32> = query_terms.indices.iter().copied().filter(|&i| document.weight(i).is_some()).collect();
        assert!(shared.is_empty(), "{name} shares terms {shared:?} with {PARAPHRASE:?}");
    }
    let bees = path(&ws, BEES);
    assert_eq!(hits(&ws, PARAPHRASE, 5, &["--mode", "sparse", "--model-dir", NO_MODEL]), Vec::<Value>::new());
    for mode in ["dense", "hybrid"] {
        let found = hits(&ws, PARAPHRASE, 5, &["--mode", mode]);
        assert_eq!(paths(&found).first(), Some(&bees.as_str()), "--mode {mode} {PARAPHRASE:?}: {found:#?}");
    }
}

#[test]
fn a_rare_identifier_and_a_paraphrase_each_rank_their_file_first_embedded() {
    a_rare_identifier_ranks_its_file_first_sparse_and_hybrid_and_a_paraphrase_dense_and_hybrid(Workspace::new());
}

#[test]
fn a_rare_identifier_and_a_paraphrase_each_rank_their_file_first_on_servers() {
    a_rare_identifier_ranks_its_file_first_sparse_and_hybrid_and_a_paraphrase_dense_and_hybrid(Workspace::on_servers());
}

fn filters_keep_only_matching_points(ws: Workspace) {
    let total = indexed(&ws);
    let stored = ws.stored_points("documents", false);
    assert_eq!(stored.len(), total);
    let matching = |keep: &dyn Fn(&Point) -> bool| -> Chunks {
        stored
            .values()
            .filter(|p| keep(p))
            .map(|p| (p.payload.path.clone(), u64::from(p.payload.chunk_index)))
            .collect()
    };
    let query = "what happened during the night";
    // With k above the collection's size, a search returns every point its filter lets through.
    let k = 100;
    assert!(total < k);
    assert_eq!(chunks(&hits(&ws, query, k, &[])), matching(&|_| true), "unfiltered, every point is a hit");

    let sub = path(&ws, "sub");
    let under_sub = format!("{sub}/");
    let is_md = |p: &Point| p.payload.path.to_lowercase().ends_with(".md");
    let cases: Vec<(Vec<&str>, Chunks)> = vec![
        (vec!["--ext", "md"], matching(&is_md)),
        (vec!["--path-prefix", &sub], matching(&|p| p.payload.path.starts_with(&under_sub))),
        (vec!["--filter", "chunk_index=0"], matching(&|p| p.payload.chunk_index == 0)),
        (vec!["--ext", "md", "--path-prefix", &sub], matching(&|p| is_md(p) && p.payload.path.starts_with(&under_sub))),
    ];
    for (filter, expected) in cases {
        assert!(!expected.is_empty() && expected.len() < total, "{filter:?} must keep some points, not all");
        let found = chunks(&hits(&ws, query, k, &filter));
        assert_eq!(found, expected, "hybrid search with {filter:?}");
    }
    // Each file's chunk 0, and the logbook's upper-case extension is `md`.
    assert_eq!(matching(&|p| p.payload.chunk_index == 0).len(), DOCUMENTS.len());
    assert!(matching(&is_md).iter().any(|(p, _)| p.ends_with(".MD")));
    assert!(!matching(&|p| p.payload.path.starts_with(&under_sub)).iter().any(|(p, _)| p.ends_with(SUBWAY)));

    // The filter applies to the sparse side too: "minutes" is in the incident review (.txt),
    // the logbook (.MD) and the subway notes (.md).
    let sparse = ["--mode", "sparse", "--model-dir", NO_MODEL];
    let all = paths(&hits(&ws, "minutes", k, &sparse)).into_iter().map(str::to_string).collect::<BTreeSet<_>>();
    let expected = [INCIDENT, LOGBOOK, SUBWAY].map(|f| path(&ws, f)).into_iter().collect::<BTreeSet<_>>();
    assert_eq!(all, expected);
    let md = hits(&ws, "minutes", k, &[&sparse[..], &["--ext", "md"]].concat());
    let md = paths(&md).into_iter().map(str::to_string).collect::<BTreeSet<_>>();
    assert_eq!(md, [LOGBOOK, SUBWAY].map(|f| path(&ws, f)).into_iter().collect::<BTreeSet<_>>());
}

#[test]
fn filters_keep_only_matching_points_embedded() {
    filters_keep_only_matching_points(Workspace::new());
}

#[test]
fn filters_keep_only_matching_points_on_servers() {
    filters_keep_only_matching_points(Workspace::on_servers());
}

/// Every point has a non-empty sparse vector made by this build's analyzer, and its file's
/// extension, lowercase.
fn assert_points_are_hybrid(points: &BTreeMap<uuid::Uuid, Point>) {
    assert!(!points.is_empty());
    for point in points.values() {
        assert!(!point.sparse.is_empty(), "point {} of {} has no sparse vector", point.id, point.payload.path);
        assert_eq!(point.sparse.indices.len(), point.sparse.values.len());
        assert_eq!(point.payload.analyzer.as_deref(), Some(ANALYZER_VERSION), "{}", point.payload.path);
        let ext = std::path::Path::new(&point.payload.path).extension().unwrap().to_string_lossy().to_lowercase();
        assert_eq!(point.payload.ext.as_deref(), Some(ext.as_str()), "{}", point.payload.path);
    }
}

fn restore_brings_the_sparse_vectors_back(ws: Workspace) {
    let total = indexed(&ws);
    let before = ws.stored_points("documents", true);
    assert_eq!(before.len(), total);
    assert_points_are_hybrid(&before);

    match ws.backend {
        Backend::Embedded => std::fs::remove_dir_all(ws.data().join("qdrant").join("documents")).unwrap(),
        Backend::Servers { .. } => {
            block_on(async { ws.live_index("documents").await.drop_collection().await.unwrap() })
        }
    }
    assert!(ws.stored_points("documents", false).is_empty());
    let restored = ws.ingest_json(["restore", "--json", "--quiet"], 0);
    assert_eq!(restored["points_restored"], total, "{restored:#}");

    let after = ws.stored_points("documents", true);
    assert_eq!(after.keys().collect::<Vec<_>>(), before.keys().collect::<Vec<_>>());
    for (id, point) in &before {
        assert!(!after[id].sparse.is_empty(), "{id} was restored without its sparse vector");
        assert_eq!(after[id].sparse, point.sparse, "{id}'s sparse vector changed in the restore");
        assert_eq!(after[id], *point, "{id} changed in the restore");
    }
    let found = hits(&ws, "QX-7731", 5, &["--mode", "sparse", "--model-dir", NO_MODEL]);
    assert_eq!(paths(&found).first(), Some(&path(&ws, INCIDENT).as_str()), "{found:#?}");
}

#[test]
fn restore_brings_the_sparse_vectors_back_embedded() {
    restore_brings_the_sparse_vectors_back(Workspace::new());
}

#[test]
fn restore_brings_the_sparse_vectors_back_on_servers() {
    restore_brings_the_sparse_vectors_back(Workspace::on_servers());
}

/// Rewrites every file of the parquet copy as a version 2 file, as a build before sparse
/// vectors wrote it: without the last four columns (the sparse vector's three and OCR's
/// mark), `ingest.schema_version` "2".
fn downgrade_parquet_copy(ws: &Workspace) {
    use arrow::array::RecordBatch;
    use arrow::datatypes::Schema;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::arrow::ArrowWriter;

    let files = ingest::parquet_copy::ParquetCopy::new(&ws.data(), "documents", 384).files().unwrap();
    assert!(!files.is_empty());
    for file in files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap()).unwrap();
        let schema = reader.schema().clone();
        assert_eq!(schema.metadata().get("ingest.schema_version").map(String::as_str), Some("4"), "{schema:#?}");
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let kept = names.len() - 4;
        assert_eq!(names[kept..], ["sparse_indices", "sparse_values", "analyzer", "ocr"], "{names:?}");
        assert_eq!(names[kept - 1], "title", "a version 2 file ends with the origin columns: {names:?}");
        let fields: Vec<_> = schema.fields()[..kept].to_vec();
        let metadata = [("ingest.schema_version".to_string(), "2".to_string())].into();
        let old = std::sync::Arc::new(Schema::new_with_metadata(fields, metadata));
        let batches: Vec<RecordBatch> = reader
            .build()
            .unwrap()
            .map(|batch| RecordBatch::try_new(old.clone(), batch.unwrap().columns()[..kept].to_vec()).unwrap())
            .collect();
        let mut writer = ArrowWriter::try_new(std::fs::File::create(&file).unwrap(), old.clone(), None).unwrap();
        for batch in &batches {
            writer.write(batch).unwrap();
        }
        writer.close().unwrap();
    }
}

/// Replaces the collection with what a build before sparse vectors left: the same points
/// with only their unnamed dense vector, payloads without `analyzer` and `ext`, and that
/// build's payload indexes.
fn recreate_collection_as_an_older_build_did(ws: &Workspace, points: &BTreeMap<uuid::Uuid, Point>) {
    let payloads: Vec<serde_json::Value> = points
        .values()
        .map(|p| {
            let payload = ingest::store::PointPayload { analyzer: None, ext: None, ..p.payload.clone() };
            let json = serde_json::to_value(payload).unwrap();
            assert!(json.get("analyzer").is_none() && json.get("ext").is_none(), "{json}");
            json
        })
        .collect();
    match &ws.backend {
        Backend::Embedded => {
            use qdrant_edge::{
                CreateIndex, Distance, EdgeConfigBuilder, EdgeOptimizersConfig, EdgeShard, EdgeVectorParamsBuilder,
                FieldIndexOperations, PayloadFieldSchema, PayloadSchemaType, PointId, PointInsertOperations,
                PointOperations, PointStruct, UpdateOperation, WalOptions,
            };
            let dir = ws.data().join("qdrant").join("documents");
            std::fs::remove_dir_all(&dir).unwrap();
            std::fs::create_dir_all(&dir).unwrap();
            let config = EdgeConfigBuilder::new()
                .vector("", EdgeVectorParamsBuilder::new(384, Distance::Cosine).build())
                .optimizers(EdgeOptimizersConfig { indexing_threshold: Some(0), ..EdgeOptimizersConfig::default() })
                .wal_options(WalOptions { segment_capacity: 4 << 20, ..WalOptions::default() })
                .build();
            let shard = EdgeShard::new(&dir, config).unwrap();
            for (name, kind) in [("doc_id", PayloadSchemaType::Keyword), ("chunk_index", PayloadSchemaType::Integer)] {
                let index = CreateIndex {
                    field_name: name.parse().unwrap(),
                    field_schema: Some(PayloadFieldSchema::FieldType(kind)),
                };
                shard.update(UpdateOperation::FieldIndexOperation(FieldIndexOperations::CreateIndex(index))).unwrap();
            }
            let edge_points = points
                .values()
                .zip(&payloads)
                .map(|(p, payload)| {
                    let payload = qdrant_edge::external::serde_json::to_value(payload).unwrap();
                    PointStruct::new(PointId::Uuid(p.id), p.vector.clone(), payload).into()
                })
                .collect();
            let upsert = PointOperations::UpsertPoints(PointInsertOperations::PointsList(edge_points));
            shard.update(UpdateOperation::PointOperation(upsert)).unwrap();
            shard.flush();
        }
        Backend::Servers { qdrant, .. } => {
            use qdrant_client::qdrant::{
                CreateCollectionBuilder, CreateFieldIndexCollectionBuilder, Distance, FieldType, PointStruct,
                UpsertPointsBuilder, VectorParamsBuilder,
            };
            // That build kept its points under the collection's own name, and its catalog had no generations.
            block_on(async { ws.live_index("documents").await.drop_collection().await.unwrap() });
            ws.execute_on_catalog("DELETE FROM generations");
            block_on(async {
                let client = qdrant_client::Qdrant::from_url(&qdrant.url()).skip_compatibility_check().build().unwrap();
                let create = CreateCollectionBuilder::new("documents")
                    .vectors_config(VectorParamsBuilder::new(384, Distance::Cosine));
                client.create_collection(create).await.unwrap();
                for (name, kind) in [("doc_id", FieldType::Keyword), ("chunk_index", FieldType::Integer)] {
                    let index = CreateFieldIndexCollectionBuilder::new("documents", name, kind).wait(true);
                    client.create_field_index(index).await.unwrap();
                }
                let grpc_points: Vec<PointStruct> = points
                    .values()
                    .zip(&payloads)
                    .map(|(p, payload)| {
                        let payload = qdrant_client::Payload::try_from(payload.clone()).unwrap();
                        PointStruct::new(p.id.to_string(), p.vector.clone(), payload)
                    })
                    .collect();
                client.upsert_points(UpsertPointsBuilder::new("documents", grpc_points).wait(true)).await.unwrap();
            });
        }
    }
}

fn migrate_gives_an_older_collection_its_sparse_vectors_without_the_model(ws: Workspace) {
    let total = indexed(&ws);
    let before = ws.stored_points("documents", true);
    assert_eq!(before.len(), total);
    assert_points_are_hybrid(&before);

    downgrade_parquet_copy(&ws);
    recreate_collection_as_an_older_build_did(&ws, &before);
    let old = ws.stored_points("documents", true);
    assert_eq!(old.len(), total);
    assert!(
        old.values().all(|p| p.sparse.is_empty() && p.payload.analyzer.is_none() && p.payload.ext.is_none()),
        "the collection must look like an older build's"
    );
    assert!(!block_on(async { ws.index("documents").await.has_sparse_vectors().await.unwrap() }));

    // Sparse search cannot run yet, and says what to do; hybrid falls back to dense, and says so.
    let sparse = search(&ws, "QX-7731", 5, &["--mode", "sparse", "--model-dir", NO_MODEL]);
    assert_eq!(sparse.status.code(), Some(1), "{}", show(&sparse));
    assert!(String::from_utf8_lossy(&sparse.stderr).contains("ingest migrate"), "{}", show(&sparse));
    let hybrid = search(&ws, PARAPHRASE, 5, &[]);
    let found = json_of(&hybrid, 0);
    assert_eq!(found[0]["path"], path(&ws, BEES), "{}", show(&hybrid));
    assert!(String::from_utf8_lossy(&hybrid.stderr).to_lowercase().contains("dense"), "{}", show(&hybrid));

    // Migrate gives the points their sparse vectors from the parquet copy, without the model.
    let migrated = ws.ingest(["migrate", "--model-dir", NO_MODEL]);
    assert_eq!(migrated.status.code(), Some(0), "{}", show(&migrated));
    let said = String::from_utf8_lossy(&migrated.stdout);
    let count = total.to_string();
    assert!(
        said.lines()
            .any(|line| line.contains("point") && line.split(|c: char| !c.is_ascii_digit()).any(|n| n == count)),
        "migrate must say it rewrote {total} points\n{}",
        show(&migrated)
    );
    if let Backend::Servers { qdrant, .. } = &ws.backend {
        // On a server, migrate also moves the collection out of its name, which becomes an alias.
        assert!(said.contains(r#"moved from collection "documents" into "documents-g1""#), "{}", show(&migrated));
        assert_eq!(qdrant.aliases(), [("documents".to_string(), "documents-g1".to_string())]);
    }
    let after = ws.stored_points("documents", true);
    assert_points_are_hybrid(&after);
    assert_eq!(after.keys().collect::<Vec<_>>(), before.keys().collect::<Vec<_>>());
    for (id, point) in &before {
        assert_eq!(after[id], *point, "{id} differs from the point this build wrote");
    }

    let sparse = search(&ws, "QX-7731", 5, &["--mode", "sparse", "--model-dir", NO_MODEL]);
    let found = json_of(&sparse, 0);
    assert_eq!(found[0]["path"], path(&ws, INCIDENT), "{}", show(&sparse));
    assert!(!String::from_utf8_lossy(&sparse.stderr).contains("migrate"), "{}", show(&sparse));
    let verified = ws.ingest_json(["verify", "--json"], 0);
    assert_eq!(verified["clean"], true, "{verified:#}");
}

#[test]
fn migrate_gives_an_older_collection_its_sparse_vectors_without_the_model_embedded() {
    migrate_gives_an_older_collection_its_sparse_vectors_without_the_model(Workspace::new());
}

#[test]
fn migrate_gives_an_older_collection_its_sparse_vectors_without_the_model_on_servers() {
    migrate_gives_an_older_collection_its_sparse_vectors_without_the_model(Workspace::on_servers());
}
