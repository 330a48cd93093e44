//! `ingest serve`, through real HTTP, on the embedded default and on PostgreSQL with the test
//! Qdrant server: every endpoint; wrong requests and their one sentence; the token; a switch
//! and a rollback while requests run (each answer names one model, which changes once a
//! switch); a nightly run on the same embedded data directory while requests run.

use crate::common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::generations::tree;
use common::service::{request, Service};
use common::{show, write, Workspace};
use ingest::model::{models_home, ModelInfo, DEFAULT_MODEL};
use serde_json::{json, Value};

fn indexed(ws: Workspace) -> Workspace {
    tree(&ws.docs());
    let output = ws.ingest([ws.docs().as_os_str(), "--quiet".as_ref()]);
    assert!(output.status.success(), "{}", show(&output));
    ws
}

fn default_model_id() -> String {
    ModelInfo::load(Some(&models_home().join(DEFAULT_MODEL))).unwrap().id
}

/// The file names of an answer's hits, best first.
fn hit_files(answer: &Value) -> Vec<String> {
    answer["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer:#}"))
        .iter()
        .map(|hit| Path::new(hit["path"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn every_endpoint_answers_embedded() {
    every_endpoint(indexed(Workspace::new()));
}

#[test]
fn every_endpoint_answers_on_servers() {
    every_endpoint(indexed(Workspace::on_servers()));
}

fn every_endpoint(ws: Workspace) {
    let service = Service::start(&ws, &[]);
    let model = default_model_id();

    let health = service.get("/healthz");
    assert_eq!(health.status, 200, "{}", health.body);
    let health = health.json();
    assert_eq!(
        (health["status"].as_str(), health["model_id"].as_str()),
        (Some("ok"), Some(model.as_str())),
        "{health:#}"
    );

    // The same search by POST and by GET, in every mode; every answer names its model.
    let question = "how do I change my login shell";
    for mode in ["hybrid", "dense", "sparse"] {
        let posted = service.post_json("/search", &json!({ "query": question, "k": 2, "mode": mode }));
        assert_eq!(posted.status, 200, "{mode}: {}", posted.body);
        let posted = posted.json();
        assert_eq!(posted["mode"], mode, "{posted:#}");
        assert_eq!(posted["model"], model.as_str(), "{posted:#}");
        assert_eq!(posted["generation"], 1, "{posted:#}");
        assert_eq!(hit_files(&posted)[0], "shell.txt", "{mode}: {posted:#}");
        let got = service.get(&format!("/search?q=how+do+I+change+my+login+shell&k=2&mode={mode}"));
        assert_eq!(got.status, 200, "{}", got.body);
        assert_eq!(hit_files(&got.json()), hit_files(&posted), "GET and POST agree in {mode}");
    }
    // What `ingest search --json` gives, hit for hit (on the embedded default, the service lets
    // go of the collection while the command reads it).
    let cli = ws.ingest_json(["search", question, "-k", "3", "--json"], 0);
    let served = service.post_json("/search", &json!({ "query": question, "k": 3 })).json();
    let (cli_hits, served_hits) = (cli.as_array().unwrap(), served["hits"].as_array().unwrap());
    assert_eq!(cli_hits.len(), served_hits.len());
    for (from_cli, from_service) in cli_hits.iter().zip(served_hits) {
        for field in ["path", "chunk_index", "doc_id", "model", "content", "place"] {
            assert_eq!(from_cli[field], from_service[field], "{field}");
        }
        assert!((from_cli["score"].as_f64().unwrap() - from_service["score"].as_f64().unwrap()).abs() < 1e-4);
    }
    // Filters and ranks.
    let filtered = service
        .post_json(
            "/search",
            &json!({ "query": "rivers", "k": 10, "ext": "txt", "ranks": true,
                                       "path_prefix": ws.docs().join("rivers.txt").display().to_string() }),
        )
        .json();
    assert!(hit_files(&filtered).iter().all(|f| f == "rivers.txt"), "{filtered:#}");
    assert!(filtered["hits"][0]["dense_rank"].is_number() && filtered["hits"][0]["sparse_rank"].is_number());
    let none = service.get("/search?q=rivers&ext=pdf").json();
    assert_eq!(none["hits"], json!([]), "{none:#}");

    let collections = service.get("/collections");
    assert_eq!(collections.status, 200, "{}", collections.body);
    let collections = collections.json();
    let documents = &collections["collections"][0];
    assert_eq!((documents["name"].as_str(), documents["live_generation"].as_i64()), (Some("documents"), Some(1)));
    assert_eq!(documents["generations"][0]["model_id"], model.as_str(), "{collections:#}");

    let metrics = service.get("/metrics");
    assert_eq!(metrics.status, 200);
    let ok_hybrid = metric(&metrics.body, "ingest_search_requests_total{mode=\"hybrid\",code=\"200\"}");
    assert!(ok_hybrid >= 3.0, "{}", metrics.body);
    let live = format!("ingest_live_generation{{collection=\"documents\",generation=\"1\",model=\"{model}\"}}");
    assert_eq!(metric(&metrics.body, &live), 1.0, "{}", metrics.body);
    assert!(metric(&metrics.body, "ingest_query_model_calls_total") >= 1.0);
    assert!(metrics.body.contains("ingest_search_duration_seconds_bucket{le="), "{}", metrics.body);

    let openapi = service.get("/openapi.json");
    assert_eq!(openapi.status, 200);
    let openapi = openapi.json();
    for path in ["/search", "/collections", "/healthz", "/metrics", "/openapi.json", "/"] {
        assert!(openapi["paths"][path].is_object(), "/openapi.json describes {path}");
    }
    let page = service.get("/");
    assert!(page.status == 200 && page.body.contains("<form id=\"search\""), "{}", page.body);
    assert_eq!(service.get("/nothing").status, 404);

    let (status, stderr) = service.stop();
    assert!(status.success(), "ingest serve stops cleanly on SIGTERM: {status}\n{stderr}");
}

/// The value of the sample `name` (with its labels) in a Prometheus text.
fn metric(text: &str, name: &str) -> f64 {
    let line = text.lines().find(|line| line.starts_with(name) && line[name.len()..].starts_with(' '));
    let line = line.unwrap_or_else(|| panic!("no sample {name} in:\n{text}"));
    line[name.len()..].trim().parse().unwrap()
}

#[test]
fn wrong_requests_get_one_sentence_and_the_token_is_needed_and_kept_secret() {
    let ws = indexed(Workspace::new());
    let token_file = ws.temp.path().join("token");
    let token = "s3cret-token-for-the-test";
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let service = Service::start(&ws, &["--token-file", token_file.to_str().unwrap()]);
    let bearer = format!("Bearer {token}");
    let authorized = [("Authorization", bearer.as_str()), ("Content-Type", "application/json")];
    let post = |body: &[u8]| service.request("POST", "/search", &authorized, body);

    let refusals: Vec<(u16, String)> = vec![
        (400, String::from_utf8_lossy(b"{not json").into_owned()),
        (400, json!({ "query": "bees", "k": 0 }).to_string()),
        (400, json!({ "query": "bees", "k": 1_000_000_000u64 }).to_string()),
        (400, json!({ "query": "bees", "mode": "fuzzy" }).to_string()),
        (400, json!({ "query": "" }).to_string()),
        (400, json!({ "query": "bees", "path_prefix": "relative/dir" }).to_string()),
        (404, json!({ "query": "bees", "generation": 7 }).to_string()),
        (404, json!({ "query": "bees", "collection": "nothing_here" }).to_string()),
    ];
    for (status, body) in &refusals {
        let answer = post(body.as_bytes());
        assert_eq!(answer.status, *status, "{body} → {}", answer.body);
        let sentence = answer.json()["error"].as_str().unwrap().to_string();
        assert!(!sentence.is_empty() && !sentence.contains('\n'), "one sentence: {sentence:?}");
    }
    let huge = vec![b'a'; 10 << 20];
    let too_large = post(&huge);
    assert_eq!(too_large.status, 413, "{}", too_large.body);
    assert!(service.request("GET", "/search?q=bees&k=0", &authorized, b"").json()["error"]
        .as_str()
        .unwrap()
        .contains("between 1 and 1000"));

    // Without the token, or with another: 401; the page, health and description need none.
    assert_eq!(service.get("/search?q=bees").status, 401);
    assert_eq!(service.request("GET", "/search?q=bees", &[("Authorization", "Bearer wrong")], b"").status, 401);
    assert_eq!(service.get("/metrics").status, 401);
    assert_eq!(service.get("/collections").status, 401);
    assert_eq!(service.get("/healthz").status, 200);
    assert_eq!(service.get("/").status, 200);
    let answer = post(json!({ "query": "where are the flowers" }).to_string().as_bytes());
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(hit_files(&answer.json())[0], "bees.txt");

    let metrics = service.request("GET", "/metrics", &authorized, b"");
    assert_eq!(metrics.status, 200);
    assert!(
        metric(&metrics.body, "ingest_search_requests_total{mode=\"none\",code=\"400\"}") >= 5.0,
        "{}",
        metrics.body
    );
    assert!(!metrics.body.contains(token), "the token is not in /metrics");
    let (_, stderr) = service.stop();
    assert!(!stderr.contains(token), "the token is not in the log: {stderr}");
}

#[test]
fn a_missing_model_is_a_503_with_its_reason_and_sparse_search_still_answers() {
    let ws = indexed(Workspace::new());
    // A home without the model (ONNX Runtime stays where it is).
    let empty_home = ws.temp.path().join("no-models");
    std::fs::create_dir_all(empty_home.join("models")).unwrap();
    let runtime = ingest::model::models_home().parent().unwrap().join("onnxruntime");
    std::os::unix::fs::symlink(runtime, empty_home.join("onnxruntime")).unwrap();
    let service = Service::start_with(&ws, &[], |command| {
        command.env("INGEST_HOME", &empty_home);
    });
    let health = service.get("/healthz");
    assert_eq!(health.status, 503, "{}", health.body);
    assert!(health.json()["model"].as_str().unwrap().contains("not installed"), "{}", health.body);
    let dense = service.get("/search?q=bees&mode=dense");
    assert_eq!(dense.status, 503, "{}", dense.body);
    assert!(dense.json()["error"].as_str().unwrap().contains("not installed"), "{}", dense.body);
    let sparse = service.get("/search?q=honey+bees+dance&mode=sparse");
    assert_eq!(sparse.status, 200, "{}", sparse.body);
    assert_eq!(hit_files(&sparse.json())[0], "bees.txt");
}

/// Requests in a loop on another thread until stopped: the answers' statuses and models.
struct Loop {
    stop: Arc<AtomicBool>,
    answers: Arc<std::sync::Mutex<Vec<(u16, String, String)>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Loop {
    fn start(service: &Service, question: &'static str) -> Self {
        let (stop, address) = (Arc::new(AtomicBool::new(false)), service.address);
        let answers = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (stopping, answered) = (stop.clone(), answers.clone());
        let thread = std::thread::spawn(move || {
            let body = json!({ "query": question, "k": 3 }).to_string();
            while !stopping.load(Ordering::SeqCst) {
                let answer =
                    request(address, "POST", "/search", &[("Content-Type", "application/json")], body.as_bytes());
                let model = if answer.status == 200 {
                    answer.json()["model"].as_str().unwrap().to_string()
                } else {
                    String::new()
                };
                answered.lock().unwrap().push((answer.status, model, answer.body));
            }
        });
        Self { stop, answers, thread }
    }

    /// Waits, for a minute at most, until the loop has had an answer from `model`.
    fn wait_for_model(&self, model: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while self.answers.lock().unwrap().last().map(|(_, m, _)| m.as_str()) != Some(model) {
            assert!(std::time::Instant::now() < deadline, "the service never answered with {model}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    fn finish(self) -> Vec<(u16, String, String)> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap();
        std::mem::take(&mut self.answers.lock().unwrap())
    }
}

/// The models of consecutive answers, each once: `[a, b, a]` for a switch and a rollback.
fn model_changes(answers: &[(u16, String, String)]) -> Vec<String> {
    let mut models: Vec<String> = Vec::new();
    for (_, model, _) in answers {
        if models.last() != Some(model) {
            models.push(model.clone());
        }
    }
    models
}

#[test]
fn a_switch_and_a_rollback_during_requests_embedded() {
    switch_and_rollback_during_requests(indexed(Workspace::new()));
}

#[test]
fn a_switch_and_a_rollback_during_requests_on_servers() {
    switch_and_rollback_during_requests(indexed(Workspace::on_servers()));
}

fn switch_and_rollback_during_requests(ws: Workspace) {
    let e5 = models_home().join("multilingual-e5-small");
    assert!(e5.join("model.onnx").is_file(), "multilingual-e5-small is installed (scripts/test.sh installs it)");
    let (e5_id, default_id) = (ModelInfo::load(Some(&e5)).unwrap().id, default_model_id());
    let service = Service::start(&ws, &[]);
    let requests = Loop::start(&service, "how do I change my login shell");
    // A run with another model builds generation 2 beside the live one and switches to it.
    let built = ws.ingest([ws.docs().as_os_str(), "--quiet".as_ref(), "--model-dir".as_ref(), e5.as_os_str()]);
    assert!(built.status.success(), "{}", show(&built));
    requests.wait_for_model(&e5_id);
    let rolled_back = ws.ingest(["rollback"]);
    assert!(rolled_back.status.success(), "{}", show(&rolled_back));
    requests.wait_for_model(&default_id);
    let answers = requests.finish();
    let failed: Vec<_> = answers.iter().filter(|(status, ..)| *status != 200).collect();
    assert!(failed.is_empty(), "every request answered through the switch and the rollback: {failed:?}");
    assert_eq!(model_changes(&answers), [default_id.clone(), e5_id, default_id], "one change of model each");
    assert!(answers.len() >= 3, "{} answers", answers.len());
}

#[test]
fn a_nightly_run_on_the_same_embedded_data_directory_during_requests() {
    let ws = indexed(Workspace::new());
    let service = Service::start(&ws, &[]);
    let requests = Loop::start(&service, "where are the flowers");
    write(&ws.docs(), "volcanoes.txt", "Basalt lava flows from the shield volcano into the ocean near the lighthouse.");
    std::fs::remove_file(ws.docs().join("glaciers.txt")).unwrap();
    let nightly = ws.ingest([ws.docs().as_os_str(), "--json".as_ref(), "--quiet".as_ref()]);
    let report = common::json_of(&nightly, 0);
    assert_eq!((report["added"].as_u64(), report["deleted"].as_u64()), (Some(1), Some(1)), "{report:#}");
    let answers = requests.finish();
    let failed: Vec<_> = answers.iter().filter(|(status, ..)| *status != 200).collect();
    assert!(failed.is_empty(), "the service answered throughout the run: {failed:?}");
    assert!(answers.len() >= 2, "{} answers during the run", answers.len());
    // The new points, once the run has ended (the service takes the collection back).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let answer = service.get("/search?q=basalt+lava+shield+volcano&k=5&mode=sparse").json();
        let files = hit_files(&answer);
        if files.first().map(String::as_str) == Some("volcanoes.txt") {
            assert!(!files.contains(&"glaciers.txt".to_string()), "{answer:#}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the new file was never found: {answer:#}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The collection is whole: verify finds nothing wrong (the service lets go of it again).
    let verified = ws.ingest(["verify", "--json"]);
    assert!(verified.status.success(), "{}", show(&verified));
}

/// Debian's Chromium, which `scripts/test.sh` installs; `INGEST_TEST_CHROMIUM` names another.
fn chromium() -> Option<std::path::PathBuf> {
    let given = std::env::var_os("INGEST_TEST_CHROMIUM").map(std::path::PathBuf::from);
    given.into_iter().chain(["/usr/bin/chromium".into(), "/usr/bin/chromium-browser".into()]).find(|p| p.is_file())
}

#[test]
fn the_search_page_shows_hits_with_their_citations_in_a_real_browser() {
    let Some(chromium) = chromium() else {
        eprintln!("DID NOT RUN: no Chromium on this machine (scripts/test.sh installs Debian's chromium)");
        return;
    };
    let ws = indexed(Workspace::new());
    let service = Service::start(&ws, &[]);
    // The page searches what its URL asks, as a person's bookmark or a typed query would.
    let url = format!("http://{}/?q=how+do+I+change+my+login+shell&k=3", service.address);
    let screenshot = ws.temp.path().join("page.png");
    let browse = |output: &[&str]| {
        let result = std::process::Command::new(&chromium)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=20000"])
            .arg("--window-size=1000,800")
            .arg(format!("--user-data-dir={}", ws.temp.path().join("browser").display()))
            .args(output)
            .arg(&url)
            .output()
            .expect("running chromium");
        assert!(result.status.success(), "chromium: {}", String::from_utf8_lossy(&result.stderr));
        String::from_utf8_lossy(&result.stdout).into_owned()
    };
    let dom = browse(&["--dump-dom"]);
    assert!(dom.contains("3 hits from documents, generation 1 (hybrid, model all-MiniLM-L6-v2-int8"), "{dom}");
    let first_hit = dom.split("<li>").nth(1).unwrap_or_else(|| panic!("no hits on the page: {dom}"));
    assert!(first_hit.contains(&format!("{}", ws.docs().join("shell.txt").display())), "{first_hit}");
    assert!(first_hit.contains("The chsh command changes the login shell"), "{first_hit}");
    browse(&[&format!("--screenshot={}", screenshot.display())]);
    let png = std::fs::read(&screenshot).expect("chromium wrote the screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{} bytes", png.len());
}

#[test]
fn a_full_queue_is_a_429_and_a_slow_store_a_504_on_servers() {
    let ws = indexed(Workspace::on_servers());
    let service = Service::start(&ws, &["--queue", "1", "--timeout", "1.5"]);
    assert_eq!(service.get("/search?q=bees&mode=sparse").status, 200);
    // Every call to the store now takes 1 s: the first search holds the one place, the
    // second is refused at once; a search that needs two calls runs out of time.
    ws.qdrant().delay_every_call(std::time::Duration::from_millis(1000));
    let address = service.address;
    let slow = std::thread::spawn(move || request(address, "GET", "/search?q=bees&mode=sparse", &[], b""));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    let refused = service.get("/search?q=bees&mode=sparse");
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(started.elapsed() < std::time::Duration::from_millis(500), "refused at once");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(refused.json()["error"].as_str().unwrap().contains("busy"), "{}", refused.body);
    let slow = slow.join().unwrap();
    assert!(matches!(slow.status, 200 | 504), "{} {}", slow.status, slow.body);
    // With ranks, a search makes several calls: more than its 1.5 s.
    let timed_out = service.get("/search?q=bees&mode=sparse&ranks=true");
    assert_eq!(timed_out.status, 504, "{}", timed_out.body);
    assert!(timed_out.json()["error"].as_str().unwrap().contains("longer than 1.5 s"), "{}", timed_out.body);
    ws.qdrant().delay_every_call(std::time::Duration::ZERO);
    assert_eq!(service.get("/search?q=bees&mode=sparse").status, 200, "the service recovers");
}
