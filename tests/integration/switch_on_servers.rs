//! Model switches on the production path, through the binary: PostgreSQL and the real Qdrant
//! node that `scripts/test.sh` starts from `../shared/qdrant` (else the gRPC test server, which
//! keeps aliases as Qdrant does; each test says which it ran on). In every test a reader thread
//! queries the collection's name the whole time, as an application does, a point at a time
//! with no retry, and records which model wrote the point it got: it must see no failure, and
//! one change of model per switch.

use crate::common;

use std::ffi::OsStr;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::postgres::FreshPostgres;
use common::qdrant_server::TestQdrant;
use common::{json_of, show, text, write, Workspace};
use ingest::model::{models_home, DEFAULT_MODEL};
use serde_json::Value;

/// PostgreSQL and a Qdrant server for one test, and a collection name of its own (the real
/// node is shared by the tests that run at once).
struct Servers {
    postgres: FreshPostgres,
    _test_server: Option<TestQdrant>,
    url: String,
    collection: String,
    ws: Workspace,
}

impl Servers {
    fn new(test: &str) -> Self {
        let postgres = FreshPostgres::create();
        let collection = format!("sw{}", &postgres.name[postgres.name.len() - 8..]);
        let (url, test_server) = match std::env::var("INGEST_TEST_QDRANT_SINGLE").ok().filter(|u| !u.is_empty()) {
            Some(url) => {
                println!("{test}: on the real Qdrant node at {url}");
                (url, None)
            }
            None => {
                let server = TestQdrant::start();
                println!(
                    "{test}: on the gRPC test server: no real Qdrant from ../shared/qdrant (scripts/test.sh starts one)"
                );
                (server.url(), Some(server))
            }
        };
        let ws = Workspace::new();
        std::fs::create_dir_all(ws.docs()).unwrap();
        for i in 0..12 {
            write(&ws.docs(), &format!("{i:02}.txt"), &text(&format!("estuaries {i}"), 8));
        }
        Self { postgres, _test_server: test_server, url, collection, ws }
    }

    fn args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a OsStr> {
        let servers =
            ["--database-url", &self.postgres.url, "--qdrant-url", &self.url, "--collection", &self.collection];
        extra.iter().copied().chain(servers).map(OsStr::new).collect()
    }

    /// `ingest ARGS` on these servers.
    fn ingest(&self, extra: &[&str]) -> Output {
        self.ws.ingest(self.args(extra))
    }

    /// `ingest ARGS` on these servers, killed with SIGKILL at the kill point `at`.
    fn ingest_killed_at(&self, at: &str, extra: &[&str]) -> Output {
        let output = self.ws.command(self.args(extra)).env("INGEST_KILL_AT", at).output().unwrap();
        assert_eq!(output.status.signal(), Some(9), "killed at {at}: {}", show(&output));
        output
    }

    /// `ingest DOCS --json --quiet ARGS`, expecting `code`.
    fn run(&self, extra: &[&str], code: i32) -> Value {
        let docs = self.ws.docs().display().to_string();
        let args: Vec<&str> = [docs.as_str(), "--json", "--quiet"].into_iter().chain(extra.iter().copied()).collect();
        json_of(&self.ingest(&args), code)
    }

    /// The collection the name is an alias of, if it is one.
    fn alias_target(&self) -> Option<String> {
        block_on(async {
            let index = ingest::store::open(self.location(), &self.collection, Default::default()).await.unwrap();
            index.aliased_to().await.unwrap()
        })
    }

    fn location(&self) -> ingest::store::StoreLocation<'_> {
        ingest::store::StoreLocation {
            data_dir: std::path::Path::new("/nonexistent"),
            qdrant_url: Some(&self.url),
            api_key: None,
            layout: Default::default(),
            like: None,
        }
    }

    /// (number, state, store collection) of each generation, from the catalog.
    fn generations(&self) -> Vec<(i64, String, String)> {
        block_on(async {
            let catalog = ingest::catalog::Catalog::connect(&self.postgres.url).await.unwrap();
            let rows = catalog.collection(&self.collection).generations().await.unwrap();
            rows.into_iter().map(|g| (g.number, g.state.as_str().to_string(), g.store_collection)).collect()
        })
    }

    fn reader(&self) -> Reader {
        Reader::start(&self.url, &self.collection)
    }
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Runtime::new().unwrap().block_on(future)
}

fn e5() -> PathBuf {
    models_home().join("multilingual-e5-small")
}

fn model_id(dir: &std::path::Path) -> String {
    ingest::model::ModelInfo::load(Some(dir)).unwrap().id
}

fn default_id() -> String {
    model_id(&models_home().join(DEFAULT_MODEL))
}

/// A thread that queries a collection's name on a Qdrant server until stopped, as an
/// application does: one point a read, no retry.
pub struct Reader {
    done: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(Duration, Result<String, String>)>>,
}

/// What a reader saw: for each read, when (since it started) and the model of the point, or
/// the error.
pub struct Reads(Vec<(Duration, Result<String, String>)>);

impl Reader {
    pub fn start(url: &str, collection: &str) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let (url, collection, stop) = (url.to_string(), collection.to_string(), done.clone());
        let thread = std::thread::spawn(move || {
            block_on(async {
                use qdrant_client::qdrant::ScrollPointsBuilder;
                let client = qdrant_client::Qdrant::from_url(&url).skip_compatibility_check().build().unwrap();
                let (started, mut reads) = (Instant::now(), Vec::new());
                while !stop.load(Ordering::SeqCst) {
                    let scroll = ScrollPointsBuilder::new(&collection).limit(1).with_payload(true);
                    let read = match client.scroll(scroll).await {
                        Ok(page) => match page.result.first().and_then(|p| p.payload.get("model")) {
                            Some(model) => Ok(model.as_str().map(|s| s.to_string()).unwrap_or_default()),
                            None => Err("no point".to_string()),
                        },
                        Err(error) => Err(error.to_string()),
                    };
                    reads.push((started.elapsed(), read));
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                reads
            })
        });
        // Reading before the test goes on.
        std::thread::sleep(Duration::from_millis(200));
        Self { done, thread }
    }

    pub fn stop(self) -> Reads {
        std::thread::sleep(Duration::from_millis(200));
        self.done.store(true, Ordering::SeqCst);
        Reads(self.thread.join().unwrap())
    }
}

impl Reads {
    fn failures(&self) -> Vec<&(Duration, Result<String, String>)> {
        self.0.iter().filter(|(_, read)| read.is_err()).collect()
    }

    /// The models that answered, in order, each once per run of answers.
    fn models(&self) -> Vec<&str> {
        let mut models: Vec<&str> = Vec::new();
        for model in self.0.iter().filter_map(|(_, read)| read.as_deref().ok()) {
            if models.last() != Some(&model) {
                models.push(model);
            }
        }
        models
    }

    /// How many separate stretches of failed reads there were.
    fn failure_windows(&self) -> usize {
        let failed: Vec<bool> = self.0.iter().map(|(_, read)| read.is_err()).collect();
        failed.iter().enumerate().filter(|&(i, &f)| f && (i == 0 || !failed[i - 1])).count()
    }

    fn summary(&self) -> String {
        format!(
            "{} reads, {} failed, {} changes of model",
            self.0.len(),
            self.failures().len(),
            self.models().len().saturating_sub(1)
        )
    }

    /// Asserts no failure and that the models answered in exactly this order.
    pub fn assert_moved_through(&self, test: &str, models: &[&str]) {
        println!("{test}: reader: {}", self.summary());
        assert!(self.failures().is_empty(), "{test}: reads failed: {:?}", self.failures());
        assert_eq!(self.models(), models, "{test}: one change of model per switch");
    }
}

/// A collection created today on a server has its name as an alias from its first run:
/// switching to another model, rolling back and switching forward each move every reader at
/// one moment, and no read fails.
#[test]
fn the_first_switch_of_a_new_collection_keeps_its_name_for_readers() {
    let test = "the_first_switch_of_a_new_collection_keeps_its_name_for_readers";
    let servers = Servers::new(test);
    let (e5, c) = (e5().display().to_string(), servers.collection.clone());
    servers.run(&[], 0);
    assert_eq!(servers.alias_target(), Some(format!("{c}-g1")), "an alias from the first run");
    assert_eq!(servers.generations(), [(1, "live".into(), format!("{c}-g1"))]);

    let reader = servers.reader();
    let switched = servers.run(&["--model-dir", &e5], 0);
    assert_eq!(switched["generation"]["live"], true, "{switched:#}");
    assert!(switched["generation"]["moved"].is_null(), "nothing to move: {switched:#}");
    assert_eq!(servers.alias_target(), Some(format!("{c}-g2")));
    let rolled = json_of(&servers.ingest(&["rollback", "--json"]), 0);
    assert_eq!(rolled["live"], 1, "{rolled:#}");
    assert_eq!(servers.alias_target(), Some(format!("{c}-g1")));
    let forward = servers.run(&["--model-dir", &e5], 0);
    assert_eq!(forward["generation"]["live"], true, "{forward:#}");
    let reads = reader.stop();
    let (old, new) = (default_id(), model_id(&self::e5()));
    reads.assert_moved_through(test, &[&old, &new, &old, &new]);
}

/// A process killed between the catalog's pointer and the alias leaves the name on the old
/// generation; the next command that opens the collection, even a search, sets it right,
/// and gc then deletes the old generation without touching what the name serves.
#[test]
fn a_crash_between_the_catalogs_pointer_and_the_alias_is_set_right_by_the_next_command() {
    let test = "a_crash_between_the_catalogs_pointer_and_the_alias_is_set_right_by_the_next_command";
    let servers = Servers::new(test);
    let (e5, c) = (e5().display().to_string(), servers.collection.clone());
    servers.run(&[], 0);
    let reader = servers.reader();
    let docs = servers.ws.docs().display().to_string();
    servers.ingest_killed_at("switch:pointer", &[&docs, "--quiet", "--model-dir", &e5]);
    assert_eq!(servers.generations()[1].1, "live", "the catalog's pointer moved");
    assert_eq!(servers.alias_target(), Some(format!("{c}-g1")), "the alias did not");

    let searched = servers.ingest(&["search", "estuaries", "-k", "1", "--json"]);
    let hits = json_of(&searched, 0);
    assert_eq!(hits[0]["model"], model_id(&self::e5()).as_str(), "{}", show(&searched));
    assert_eq!(servers.alias_target(), Some(format!("{c}-g2")), "the search set the alias right");
    let collected = json_of(&servers.ingest(&["gc", "--json"]), 0);
    assert_eq!(collected["generations"][0]["number"], 1, "{collected:#}");
    assert_eq!(servers.alias_target(), Some(format!("{c}-g2")), "gc left the name on the live generation");
    let reads = reader.stop();
    reads.assert_moved_through(test, &[&default_id(), &model_id(&self::e5())]);
}

/// A collection from before generations keeps generation 1 under its own name. Its one-time
/// move out of the name (`ingest migrate`) is killed at each recorded step in turn; each
/// time the next command finishes it, nothing is lost or doubled, and only while the name
/// named nothing (after the drop, until the alias) did a read fail.
#[test]
fn a_legacy_collection_moved_out_of_its_name_survives_a_crash_at_each_step() {
    let test = "a_legacy_collection_moved_out_of_its_name_survives_a_crash_at_each_step";
    for step in ["move:copying", "move:checking", "move:dropping", "move:dropped", "move:aliased"] {
        let servers = Servers::new(test);
        let c = servers.collection.clone();
        let first = servers.run(&[], 0);
        let points = first["points"].as_u64().unwrap();
        let before = as_a_build_before_generations_left_it(&servers);
        assert_eq!(before.len() as u64, points);

        let reader = servers.reader();
        servers.ingest_killed_at(step, &["migrate"]);
        let recorded =
            servers.postgres_number(&format!("SELECT COUNT(*) FROM generation_moves WHERE collection = '{c}'"));
        assert_eq!(recorded, 1, "{step}: the move's step is recorded");
        // The next command that writes (the nightly run) finishes the move first.
        let nightly = servers.run(&[], 0);
        assert_eq!(nightly["unchanged"], 12, "{step}: nothing embedded again: {nightly:#}");
        let reads = reader.stop();
        assert_eq!(servers.alias_target(), Some(format!("{c}-g1")), "{step}");
        assert_eq!(servers.generations(), [(1, "live".into(), format!("{c}-g1"))], "{step}");
        let after = stored(&servers, &format!("{c}-g1"));
        assert!(after == before, "{step}: the points moved as they were, none lost or doubled");
        let verified = json_of(&servers.ingest(&["verify", "--json"]), 0);
        assert_eq!(verified["clean"], true, "{step}: {verified:#}");

        println!("{test}: killed at {step}: reader: {}", reads.summary());
        assert_eq!(reads.models(), [default_id()], "{step}");
        assert!(reads.failure_windows() <= 1, "{step}: reads failed apart from the one moment: {:?}", reads.failures());
    }
}

impl Servers {
    fn postgres_number(&self, sql: &str) -> i64 {
        common::sql_number(&self.postgres.url, sql)
    }

    fn execute(&self, sql: &str) {
        common::execute_sql(&self.postgres.url, sql)
    }
}

/// Every point of a store collection, by id, with its vectors.
fn stored(servers: &Servers, collection: &str) -> std::collections::BTreeMap<uuid::Uuid, ingest::store::Point> {
    block_on(async {
        let index = ingest::store::open(servers.location(), collection, Default::default()).await.unwrap();
        ingest::store::all_points(index.as_ref(), true).await.unwrap()
    })
}

/// Puts generation 1 where a build from before generations kept it, under the collection's
/// own name, with no `generations` rows; returns its points.
fn as_a_build_before_generations_left_it(
    servers: &Servers,
) -> std::collections::BTreeMap<uuid::Uuid, ingest::store::Point> {
    let c = &servers.collection;
    let points = stored(servers, &format!("{c}-g1"));
    block_on(async {
        let aside = ingest::store::open(servers.location(), &format!("{c}-g1"), Default::default()).await.unwrap();
        aside.drop_collection().await.unwrap();
        let own = ingest::store::open(servers.location(), c, Default::default()).await.unwrap();
        own.ensure_collection(384).await.unwrap();
        own.upsert(points.values().cloned().collect()).await.unwrap();
    });
    servers.execute(&format!("DELETE FROM generations WHERE collection = '{c}'"));
    assert_eq!(servers.alias_target(), None);
    points
}

/// Waits for `child` at most `limit`; a process still running then is killed and the test
/// fails: it hung.
fn finish_within(mut child: std::process::Child, limit: Duration, what: &str) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("{what} hung: still running after {limit:?}\n{}", show(&child.wait_with_output().unwrap()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

impl Servers {
    /// `ingest DOCS --json --quiet ARGS` started, its output piped.
    fn spawn_run(&self, extra: &[&str]) -> std::process::Child {
        let docs = self.ws.docs().display().to_string();
        let args: Vec<&str> = [docs.as_str(), "--json", "--quiet"].into_iter().chain(extra.iter().copied()).collect();
        self.spawn(&args)
    }

    fn spawn(&self, extra: &[&str]) -> std::process::Child {
        self.ws
            .command(self.args(extra))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// A build left `building` (its switch refused for the files it failed) does not stop a
/// queued run of the live generation: its workers take the job of the generation it was
/// queued on, and the run finishes.
#[test]
fn a_queued_run_finishes_while_a_generation_is_left_building() {
    let test = "a_queued_run_finishes_while_a_generation_is_left_building";
    let servers = Servers::new(test);
    let e5 = e5().display().to_string();
    servers.run(&[], 0);
    // A build of Markdown files only lacks every text file generation 1 serves: it does not switch.
    let docs = servers.ws.docs().display().to_string();
    let refused = servers.ingest(&[&docs, "--json", "--quiet", "--model-dir", &e5, "--extension", "md"]);
    let refused: Value = serde_json::from_slice(&refused.stdout).unwrap_or_else(|_| panic!("{}", show(&refused)));
    assert_eq!(refused["generation"]["live"], false, "{refused:#}");
    assert_eq!(servers.generations()[1].1, "building");

    let reader = servers.reader();
    write(&servers.ws.docs(), "03.txt", &text("deltas", 8));
    let queued =
        finish_within(servers.spawn_run(&["--workers", "4"]), Duration::from_secs(300), "ingest DIR --workers 4");
    let report = json_of(&queued, 0);
    assert_eq!((&report["status"], &report["updated"]), (&"completed".into(), &1.into()), "{report:#}");
    reader.stop().assert_moved_through(test, &[&default_id()]);
}

/// A worker that runs for days follows the work: it builds a generation queued with another
/// model, keeps working after the planner switches to it and after a rollback, and then
/// updates the live generation again with its own model.
#[test]
fn a_long_running_worker_works_across_a_switch_and_a_rollback() {
    let test = "a_long_running_worker_works_across_a_switch_and_a_rollback";
    let servers = Servers::new(test);
    let e5 = e5().display().to_string();
    servers.run(&[], 0);
    let worker = servers.spawn(&["worker", "--json", "--quiet"]);
    let reader = servers.reader();

    let built = servers.run(&["--workers", "0", "--model-dir", &e5], 0);
    assert_eq!((&built["generation"]["number"], &built["generation"]["live"]), (&2.into(), &true.into()), "{built:#}");
    assert_eq!(built["queue"]["depth"]["done"], 12, "the worker built it: {built:#}");
    let rolled = json_of(&servers.ingest(&["rollback", "--json"]), 0);
    assert_eq!(rolled["live"], 1, "{rolled:#}");
    write(&servers.ws.docs(), "05.txt", &text("lagoons", 8));
    let nightly = finish_within(servers.spawn_run(&["--workers", "0"]), Duration::from_secs(300), "the nightly run");
    let nightly = json_of(&nightly, 0);
    assert_eq!((&nightly["updated"], &nightly["queue"]["depth"]["done"]), (&1.into(), &1.into()), "{nightly:#}");
    let reads = reader.stop();

    let mut worker = worker;
    assert!(worker.try_wait().unwrap().is_none(), "the worker is still at work");
    unsafe { libc::kill(worker.id() as i32, libc::SIGTERM) };
    let stopped = finish_within(worker, Duration::from_secs(60), "the worker, told to stop");
    let report = json_of(&stopped, 0);
    let jobs = report["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2, "one job of each generation: {report:#}");
    reads.assert_moved_through(test, &[&default_id(), &model_id(&self::e5()), &default_id()]);
}

/// A planner switches while a cron run and a rollback start beside it: each waits for the
/// collection or says it is busy, none undoes another's work, and in the end one generation
/// is live, the name serves it, and it checks clean.
#[test]
fn a_planner_switch_beside_a_cron_run_and_a_rollback() {
    let test = "a_planner_switch_beside_a_cron_run_and_a_rollback";
    let servers = Servers::new(test);
    let e5 = e5().display().to_string();
    servers.run(&[], 0);
    let reader = servers.reader();
    let planner = servers.spawn_run(&["--workers", "1", "--model-dir", &e5]);
    std::thread::sleep(Duration::from_millis(1500));
    let cron = servers.spawn_run(&[]);
    let rollback = servers.spawn(&["rollback", "--json"]);
    let limit = Duration::from_secs(300);
    let (planner, cron, rollback) = (
        finish_within(planner, limit, "the planner"),
        finish_within(cron, limit, "the cron run"),
        finish_within(rollback, limit, "the rollback"),
    );
    let reads = reader.stop();
    let busy = ingest_exit_busy();
    for (what, output) in [("planner", &planner), ("cron run", &cron)] {
        let code = output.status.code();
        assert!(code == Some(0) || code == Some(busy), "{what}: {}", show(output));
    }
    // Without a previous generation yet, a rollback has nothing to serve.
    assert!(
        matches!(rollback.status.code(), Some(0 | 1)) || rollback.status.code() == Some(busy),
        "{}",
        show(&rollback)
    );

    let generations = servers.generations();
    let live: Vec<_> = generations.iter().filter(|g| g.1 == "live").collect();
    assert_eq!(live.len(), 1, "{generations:?}");
    assert_eq!(servers.alias_target().as_deref(), Some(live[0].2.as_str()), "the name serves the live generation");
    let verified = json_of(&servers.ingest(&["verify", "--json"]), 0);
    assert_eq!(verified["clean"], true, "{verified:#}");
    let switched = planner.status.code() == Some(0) && json_of(&planner, 0)["generation"]["live"] == true;
    let rolled = rollback.status.code() == Some(0);
    let mut expected = vec![default_id()];
    if switched {
        expected.push(model_id(&self::e5()));
    }
    if rolled {
        expected.push(default_id());
    }
    println!("{test}: planner switched {switched}, rollback {rolled}, cron exit {:?}", cron.status.code());
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    reads.assert_moved_through(test, &expected);
}

/// The exit code of a command refused because another process holds the collection.
fn ingest_exit_busy() -> i32 {
    3
}

/// A new generation in which one file fails (too many chunks for its cap) does not switch:
/// the run lists the failure and the name keeps serving the live generation, until the
/// operator switches with `--confirm`.
#[test]
fn a_new_generation_with_a_failed_file_waits_for_the_operators_word() {
    let test = "a_new_generation_with_a_failed_file_waits_for_the_operators_word";
    let servers = Servers::new(test);
    let (e5, c) = (e5().display().to_string(), servers.collection.clone());
    write(&servers.ws.docs(), "long.txt", &text("tides", 80));
    let long = servers.ws.docs().join("long.txt").display().to_string();
    servers.run(&[], 0);
    let reader = servers.reader();

    let built = servers.run(&["--model-dir", &e5, "--max-file-chunks", "3"], 2);
    let generation = &built["generation"];
    assert_eq!((&generation["number"], &generation["live"]), (&2.into(), &false.into()), "{built:#}");
    assert_eq!(generation["missing"]["failed"][0]["path"], long.as_str(), "{built:#}");
    assert_eq!(servers.alias_target(), Some(format!("{c}-g1")), "the name serves the live generation on");
    let unconfirmed = servers.ingest(&["switch", "--generation", "2"]);
    assert_eq!(unconfirmed.status.code(), Some(2), "{}", show(&unconfirmed));
    assert!(String::from_utf8_lossy(&unconfirmed.stderr).contains(&long), "{}", show(&unconfirmed));
    let confirmed = json_of(&servers.ingest(&["switch", "--generation", "2", "--confirm", "--json"]), 0);
    assert_eq!(confirmed["switched"], true, "{confirmed:#}");
    assert_eq!(servers.alias_target(), Some(format!("{c}-g2")));
    reader.stop().assert_moved_through(test, &[&default_id(), &model_id(&self::e5())]);
}
