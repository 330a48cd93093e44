//! Generations, through the binary, on the embedded default and on PostgreSQL with the test
//! Qdrant server: a model change builds a generation beside the live one and switches when it
//! is ready; search follows the live generation's model and refuses another; rollback; gc;
//! a crash while building leaves the live generation untouched and the next run resumes; a
//! model of another width. Uses the default model and multilingual-e5-small, which
//! `scripts/test.sh` installs.

use crate::common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use common::{json_of, show, text, write, Workspace};
use ingest::model::{models_home, DEFAULT_MODEL};
use serde_json::Value;

fn e5() -> PathBuf {
    let dir = models_home().join("multilingual-e5-small");
    assert!(dir.join("model.onnx").is_file(), "multilingual-e5-small is installed (scripts/test.sh installs it)");
    dir
}

fn model_id(dir: &Path) -> String {
    ingest::model::ModelInfo::load(Some(dir)).unwrap().id
}

/// `ingest DOCS --json --quiet ARGS...`, expecting `code`.
fn run(ws: &Workspace, args: &[&OsStr], code: i32) -> Value {
    let docs = ws.docs();
    let flags = ["--json", "--quiet"].map(OsStr::new);
    ws.ingest_json([docs.as_os_str()].into_iter().chain(flags).chain(args.iter().copied()), code)
}

/// The generations `ingest status --json` lists: (number, state, model, files).
fn generations(ws: &Workspace) -> Vec<(i64, String, String, u64)> {
    let status = ws.ingest_json(["status", "--json"], 0);
    status["generations"]
        .as_array()
        .unwrap_or_else(|| panic!("{status:#}"))
        .iter()
        .map(|g| {
            let field = |name: &str| g[name].as_str().unwrap().to_string();
            (g["number"].as_i64().unwrap(), field("state"), field("model_id"), g["files"].as_u64().unwrap())
        })
        .collect()
}

/// The models that built the hits of a hybrid search, best first.
fn hit_models(ws: &Workspace, extra: &[&str]) -> Vec<String> {
    let args = ["search", "how do I change my login shell", "-k", "3", "--json"].iter().chain(extra);
    let hits = ws.ingest_json(args, 0);
    hits.as_array().unwrap().iter().map(|hit| hit["model"].as_str().unwrap().to_string()).collect()
}

/// Four small files; the one about the login shell answers the searches of these tests.
pub(crate) fn tree(docs: &Path) {
    std::fs::create_dir_all(docs).unwrap();
    write(docs, "shell.txt", "The chsh command changes the login shell of a user account.");
    write(docs, "bees.txt", "Honey bees dance to tell the hive where the flowers are.");
    write(docs, "rivers.txt", &text("rivers", 6));
    write(docs, "glaciers.txt", &text("glaciers", 6));
}

#[test]
fn a_model_change_builds_beside_the_live_generation_and_switches_embedded() {
    build_switch_search_rollback_gc(Workspace::new());
}

#[test]
fn a_model_change_builds_beside_the_live_generation_and_switches_on_servers() {
    build_switch_search_rollback_gc(Workspace::on_servers());
}

fn build_switch_search_rollback_gc(ws: Workspace) {
    let servers = matches!(ws.backend, common::Backend::Servers { .. });
    let (e5, default) = (e5(), models_home().join(DEFAULT_MODEL));
    let (e5_id, default_id) = (model_id(&e5), model_id(&default));
    tree(&ws.docs());
    let first = run(&ws, &[], 0);
    assert!(first["generation"].is_null(), "the first run's generation is live from the start: {first:#}");
    // As a build from before generations left it: jobs, files and points, no generation. The
    // next command records it as generation 1, live, with its latest job's model.
    ws.execute_on_catalog("DELETE FROM generations");
    assert_eq!(generations(&ws), [(1, "live".into(), default_id.clone(), 4)]);
    assert_eq!(run(&ws, &[], 0)["unchanged"], 4, "nothing is embedded again");
    let live_points = ws.stored_points("documents", false);
    assert_eq!(hit_models(&ws, &[]), vec![default_id.clone(); 3]);

    // Another model: generation 2, built beside, then switched to.
    let second = run(&ws, &["--model-dir".as_ref(), e5.as_os_str()], 0);
    let built = &second["generation"];
    assert_eq!(
        (&built["number"], &built["live"], &built["replaced"]),
        (&2.into(), &true.into(), &1.into()),
        "{second:#}"
    );
    assert_eq!((&second["added"], &built["catch_up_passes"]), (&4.into(), &1.into()), "{second:#}");
    assert_eq!(generations(&ws), [(1, "previous".into(), default_id.clone(), 4), (2, "live".into(), e5_id.clone(), 4)]);
    let generation_1 = if servers { "documents-g1" } else { "documents" };
    assert_eq!(ws.stored_points(generation_1, false), live_points, "generation 1's points are untouched");
    if servers {
        assert_eq!(ws.qdrant().aliases(), [("documents".into(), "documents-g2".into())]);
    }

    // Search embeds with the live generation's model, or the one asked for.
    assert_eq!(hit_models(&ws, &[]), vec![e5_id.clone(); 3]);
    assert_eq!(hit_models(&ws, &["--generation", "1"]), vec![default_id.clone(); 3]);
    let refused = ws.ingest(["search", "login shell", "--model-dir", default.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1), "{}", show(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains(&e5_id) && stderr.contains(&default_id), "{}", show(&refused));
    assert_eq!(stderr.trim().lines().count(), 1, "one sentence: {}", show(&refused));

    // The nightly run, without --model-dir, updates the live generation.
    write(&ws.docs(), "bees.txt", "Bees fan their wings to cool the hive on hot days.");
    let nightly = run(&ws, &[], 0);
    assert!(nightly["generation"].is_null(), "{nightly:#}");
    assert_eq!((&nightly["updated"], &nightly["unchanged"]), (&1.into(), &3.into()), "{nightly:#}");
    assert_eq!(generations(&ws)[1], (2, "live".into(), e5_id.clone(), 4));

    // Rollback serves generation 1 again; it has not seen the edit.
    let rolled = ws.ingest_json(["rollback", "--json"], 0);
    assert_eq!((&rolled["live"], &rolled["was_live"]), (&1.into(), &2.into()), "{rolled:#}");
    assert_eq!(hit_models(&ws, &[]), vec![default_id.clone(); 3]);
    if servers {
        assert_eq!(ws.qdrant().aliases(), [("documents".into(), "documents-g1".into())]);
    }

    // The e5 model again: generation 2 is brought up to date with the edit, and switched to.
    write(&ws.docs(), "rivers.txt", &text("deltas", 6));
    let forward = run(&ws, &["--model-dir".as_ref(), e5.as_os_str()], 0);
    let built = &forward["generation"];
    assert_eq!((&built["number"], &built["live"], &built["replaced"]), (&2.into(), &true.into(), &1.into()));
    assert_eq!((&forward["updated"], &forward["unchanged"]), (&1.into(), &3.into()), "{forward:#}");

    // gc deletes generation 1, and only when asked.
    let planned = ws.ingest_json(["gc", "--dry-run", "--json"], 0);
    assert_eq!(planned["generations"].as_array().unwrap().len(), 1, "{planned:#}");
    assert_eq!(planned["generations"][0]["number"], 1);
    assert_eq!(generations(&ws).len(), 2, "a dry run deletes nothing");
    let collected = ws.ingest_json(["gc", "--json"], 0);
    assert_eq!(collected["generations"][0]["number"], 1, "{collected:#}");
    assert_eq!(generations(&ws), [(2, "live".into(), e5_id.clone(), 4)]);
    assert!(ws.stored_points(generation_1, false).is_empty(), "generation 1's collection is gone");
    if !servers {
        assert!(!ws.data().join("parquet").join("documents").exists(), "and its parquet copy");
    }
    let nothing = ws.ingest(["rollback"]);
    assert_eq!(nothing.status.code(), Some(1), "{}", show(&nothing));
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("no previous generation"), "{}", show(&nothing));

    // Another chunking is another generation too, with the live model.
    let rechunked = run(&ws, &["--chunk-size".as_ref(), "48".as_ref()], 0);
    assert_eq!((&rechunked["generation"]["number"], &rechunked["generation"]["live"]), (&3.into(), &true.into()));
    assert_eq!(generations(&ws)[1], (3, "live".into(), e5_id.clone(), 4));
    assert_eq!(ws.ingest_json(["verify", "--json"], 0)["clean"], true);
}

#[test]
fn a_crash_while_building_leaves_the_live_generation_untouched_and_the_next_run_resumes_embedded() {
    crash_while_building(Workspace::new());
}

#[test]
fn a_crash_while_building_leaves_the_live_generation_untouched_and_the_next_run_resumes_on_servers() {
    crash_while_building(Workspace::on_servers());
}

fn crash_while_building(ws: Workspace) {
    let docs = ws.docs();
    std::fs::create_dir_all(&docs).unwrap();
    let topics = ["tides", "comets", "ferns", "canyons", "lichens", "auroras", "dunes", "geysers"];
    for (i, topic) in topics.iter().cycle().take(40).enumerate() {
        write(&docs, &format!("{i:02}-{topic}.txt"), &text(&format!("{topic} {i}"), 12));
    }
    let flags = ["--chunk-size", "24", "--chunk-overlap", "0", "--commit-interval", "0"].map(OsStr::new);
    run(&ws, &flags, 0);
    let live_points = ws.stored_points("documents", true);
    let e5 = e5();

    let mut build = ws.spawn(
        &docs,
        &[
            "--quiet",
            "--chunk-size",
            "24",
            "--chunk-overlap",
            "0",
            "--commit-interval",
            "0",
            "--model-dir",
            e5.to_str().unwrap(),
        ],
    );
    let completed = "SELECT COUNT(*) FROM files WHERE collection = 'documents-g2' AND status = 'completed'";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while ws.catalog_number(completed) < 5 {
        assert!(std::time::Instant::now() < deadline, "the build made no progress");
        assert!(build.try_wait().unwrap().is_none(), "the build ended before it was killed");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    build.kill().unwrap(); // SIGKILL
    build.wait().unwrap();
    let done_before = ws.catalog_number(completed);
    assert!(done_before < 40, "killed mid-build ({done_before} files done)");

    let listed = generations(&ws);
    assert_eq!((listed[0].0, listed[0].1.as_str(), listed[1].0, listed[1].1.as_str()), (1, "live", 2, "building"));
    assert_eq!(ws.stored_points("documents", true), live_points, "the live generation is untouched");
    let default_id = model_id(&models_home().join(DEFAULT_MODEL));
    assert_eq!(hit_models(&ws, &[]), vec![default_id; 3], "and still answers, with its model");

    let mut resume: Vec<&OsStr> = flags.to_vec();
    resume.extend(["--model-dir".as_ref(), e5.as_os_str()]);
    let resumed = run(&ws, &resume, 0);
    assert_eq!((&resumed["generation"]["number"], &resumed["generation"]["live"]), (&2.into(), &true.into()));
    let embedded = resumed["added"].as_i64().unwrap() + resumed["updated"].as_i64().unwrap();
    assert_eq!(embedded + resumed["unchanged"].as_i64().unwrap(), 40, "{resumed:#}");
    assert!(embedded <= 40 - done_before, "files completed before the crash are not embedded again: {resumed:#}");
    assert_eq!(ws.ingest_json(["verify", "--json"], 0)["clean"], true);
}

#[test]
fn a_model_of_another_width_builds_its_own_generation() {
    let Ok(python) = std::env::var("INGEST_TEST_PYTHON") else {
        panic!("INGEST_TEST_PYTHON names the Python with onnx and numpy (scripts/test.sh sets it)");
    };
    let ws = Workspace::new();
    tree(&ws.docs());
    run(&ws, &[], 0);
    let narrow = ws.temp.path().join("narrow-model");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/models/narrow_model.py");
    let default = models_home().join(DEFAULT_MODEL);
    let built = std::process::Command::new(python).arg(script).arg(&default).arg(&narrow).arg("256").output().unwrap();
    assert!(built.status.success(), "{}", show(&built));
    let narrow_model = ingest::model::ModelInfo::load(Some(&narrow)).unwrap();
    assert_eq!(narrow_model.dim, 256);

    let switched = run(&ws, &["--model-dir".as_ref(), narrow.as_os_str()], 0);
    assert_eq!((&switched["generation"]["number"], &switched["generation"]["live"]), (&2.into(), &true.into()));
    let status = ws.ingest_json(["status", "--json"], 0);
    assert_eq!(status["generations"][1]["vector_dim"], 256, "{status:#}");
    assert_eq!(status["generations"][0]["vector_dim"], 384, "{status:#}");

    // The narrow model is not installed: search says so, and takes it from --model-dir.
    let missing = ws.ingest(["search", "login shell"]);
    assert_eq!(missing.status.code(), Some(1), "{}", show(&missing));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not installed"), "{}", show(&missing));
    let found = json_of(&ws.ingest(["search", "login shell", "--json", "--model-dir", narrow.to_str().unwrap()]), 0);
    assert_eq!(found[0]["model"].as_str().unwrap(), narrow_model.id);
    assert_eq!(ws.ingest_json(["verify", "--json"], 0)["clean"], true);
    assert_eq!(ws.ingest_json(["verify", "--json", "--generation", "1"], 0)["clean"], true);
}

/// While a tree switches models, a separate `ingest search` process at a time asks the
/// collection, again and again, which model answers. Every answer comes from exactly one
/// generation: the old one until a single moment, the new one after it, and none fails.
/// `INGEST_SWITCH_CHUNKS` sets the tree's size in chunks (default 400); the timeline is
/// printed (`--nocapture`).
#[test]
fn a_switch_under_reads_moves_every_reader_at_one_moment() {
    let chunks: usize = std::env::var("INGEST_SWITCH_CHUNKS").ok().and_then(|n| n.parse().ok()).unwrap_or(400);
    let ws = Workspace::new();
    let docs = ws.docs();
    std::fs::create_dir_all(&docs).unwrap();
    // Each of these files is about twenty chunks of 24 tokens, its own (the embedding cache
    // would embed a repeated text once).
    let topics = ["tides", "comets", "ferns", "canyons", "lichens", "auroras", "dunes", "geysers", "reefs", "moss"];
    let files = chunks.div_ceil(20);
    for i in 0..files {
        write(&docs, &format!("{i:04}.txt"), &text(&format!("{} {i}", topics[i % topics.len()]), 20));
    }
    let flags = ["--chunk-size", "24", "--chunk-overlap", "0"];
    let first = run(&ws, &flags.map(OsStr::new), 0);
    let e5 = e5();
    let (old, new) = (model_id(&models_home().join(DEFAULT_MODEL)), model_id(&e5));

    let (started, started_at) = (std::time::Instant::now(), chrono::Utc::now());
    let mut build = ws
        .command([docs.as_os_str()].into_iter().chain(flags.map(OsStr::new)).chain([
            "--quiet".as_ref(),
            "--json".as_ref(),
            "--model-dir".as_ref(),
            e5.as_os_str(),
        ]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut answers: Vec<(f64, Result<String, String>)> = Vec::new();
    let mut after_end = 0;
    while after_end < 3 {
        if build.try_wait().unwrap().is_some() {
            after_end += 1;
        }
        let asked = ws.ingest(["search", "the tides and the comets", "-k", "1", "--json"]);
        let at = started.elapsed().as_secs_f64();
        let answer = match asked.status.success() {
            true => Ok(json_of(&asked, 0)[0]["model"].as_str().unwrap().to_string()),
            false => Err(show(&asked)),
        };
        answers.push((at, answer));
    }
    let finished = build.wait_with_output().unwrap();
    let report = json_of(&finished, 0);
    assert_eq!(report["generation"]["live"], true, "{report:#}");

    let failed: Vec<_> = answers.iter().filter_map(|(at, a)| a.as_ref().err().map(|e| (at, e))).collect();
    assert!(failed.is_empty(), "no query fails: {failed:#?}");
    let served: Vec<(f64, &str)> = answers.iter().map(|(at, a)| (*at, a.as_deref().unwrap())).collect();
    assert!(served.iter().all(|(_, model)| *model == old || *model == new), "{served:?}");
    let switch = served.iter().position(|(_, model)| *model == new).expect("the new generation answers in the end");
    assert!(switch > 0, "the old generation answers while the new one is built: {served:?}");
    assert!(served[switch..].iter().all(|(_, model)| *model == new), "one switch, never back: {served:?}");
    let status = ws.ingest_json(["status", "--json"], 0);
    let live_at = chrono::DateTime::parse_from_rfc3339(status["generations"][1]["live_at"].as_str().unwrap()).unwrap();
    let switched = (live_at.with_timezone(&chrono::Utc) - started_at).as_seconds_f64();
    println!(
        "switch under reads: {} chunks in {files} files, rebuilt with another model from 0.0s; the build's job took \
         {:.1}s; generation 2 went live at {switched:.1}s; {switch} answers from generation 1, the last answered at \
         {:.1}s; {} from generation 2, the first answered at {:.1}s; {} queries, none failed",
        first["chunks"],
        report["elapsed_seconds"].as_f64().unwrap_or_default(),
        served[switch - 1].0,
        served.len() - switch,
        served[switch].0,
        served.len()
    );
}

/// A build queued for workers (`--workers 1`) goes to the generation beside the live one: the
/// local worker builds it with the planner's model, and the planner switches once it is done.
/// A worker started without `--model-dir` afterwards works for the live generation's model.
#[test]
fn workers_build_a_generation_beside_the_live_one_and_the_planner_switches() {
    let ws = Workspace::on_servers();
    tree(&ws.docs());
    run(&ws, &[], 0);
    let e5 = e5();
    let queued = run(&ws, &["--workers".as_ref(), "1".as_ref(), "--model-dir".as_ref(), e5.as_os_str()], 0);
    let built = &queued["generation"];
    assert_eq!(
        (&built["number"], &built["live"], &built["replaced"]),
        (&2.into(), &true.into(), &1.into()),
        "{queued:#}"
    );
    assert_eq!(queued["queue"]["depth"]["done"], 4, "{queued:#}");
    let e5_id = model_id(&e5);
    assert_eq!(generations(&ws)[1], (2, "live".into(), e5_id.clone(), 4));
    assert_eq!(hit_models(&ws, &[]), vec![e5_id; 3]);
    assert_eq!(ws.qdrant().aliases(), [("documents".into(), "documents-g2".into())]);

    write(&ws.docs(), "bees.txt", "Bees fan their wings to cool the hive on hot days.");
    let nightly = run(&ws, &["--workers".as_ref(), "1".as_ref()], 0);
    assert!(nightly["generation"].is_null(), "{nightly:#}");
    assert_eq!(nightly["updated"], 1, "the live generation's model, in the planner and its worker: {nightly:#}");
}

/// On a Qdrant server, clients that read the alias itself move at once: while a run switches
/// generation 2 (e5) to generation 3 (the default model, another chunking), a thread reads
/// `documents` through the test server, a point at a time, and records which model wrote it.
/// Every read succeeds, and the answers change once, from one model to the other.
#[test]
fn readers_of_the_alias_on_a_server_move_at_one_moment() {
    let ws = Workspace::on_servers();
    let docs = ws.docs();
    std::fs::create_dir_all(&docs).unwrap();
    for i in 0..30 {
        write(&docs, &format!("{i:02}.txt"), &text(&format!("estuaries {i}"), 12));
    }
    let e5 = e5();
    run(&ws, &[], 0);
    run(&ws, &["--model-dir".as_ref(), e5.as_os_str()], 0);
    assert_eq!(ws.qdrant().aliases(), [("documents".into(), "documents-g2".into())]);

    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (done, url) = (done.clone(), ws.qdrant().url());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async {
                let policy = ingest::retry::RetryPolicy::default();
                let alias = ingest::store::qdrant::QdrantIndex::connect(&url, None, "documents", policy).await.unwrap();
                let mut answers = Vec::new();
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    let read = ingest::store::VectorIndex::scroll(&alias, None, 1, false).await;
                    answers.push(read.map(|(points, _)| points[0].payload.model.clone()).map_err(|e| format!("{e:#}")));
                }
                answers
            })
        })
    };
    let switched = run(
        &ws,
        &[
            "--model-dir".as_ref(),
            models_home().join(DEFAULT_MODEL).as_os_str(),
            "--chunk-size".as_ref(),
            "48".as_ref(),
        ],
        0,
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let answers = reader.join().unwrap();
    assert_eq!((&switched["generation"]["number"], &switched["generation"]["live"]), (&3.into(), &true.into()));
    assert_eq!(ws.qdrant().aliases(), [("documents".into(), "documents-g3".into())]);

    let failed: Vec<_> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    assert!(failed.is_empty(), "no read of the alias fails: {failed:?}");
    let models: Vec<&str> = answers.iter().map(|a| a.as_deref().unwrap()).collect();
    let (old, new) = (model_id(&e5), model_id(&models_home().join(DEFAULT_MODEL)));
    let switch = models.iter().position(|m| *m == new).expect("the new generation answers in the end");
    assert!(switch > 0 && models[..switch].iter().all(|m| *m == old), "the old one answers first");
    assert!(models[switch..].iter().all(|m| *m == new), "one switch, never back");
    println!(
        "alias reads: {} from generation 2, then {} from generation 3, none failed",
        switch,
        models.len() - switch
    );
}

#[test]
fn a_generation_lacking_served_files_waits_for_the_operator_embedded() {
    lacking_generation_waits_for_the_operator(Workspace::new());
}

#[test]
fn a_generation_lacking_served_files_waits_for_the_operator_on_servers() {
    lacking_generation_waits_for_the_operator(Workspace::on_servers());
}

/// A new generation that lacks files the live one serves (one failed in it, one its run left
/// out) does not switch: the run lists them, `ingest switch` lists them and exits 2, and only
/// `--confirm` switches. gc deletes an abandoned build by number, never the live generation.
fn lacking_generation_waits_for_the_operator(ws: Workspace) {
    let docs = ws.docs();
    tree(&docs);
    write(&docs, "notes.md", "# Notes\n\nThe orchard needs pruning before the frost.");
    run(&ws, &[], 0);
    let rivers = docs.join("rivers.txt").display().to_string();
    let notes = docs.join("notes.md").display().to_string();

    // Shorter chunks make rivers.txt too long for its cap; --extension leaves notes.md out.
    let flags = ["--chunk-size", "24", "--chunk-overlap", "0", "--max-file-chunks", "3", "--extension", "txt"];
    let built = run(&ws, &flags.map(OsStr::new), 2);
    let generation = &built["generation"];
    assert_eq!((&generation["number"], &generation["live"]), (&2.into(), &false.into()), "{built:#}");
    let waiting = generation["waiting"].as_str().unwrap_or_default();
    assert!(waiting.contains("lacks") && waiting.contains("--confirm"), "{built:#}");
    let missing = &generation["missing"];
    let failed: Vec<&str> = missing["failed"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    let glaciers = docs.join("glaciers.txt").display().to_string();
    assert_eq!(failed, [glaciers.as_str(), rivers.as_str()], "{built:#}");
    assert_eq!(missing["absent"], serde_json::json!([notes]), "{built:#}");
    let states: Vec<(i64, String)> = generations(&ws).into_iter().map(|(n, state, ..)| (n, state)).collect();
    assert_eq!(states, [(1, "live".into()), (2, "building".into())], "the live generation serves on");

    let unconfirmed = ws.ingest(["switch", "--generation", "2"]);
    assert_eq!(unconfirmed.status.code(), Some(2), "{}", show(&unconfirmed));
    let said = String::from_utf8_lossy(&unconfirmed.stderr);
    assert!(said.contains(&rivers) && said.contains(&notes) && said.contains("--confirm"), "{}", show(&unconfirmed));
    assert_eq!(generations(&ws)[0].1, "live");

    let confirmed = ws.ingest_json(["switch", "--generation", "2", "--confirm", "--json"], 0);
    assert_eq!((&confirmed["switched"], &confirmed["replaced"]), (&true.into(), &1.into()), "{confirmed:#}");
    let states: Vec<String> = generations(&ws).into_iter().map(|(_, state, ..)| state).collect();
    assert_eq!(states, ["previous", "live"]);
    assert_eq!(ws.ingest_json(["verify", "--json"], 0)["clean"], true);

    let refused = ws.ingest(["gc", "--generation", "2"]);
    assert_eq!(refused.status.code(), Some(1), "gc never deletes the live generation: {}", show(&refused));
    // A build that fails every file stays building; gc deletes it by number, and only it.
    let abandoned =
        run(&ws, &["--chunk-size", "8", "--chunk-overlap", "0", "--max-file-chunks", "1"].map(OsStr::new), 2);
    assert_eq!((&abandoned["generation"]["number"], &abandoned["generation"]["live"]), (&3.into(), &false.into()));
    let collected = ws.ingest_json(["gc", "--generation", "3", "--json"], 0);
    assert_eq!(collected["generations"][0]["number"], 3, "{collected:#}");
    let numbers: Vec<i64> = generations(&ws).into_iter().map(|(n, ..)| n).collect();
    assert_eq!(numbers, [1, 2]);

    let taken = ws.ingest(["status", "--collection", "documents-g2"]);
    assert_eq!(taken.status.code(), Some(1), "a collection named like a generation: {}", show(&taken));
}

/// The real Qdrant cluster `scripts/test.sh` starts from `../shared/qdrant`, when this machine
/// has it: its gRPC address. Says plainly when a test that needs it does not run.
fn real_qdrant_cluster(test: &str) -> Option<String> {
    let url = std::env::var("INGEST_TEST_QDRANT_CLUSTER").ok().filter(|url| !url.is_empty());
    if url.is_none() {
        eprintln!(
            "{test}: did not run: it needs the real Qdrant cluster that scripts/test.sh starts from ../shared/qdrant"
        );
    }
    url
}

/// The layout the server reports for `collection`: (shards, replication factor, write
/// consistency factor, payload storage, HNSW m).
type Layout = (u32, Option<u32>, Option<u32>, Option<qdrant_client::qdrant::PayloadStorageParams>, Option<u64>);

fn layout_of(url: &str, collection: &str) -> Layout {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = qdrant_client::Qdrant::from_url(url).skip_compatibility_check().build().unwrap();
        let config = client.collection_info(collection).await.unwrap().result.unwrap().config.unwrap();
        let params = config.params.unwrap();
        let m = config.hnsw_config.and_then(|hnsw| hnsw.m);
        (params.shard_number, params.replication_factor, params.write_consistency_factor, params.payload, m)
    })
}

#[test]
fn a_new_generation_keeps_the_layout_of_the_live_one_on_a_real_qdrant_cluster() {
    let Some(url) = real_qdrant_cluster("a_new_generation_keeps_the_layout_of_the_live_one_on_a_real_qdrant_cluster")
    else {
        return;
    };
    let ws = Workspace::new();
    tree(&ws.docs());
    let postgres = common::postgres::FreshPostgres::create();
    let collection = format!("layout{}", &postgres.name[postgres.name.len() - 8..]);
    let servers = ["--database-url", &postgres.url, "--qdrant-url", &url, "--collection", &collection];
    let runs = |extra: &[&str]| {
        let args: Vec<&OsStr> = servers.iter().chain(extra).map(OsStr::new).collect();
        run(&ws, &args, 0)
    };
    runs(&["--shards", "3", "--replication-factor", "2", "--write-consistency-factor", "2"]);
    let first = layout_of(&url, &collection);
    assert_eq!((first.0, first.1, first.2), (3, Some(2), Some(2)), "the first generation as its flags asked");

    // Another chunking, without the layout flags: generation 2 is laid out as generation 1.
    let built = runs(&["--chunk-size", "48"]);
    assert_eq!((&built["generation"]["number"], &built["generation"]["live"]), (&2.into(), &true.into()), "{built:#}");
    assert_eq!(layout_of(&url, &format!("{collection}-g2")), first, "generation 2 lost the cluster's layout");
    assert_eq!(layout_of(&url, &format!("{collection}-g1")), first, "generation 1, moved aside, lost it");

    // A flag given to the build overrides what it copies.
    let rebuilt = runs(&["--chunk-size", "64", "--write-consistency-factor", "1"]);
    assert_eq!(rebuilt["generation"]["number"], 3, "{rebuilt:#}");
    let third = layout_of(&url, &format!("{collection}-g3"));
    assert_eq!((third.0, third.1, third.2), (3, Some(2), Some(1)));

    // A peer dies during the next switch, to another model: the run finishes on the two peers
    // left, and a reader of the name sees no failure and one change of model.
    let reader = crate::switch_on_servers::Reader::start(&url, &collection);
    let (docs, e5) = (ws.docs(), e5());
    let flags = [docs.as_os_str(), "--json".as_ref(), "--quiet".as_ref(), "--model-dir".as_ref(), e5.as_os_str()];
    let mut switching = ws
        .command(flags.into_iter().chain(servers.iter().map(OsStr::new)))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let fourth = format!("{collection}-g4");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !collection_exists(&url, &fourth) {
        assert!(std::time::Instant::now() < deadline, "generation 4's collection never appeared");
        assert!(switching.try_wait().unwrap().is_none(), "the run ended before a peer could be killed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let peer = ClusterPeer::kill_the_last();
    let switched = switching.wait_with_output().unwrap();
    peer.start_again();
    let reads = reader.stop();
    let switched = json_of(&switched, 0);
    assert_eq!((&switched["generation"]["number"], &switched["generation"]["live"]), (&4.into(), &true.into()));
    reads.assert_moved_through(
        "a peer killed during a switch",
        &[&model_id(&models_home().join(DEFAULT_MODEL)), &model_id(&e5)],
    );
}

fn collection_exists(url: &str, collection: &str) -> bool {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let client = qdrant_client::Qdrant::from_url(url).skip_compatibility_check().build().unwrap();
        client.collection_exists(collection).await.unwrap_or(false)
    })
}

/// A peer of the real cluster `scripts/test.sh` started (its pids in
/// `INGEST_TEST_QDRANT_CLUSTER_PIDS`), as it was started, so that it can be started again.
struct ClusterPeer {
    command: Vec<std::ffi::OsString>,
    env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    cwd: PathBuf,
    pids: PathBuf,
}

impl ClusterPeer {
    /// Kills the cluster's last peer (not the one the tests talk to) with SIGKILL.
    fn kill_the_last() -> Self {
        use std::os::unix::ffi::OsStrExt;
        let pids = PathBuf::from(std::env::var("INGEST_TEST_QDRANT_CLUSTER_PIDS").expect("the cluster's pids file"));
        let listed = std::fs::read_to_string(&pids).unwrap();
        let pid: i32 = listed.lines().rfind(|l| !l.trim().is_empty()).unwrap().trim().parse().unwrap();
        let split = |bytes: Vec<u8>| -> Vec<std::ffi::OsString> {
            bytes.split(|&b| b == 0).filter(|s| !s.is_empty()).map(|s| OsStr::from_bytes(s).to_owned()).collect()
        };
        let command = split(std::fs::read(format!("/proc/{pid}/cmdline")).unwrap());
        let env = split(std::fs::read(format!("/proc/{pid}/environ")).unwrap())
            .into_iter()
            .filter_map(|pair| {
                let bytes = pair.as_bytes();
                let at = bytes.iter().position(|&b| b == b'=')?;
                Some((OsStr::from_bytes(&bytes[..at]).to_owned(), OsStr::from_bytes(&bytes[at + 1..]).to_owned()))
            })
            .collect();
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
        // SAFETY: a signal to a process this test suite's script started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        Self { command, env, cwd, pids }
    }

    /// Starts the peer again, as it was, and waits until it answers; its pid joins the
    /// pids file, so that `scripts/test.sh` stops it at the end.
    #[allow(clippy::zombie_processes)] // left running for the tests after this one; scripts/test.sh stops it
    fn start_again(self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.cwd.join("log")).unwrap();
        let child = std::process::Command::new(&self.command[0])
            .args(&self.command[1..])
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.cwd)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut pids = std::fs::OpenOptions::new().append(true).open(&self.pids).unwrap();
        std::io::Write::write_all(&mut pids, format!("{}\n", child.id()).as_bytes()).unwrap();
        let port = self.env.iter().find(|(k, _)| k == "QDRANT__SERVICE__HTTP_PORT").map(|(_, v)| v.clone()).unwrap();
        let ready = format!("127.0.0.1:{}", port.to_string_lossy());
        for _ in 0..120 {
            if std::net::TcpStream::connect(&ready).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        panic!("the peer killed did not start again");
    }
}
