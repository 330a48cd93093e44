//! Every installed model against its reference implementation: the vectors `ingest` makes of
//! a handful of passages and queries, with the pooling, normalisation and prefixes it reads
//! from the model's directory, agree to 1e-3 cosine with those of fastembed (Python), which
//! is told the model's pooling and prefixes by this test, from the model's own
//! documentation, not from the directory. A wrong pooling or a missing prefix fails it.

use ingest::chunk::count_tokens;
use ingest::embed::{Batching, Embedder};
use ingest::model::{self, Installed, ModelInfo, Pooling};

/// What the model's authors say, independent of what its directory says.
struct Reference {
    /// The directory name `scripts/setup.sh` installs it under.
    dir_name: &'static str,
    /// The name fastembed knows it by, or registers it under.
    fastembed_name: &'static str,
    /// Whether fastembed knows the model itself (its pooling and normalisation included).
    fastembed_knows_it: bool,
    pooling: &'static str,
    dim: usize,
    query_prefix: &'static str,
    passage_prefix: &'static str,
}

const REFERENCES: [Reference; 3] = [
    Reference {
        dir_name: "all-MiniLM-L6-v2-int8",
        fastembed_name: "sentence-transformers/all-MiniLM-L6-v2",
        fastembed_knows_it: true,
        pooling: "mean",
        dim: 384,
        query_prefix: "",
        passage_prefix: "",
    },
    Reference {
        dir_name: "all-mpnet-base-v2",
        fastembed_name: "sentence-transformers/all-mpnet-base-v2",
        fastembed_knows_it: false,
        pooling: "mean",
        dim: 768,
        query_prefix: "",
        passage_prefix: "",
    },
    // The model card: "query: " before queries, "passage: " before passages; mean pooling.
    Reference {
        dir_name: "multilingual-e5-small",
        fastembed_name: "intfloat/multilingual-e5-small",
        fastembed_knows_it: false,
        pooling: "mean",
        dim: 384,
        query_prefix: "query: ",
        passage_prefix: "passage: ",
    },
];

const PASSAGES: [&str; 5] = [
    "A cat sits on the mat.",
    "Quarterly revenue grew by 12 percent, driven by subscriptions.",
    "To copy a directory recursively, use cp -r SOURCE DEST.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "The --no-clobber flag keeps existing files from being overwritten.",
];
const QUERIES: [&str; 3] = ["how do I copy a folder", "kitten resting on a rug", "umsatz wachstum"];

/// Runs fastembed in the test's Python on `texts` as given (prefixes included).
fn fastembed_vectors(reference: &Reference, dir: &std::path::Path, texts: &[String]) -> Vec<Vec<f32>> {
    let python = std::env::var("INGEST_TEST_PYTHON")
        .unwrap_or_else(|_| model::runtime_home().join("pyenv/bin/python").display().to_string());
    let script = r#"
import json, os, sys
os.environ["HF_HUB_OFFLINE"] = "1"
from fastembed import TextEmbedding
from fastembed.common.model_description import ModelSource, PoolingType
request = json.load(sys.stdin)
if not request["known"]:
    pooling = {"mean": PoolingType.MEAN, "cls": PoolingType.CLS}[request["pooling"]]
    TextEmbedding.add_custom_model(model=request["name"], pooling=pooling, normalization=True,
                                   sources=ModelSource(hf="local/" + request["name"]), dim=request["dim"],
                                   model_file="model.onnx")
model = TextEmbedding(model_name=request["name"], specific_model_path=request["dir"], threads=1)
print(json.dumps([v.tolist() for v in model.embed(request["texts"])]))
"#;
    let request = serde_json::json!({
        "name": reference.fastembed_name,
        "known": reference.fastembed_knows_it,
        "pooling": reference.pooling,
        "dim": reference.dim,
        "dir": dir,
        "texts": texts,
    });
    let mut child = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {python} ({e}); scripts/test.sh installs fastembed and sets INGEST_TEST_PYTHON")
        });
    serde_json::to_writer(child.stdin.take().unwrap(), &request).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "fastembed failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

/// The passages' and the queries' vectors as `ingest` makes them with `info`.
fn ingest_vectors(info: &ModelInfo) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let tokenizer = info.tokenizer().unwrap();
    let mut embedder = Embedder::new(info.clone(), 1).unwrap();
    let texts: Vec<(&str, usize)> = PASSAGES.iter().map(|t| (*t, count_tokens(&tokenizer, t))).collect();
    let passages = embedder.embed(&texts, Batching::default()).unwrap();
    let queries = QUERIES.iter().map(|q| embedder.embed_query(q).unwrap()).collect();
    (passages, queries)
}

/// The lowest cosine between `ours` and `theirs`, vector by vector.
fn worst_agreement(ours: &[Vec<f32>], theirs: &[Vec<f32>]) -> f32 {
    assert_eq!(ours.len(), theirs.len());
    ours.iter().zip(theirs).map(|(a, b)| cosine(a, b)).fold(f32::INFINITY, f32::min)
}

#[test]
fn every_installed_model_agrees_with_its_reference_implementation() {
    let installed = model::installed().unwrap();
    let mut checked = Vec::new();
    for entry in &installed {
        let info = match entry {
            Installed::Model(info) => info,
            Installed::Broken { dir, reason } => panic!("{} is not a usable model: {reason}", dir.display()),
        };
        let dir_name = info.dir.file_name().unwrap().to_str().unwrap();
        let Some(reference) = REFERENCES.iter().find(|r| r.dir_name == dir_name) else {
            eprintln!("{dir_name}: no reference known to this test; not checked");
            continue;
        };
        assert_eq!(info.dim, reference.dim, "{dir_name}: dimension");
        assert_eq!(
            (info.query_prefix.as_str(), info.passage_prefix.as_str()),
            (reference.query_prefix, reference.passage_prefix),
            "{dir_name}: prefixes"
        );
        let (passages, queries) = ingest_vectors(info);
        let prefixed = |prefix: &str, texts: &[&str]| texts.iter().map(|t| format!("{prefix}{t}")).collect::<Vec<_>>();
        let their_passages = fastembed_vectors(reference, &info.dir, &prefixed(reference.passage_prefix, &PASSAGES));
        let their_queries = fastembed_vectors(reference, &info.dir, &prefixed(reference.query_prefix, &QUERIES));
        let agreement = worst_agreement(&passages, &their_passages).min(worst_agreement(&queries, &their_queries));
        eprintln!("{dir_name}: lowest cosine to fastembed {agreement:.6}");
        assert!(agreement >= 1.0 - 1e-3, "{dir_name}: cosine {agreement} to the reference");

        // The comparison is sharp enough to see a wrong pooling, and a missing prefix.
        let mut wrong_pooling = (**info).clone();
        wrong_pooling.pooling = Pooling::Cls;
        let (cls_passages, _) = ingest_vectors(&wrong_pooling);
        assert!(worst_agreement(&cls_passages, &their_passages) < 1.0 - 1e-3, "{dir_name}: CLS pooling goes unseen");
        if !reference.query_prefix.is_empty() {
            let mut no_prefix = (**info).clone();
            no_prefix.query_prefix.clear();
            let (_, bare_queries) = ingest_vectors(&no_prefix);
            assert!(
                worst_agreement(&bare_queries, &their_queries) < 1.0 - 1e-3,
                "{dir_name}: a missing query prefix goes unseen"
            );
        }
        checked.push(dir_name.to_string());
    }
    assert!(
        checked.iter().any(|name| name == model::DEFAULT_MODEL),
        "the default model is installed and checked (scripts/setup.sh); checked: {checked:?}"
    );
}
