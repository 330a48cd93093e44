//! Many workers on one job, on a real PostgreSQL and the gRPC test Qdrant server: a planner
//! (`ingest DIR --workers N`) queues the work, `ingest worker` processes claim it under
//! leases. Whatever happens to the workers (killed with SIGKILL mid-lease, stalled past
//! their lease), the job ends equal to a single-process run: the same catalog rows, points
//! and live parquet rows, and no item done twice except those whose lease was taken over.
//! A stalled worker, resumed, drops what it lost and exits by itself.

use crate::common;

use std::ffi::OsStr;
use std::io::Read;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::{json_of, show, small_run, snapshot, text, write, Snapshot, Workspace};

/// Trials of the SIGKILL test; lower it with `INGEST_WORKER_KILL_TRIALS` for a quicker suite.
fn kill_trials() -> usize {
    std::env::var("INGEST_WORKER_KILL_TRIALS").ok().and_then(|n| n.parse().ok()).unwrap_or(10)
}

/// Seconds of a worker's lease in these tests: short, so that taken-over work comes soon.
const LEASE: &str = "2";

fn tree(docs: &std::path::Path) {
    std::fs::create_dir_all(docs.join("nested")).unwrap();
    let topics = ["harbors", "lighthouses", "canals", "bridges", "tunnels", "ferries", "locks", "piers"];
    for (i, topic) in topics.iter().enumerate() {
        write(docs, &format!("{topic}.txt"), &text(topic, 4 + 2 * i));
        write(&docs.join("nested"), &format!("{topic}.md"), &format!("# {topic}\n\n{}", text(topic, 3)));
    }
}

fn run_flags(extra: &[&'static str]) -> Vec<&'static str> {
    small_run(&[&["--upload-batch-size", "10"], extra].concat())
}

/// `ingest DOCS` in one process, as the reference.
fn single_process(ws: &Workspace, docs: &std::path::Path) -> serde_json::Value {
    let args = [docs.as_os_str()].into_iter().chain(run_flags(&[]).into_iter().map(OsStr::new));
    ws.ingest_json(args, 0)
}

/// `ingest DOCS --workers N ...`
fn plan(ws: &Workspace, docs: &std::path::Path, workers: &'static str, extra: &[&'static str]) -> Output {
    let flags = run_flags(&[&["--workers", workers], extra].concat());
    ws.ingest([docs.as_os_str()].into_iter().chain(flags.into_iter().map(OsStr::new)))
}

/// The items a worker holds at most (the worker's `HELD_AT_MOST`): as many as `tree` makes.
const HELD_AT_MOST: i64 = 16;

/// Starts `ingest worker --once --json` with a short lease, writing each file as it comes.
fn start_worker(ws: &Workspace) -> Child {
    start_worker_committing_every(ws, "0")
}

/// Starts `ingest worker --once --json` with a short lease, writing what it embedded every
/// `seconds` (and when it runs out of work).
fn start_worker_committing_every(ws: &Workspace, seconds: &'static str) -> Child {
    let flags = ["worker", "--once", "--json", "--quiet", "--lease", LEASE, "--commit-interval", seconds];
    ws.command(flags.into_iter().chain(["--threads", "1", "--extractors", "1"]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting a worker")
}

fn finish_worker(child: Child) -> serde_json::Value {
    json_of(&child.wait_with_output().unwrap(), 0)
}

/// Files a worker's report says it finished, over all its jobs.
fn files_done(report: &serde_json::Value) -> u64 {
    let count = |job: &serde_json::Value, key: &str| job[key].as_array().map_or(0, |a| a.len() as u64);
    report["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| {
            ["added", "updated", "deleted"].iter().map(|k| job[k].as_u64().unwrap()).sum::<u64>()
                + count(job, "failed")
                + count(job, "no_text")
        })
        .sum()
}

/// Chunks a worker's report says it embedded or took from the cache.
fn chunks_done(report: &serde_json::Value) -> u64 {
    let jobs = report["jobs"].as_array().unwrap();
    jobs.iter().map(|job| job["chunks"].as_u64().unwrap() + job["cache_hits"].as_u64().unwrap()).sum()
}

/// The latest job, as `ingest status --json` shows it.
fn latest_job(ws: &Workspace) -> serde_json::Value {
    let status = ws.ingest_json(["status", "--json"], 0);
    status["jobs"][0].clone()
}

fn reference() -> (tempfile::TempDir, Snapshot, u64) {
    let docs = tempfile::tempdir().unwrap();
    tree(docs.path());
    let ws = Workspace::on_servers();
    let report = single_process(&ws, docs.path());
    assert_eq!(report["status"], "completed", "{report:#}");
    let chunks = report["chunks"].as_u64().unwrap() + report["cache_hits"].as_u64().unwrap();
    (docs, snapshot(&ws), chunks)
}

#[test]
fn a_planner_and_three_workers_index_like_one_process() {
    let (docs, clean, clean_chunks) = reference();
    let ws = Workspace::on_servers();
    let planned = json_of(&plan(&ws, docs.path(), "0", &["--no-wait"]), 0);
    assert_eq!(planned["status"], "queued", "{planned:#}");
    assert_eq!(planned["queued"], 16, "{planned:#}");
    // Until workers have done the queued job, a run in one process would race them: refused.
    let args = [docs.path().as_os_str()].into_iter().chain(run_flags(&[]).into_iter().map(OsStr::new));
    let refused = ws.ingest(args);
    assert_eq!(refused.status.code(), Some(1), "{}", show(&refused));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("start `ingest worker`"), "{}", show(&refused));

    let workers: Vec<Child> = (0..3).map(|_| start_worker(&ws)).collect();
    let reports: Vec<serde_json::Value> = workers.into_iter().map(finish_worker).collect();
    assert_eq!(reports.iter().map(files_done).sum::<u64>(), 16, "each file once: {reports:#?}");
    assert_eq!(reports.iter().map(chunks_done).sum::<u64>(), clean_chunks, "each chunk once: {reports:#?}");
    assert_eq!(reports.iter().map(|r| r["ended_jobs"].as_array().unwrap().len()).sum::<usize>(), 1);
    let job = latest_job(&ws);
    assert_eq!(job["status"], "completed", "{job:#}");
    assert_eq!(job["verification"]["agree"], true, "{job:#}");
    assert_eq!(job["counters"]["processed_files"], 16, "{job:#}");
    assert_eq!(job["counters"]["total_files"], 16, "the planner's count, not a worker's share: {job:#}");
    assert_eq!(snapshot(&ws), clean);

    // A worker started after the queue emptied finds nothing and says so by exiting.
    let started = Instant::now();
    let late = finish_worker(start_worker(&ws));
    assert_eq!(late["jobs"].as_array().unwrap().len(), 0, "{late:#}");
    assert!(started.elapsed() < Duration::from_secs(30), "a --once worker with nothing to do exits");

    // The nightly re-run through the queue: an edit and a deletion, two local workers that the
    // planner starts and waits for. It ends like the same change made in one process.
    std::fs::remove_file(docs.path().join("canals.txt")).unwrap();
    write(docs.path(), "bridges.txt", &text("suspension bridges", 7));
    let rerun = json_of(&plan(&ws, docs.path(), "2", &[]), 0);
    assert_eq!(rerun["status"], "completed", "{rerun:#}");
    assert_eq!(
        (rerun["queued"].as_u64(), rerun["updated"].as_u64(), rerun["deleted"].as_u64()),
        (Some(2), Some(1), Some(1))
    );
    assert_eq!(rerun["verified"]["agree"], true, "{rerun:#}");
    let reference_ws = Workspace::on_servers();
    let docs_before = tempfile::tempdir().unwrap();
    tree(docs_before.path());
    single_process(&reference_ws, docs_before.path());
    std::fs::remove_file(docs_before.path().join("canals.txt")).unwrap();
    write(docs_before.path(), "bridges.txt", &text("suspension bridges", 7));
    single_process(&reference_ws, docs_before.path());
    let (got, want) = (snapshot(&ws), snapshot(&reference_ws));
    // The trees live at different paths; compare what each file holds.
    let relative = |s: &Snapshot, root: &std::path::Path| -> Vec<String> {
        let root = std::fs::canonicalize(root).unwrap().display().to_string();
        s.files.iter().map(|(path, v)| format!("{} {v:?}", path.trim_start_matches(&root))).collect()
    };
    assert_eq!(relative(&got, docs.path()), relative(&want, docs_before.path()));
    assert_eq!(got.points.len(), want.points.len());
    assert_eq!(got.parquet.len(), want.parquet.len());

    // An emptied tree (an unmounted share, say): the planner queues no deletion and says why.
    for entry in std::fs::read_dir(docs.path().join("nested")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    for topic in ["harbors", "lighthouses", "tunnels", "ferries"] {
        std::fs::remove_file(docs.path().join(format!("{topic}.txt"))).unwrap();
    }
    let refused = plan(&ws, docs.path(), "0", &["--no-wait"]);
    let report = json_of(&refused, 1);
    assert_eq!(report["queued"], 0, "{report:#}");
    assert!(report["refused_deletes"]["vanished"].as_u64() == Some(12), "{report:#}");
    assert_eq!(snapshot(&ws), got, "nothing was deleted");
    assert_eq!(latest_job(&ws)["status"], "completed", "a job with no work items ends at once");
}

/// Waits until the worker with this pid holds at least `count` leased items; false if it
/// never does.
fn holds_leases(ws: &Workspace, pid: u32, count: i64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    let sql = format!(
        "SELECT COUNT(*)::BIGINT FROM work_items w JOIN workers k ON k.id = w.owner WHERE k.pid = {pid} AND w.state = 'leased'"
    );
    while Instant::now() < deadline {
        if ws.catalog_number(&sql) >= count {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Waits for `child` to exit by itself, reading what it prints meanwhile; fails (having
/// killed it) with what it printed if it is still running after `limit`.
fn exits_by_itself_within(mut child: Child, limit: Duration) -> Output {
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).expect("reading a worker's output");
            bytes
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().expect("the worker's stdout is piped")));
    let stderr = read_all(Box::new(child.stderr.take().expect("the worker's stderr is piped")));
    let started = Instant::now();
    let exited = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let status = exited.unwrap_or_else(|| child.wait().unwrap());
    let output = Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() };
    assert!(exited.is_some(), "the worker was still running {limit:?} later, and was killed: {}", show(&output));
    output
}

#[test]
fn a_worker_killed_mid_lease_loses_nothing_and_its_items_are_redone_by_others() {
    let (docs, clean, _) = reference();
    let mut rng = fastrand::Rng::with_seed(20_261_124);
    for trial in 0..kill_trials() {
        let ws = Workspace::on_servers();
        // Slow writes keep items leased long enough to be killed holding them.
        ws.qdrant().delay_every_call(Duration::from_millis(40));
        json_of(&plan(&ws, docs.path(), "0", &["--no-wait"]), 0);
        let mut workers: Vec<Child> = (0..3).map(|_| start_worker(&ws)).collect();
        let victim = workers.remove(rng.usize(0..3));
        assert!(holds_leases(&ws, victim.id(), 1), "trial {trial}: the victim never claimed anything");
        let delay = Duration::from_millis(rng.u64(0..400));
        std::thread::sleep(delay);
        let victim_pid = victim.id();
        let mut victim = victim;
        victim.kill().unwrap(); // SIGKILL
        victim.wait().unwrap();
        let survivors: Vec<serde_json::Value> = workers.into_iter().map(finish_worker).collect();

        let job = latest_job(&ws);
        assert_eq!(job["status"], "completed", "trial {trial} (kill after {delay:?}): {job:#}");
        assert_eq!(snapshot(&ws), clean, "trial {trial} (kill after {delay:?})");
        let victim_id = format!("(SELECT id FROM workers WHERE pid = {victim_pid})");
        let victim_done =
            ws.catalog_number(&format!("SELECT COUNT(*)::BIGINT FROM work_items WHERE owner = {victim_id}"));
        let redone = ws.catalog_number("SELECT COUNT(*)::BIGINT FROM work_items WHERE attempts > 1");
        let done = ws.catalog_number("SELECT COUNT(*)::BIGINT FROM work_items WHERE state = 'done'");
        assert_eq!(done, 16, "trial {trial}: every item done, none parked");
        // Each item was finished once: by the victim before it died, or by one survivor.
        let by_survivors = survivors.iter().map(files_done).sum::<u64>();
        assert_eq!(by_survivors as i64 + victim_done, 16, "trial {trial}: {survivors:#?}");
        // The survivors' chunks are exactly those of the items they finished, the victim's
        // taken-over items among them: nothing was embedded twice by the living.
        let survivors_chunks = ws.catalog_number(&format!(
            "SELECT COALESCE(SUM(f.vectors_created), 0)::BIGINT FROM files f JOIN work_items w ON w.path = f.path
             WHERE w.state = 'done' AND w.owner <> {victim_id}"
        ));
        assert_eq!(survivors.iter().map(chunks_done).sum::<u64>() as i64, survivors_chunks, "trial {trial}");
        if redone > 0 {
            let taken_over = ws.catalog_number(&format!(
                "SELECT COUNT(*)::BIGINT FROM work_items WHERE attempts > 1 AND owner = {victim_id}"
            ));
            assert_eq!(taken_over, 0, "trial {trial}: items taken over are finished by the living");
        }
    }
}

/// Queues `docs` and starts one worker, returned once it holds leased items; the server's
/// calls are slowed so that it holds them for a while.
fn a_worker_holding_leases(ws: &Workspace, docs: &std::path::Path) -> Child {
    ws.qdrant().delay_every_call(Duration::from_millis(100));
    json_of(&plan(ws, docs, "0", &["--no-wait"]), 0);
    let worker = start_worker(ws);
    assert!(holds_leases(ws, worker.id(), 1), "the worker never claimed anything");
    worker
}

/// Queues `docs` and starts one worker that writes nothing for a minute, returned once it
/// holds every item (as many as a worker holds at most), none of them written: a worker
/// whose model is slow, say, with all its work still ahead of the store.
fn a_worker_holding_all_it_may(ws: &Workspace, docs: &std::path::Path) -> Child {
    json_of(&plan(ws, docs, "0", &["--no-wait"]), 0);
    let worker = start_worker_committing_every(ws, "60");
    assert!(holds_leases(ws, worker.id(), HELD_AT_MOST), "the worker never held {HELD_AT_MOST} items");
    // Its last claim is in its hands, not only in the database's.
    std::thread::sleep(Duration::from_millis(200));
    worker
}

/// A way to have a worker stalled past its lease.
struct Stall {
    name: &'static str,
    /// Queues the work and starts the worker to stall, returned once it holds leases.
    start: fn(&Workspace, &std::path::Path) -> Child,
    /// Whether it is stopped with every claim in hands: stopped while writing, it may be
    /// stopped in the middle of a claim, which it then never learns of.
    knows_every_claim: bool,
}

#[test]
fn a_worker_stalled_past_its_lease_cannot_complete_what_it_lost() {
    let (docs, clean, _) = reference();
    let lease = Duration::from_secs(LEASE.parse().unwrap());
    for stall in [
        Stall { name: "stalled while writing", start: a_worker_holding_leases, knows_every_claim: false },
        Stall {
            name: "stalled holding all it may, nothing written",
            start: a_worker_holding_all_it_may,
            knows_every_claim: true,
        },
    ] {
        let Stall { name: stall, start, knows_every_claim } = stall;
        let ws = Workspace::on_servers();
        let stalled = start(&ws, docs.path());
        let stalled_pid = stalled.id();
        unsafe { libc::kill(stalled_pid as i32, libc::SIGSTOP) };
        let held = ws.catalog_number(&format!(
            "SELECT COUNT(*)::BIGINT FROM work_items w JOIN workers k ON k.id = w.owner WHERE k.pid = {stalled_pid} AND w.state = 'leased'"
        ));
        // Past its lease, a second worker takes everything over and ends the job.
        ws.qdrant().delay_every_call(Duration::ZERO);
        let other = finish_worker(start_worker(&ws));
        assert_eq!(other["ended_jobs"].as_array().unwrap().len(), 1, "{stall}: {other:#}");
        unsafe { libc::kill(stalled_pid as i32, libc::SIGCONT) };
        // Resumed, it learns within a lease that its items are gone, drops their work, and
        // (with --once) exits, the queue having no open work.
        let resumed = Instant::now();
        let stalled_output = exits_by_itself_within(stalled, 3 * lease + Duration::from_secs(10));
        let stalled_report = json_of(&stalled_output, 0);
        eprintln!("{stall}: the resumed worker exited after {:?}", resumed.elapsed());
        let lost: Vec<String> = stalled_report["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|job| job["lost_leases"].as_array().cloned().unwrap_or_default())
            .map(|path| path.as_str().unwrap().replace('\'', "''"))
            .collect();
        assert!(
            !lost.is_empty() && held > 0,
            "{stall}: the stalled worker found its items taken: {}",
            show(&stalled_output)
        );
        if knows_every_claim {
            assert_eq!(lost.len() as i64, held, "{stall}: each item it held is reported lost: {stalled_report:#}");
            let points: u64 =
                stalled_report["jobs"].as_array().unwrap().iter().map(|j| j["points"].as_u64().unwrap()).sum();
            assert_eq!(points, 0, "{stall}: it wrote none of them: {stalled_report:#}");
        }
        // What it lost was finished by the other worker, not by it.
        let finished_by_stalled = ws.catalog_number(&format!(
            "SELECT COUNT(*)::BIGINT FROM work_items WHERE state = 'done' AND path IN ('{}')
                AND owner = (SELECT id FROM workers WHERE pid = {stalled_pid})",
            lost.join("', '")
        ));
        assert_eq!(finished_by_stalled, 0, "{stall}");
        assert_eq!(files_done(&stalled_report) + files_done(&other), 16, "{stall}: no file finished twice");
        let job = latest_job(&ws);
        assert_eq!(job["status"], "completed", "{stall}: {job:#}");
        assert_eq!(snapshot(&ws), clean, "{stall}");
    }
}

#[test]
fn an_item_whose_lease_keeps_running_out_is_parked_with_its_reason() {
    let (docs, _, _) = reference();
    let ws = Workspace::on_servers();
    let mut victim = a_worker_holding_leases(&ws, docs.path());
    victim.kill().unwrap();
    victim.wait().unwrap();
    let held = ws.catalog_number("SELECT COUNT(*)::BIGINT FROM work_items WHERE state = 'leased'");
    // A worker that parks an item at its first lost lease takes the rest and ends the job.
    ws.qdrant().delay_every_call(Duration::ZERO);
    let flags = ["worker", "--once", "--json", "--quiet", "--lease", LEASE, "--max-retries", "1"];
    let survivor = json_of(&ws.command(flags).output().unwrap(), 0);
    assert_eq!(survivor["ended_jobs"].as_array().unwrap().len(), 1, "{survivor:#}");
    let parked = ws.catalog_number("SELECT COUNT(*)::BIGINT FROM work_items WHERE state = 'parked'");
    assert!(held > 0 && parked == held, "{parked} parked of {held} held by the killed worker");
    let status = ws.ingest_json(["status", "--json"], 0);
    let reason = &status["queues"][0]["parked"][0]["reason"];
    assert!(reason.as_str().unwrap().contains("claimed once, and the lease ran out"), "{status:#}");
    let job = &status["jobs"][0];
    assert_eq!(job["status"], "completed", "{job:#}");
    assert!(job["error"].as_str().unwrap().contains("parked"), "{job:#}");
}

#[test]
fn a_collection_is_created_with_the_cluster_layout_asked_for() {
    let ws = Workspace::on_servers();
    let docs = ws.docs();
    tree(&docs);
    let flags = run_flags(&["--shards", "3", "--replication-factor", "2", "--write-consistency-factor", "2"]);
    json_of(&ws.ingest([docs.as_os_str()].into_iter().chain(flags.into_iter().map(OsStr::new))), 0);
    assert_eq!(ws.qdrant().created_layout(), Some((Some(3), Some(2), Some(2))));
    // Without the flags the server's defaults stand.
    let plain = Workspace::on_servers();
    single_process(&plain, &docs);
    assert_eq!(plain.qdrant().created_layout(), Some((None, None, None)));
    // The embedded engine is one local shard: the flags are refused in a sentence.
    let embedded = Workspace::new();
    let output = embedded.ingest([docs.as_os_str(), OsStr::new("--shards"), OsStr::new("3")]);
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--qdrant-url"), "{}", show(&output));
}

#[test]
fn workers_need_the_servers_and_say_so_in_one_sentence() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.docs()).unwrap();
    let output = ws.ingest(["worker", "--once"]);
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--database-url") && stderr.lines().count() == 1, "{stderr}");
    let output = ws.ingest([ws.docs().as_os_str(), OsStr::new("--workers"), OsStr::new("0")]);
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("PostgreSQL"), "{}", show(&output));
}

/// The value of the sample `name` (with its labels) in a Prometheus text; `None` when absent.
fn sample(text: &str, name: &str) -> Option<f64> {
    let line = text.lines().find(|line| line.starts_with(name) && line[name.len()..].starts_with(' '))?;
    line[name.len()..].trim().parse().ok()
}

#[test]
fn a_worker_serves_its_metrics_while_it_works() {
    let ws = Workspace::on_servers();
    let docs = ws.docs();
    tree(&docs);
    std::fs::write(docs.join("broken.docx"), b"this is not a zip package").unwrap();
    let planned = plan(&ws, &docs, "0", &["--no-wait"]);
    let report = json_of(&planned, 0);
    let job = report["job_id"].as_str().unwrap_or_else(|| panic!("{report:#}")).to_string();
    // The server dies in the middle of the worker's first upsert, and comes back: the worker
    // waits for it, retries, and says so.
    ws.qdrant().crash_during_next_upsert(Duration::from_millis(500));
    // A worker that stays up (no --once), serving its metrics on a port the system chooses.
    let mut worker = ws
        .command(["worker", "--lease", LEASE, "--threads", "1", "--extractors", "1", "--metrics-listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting a worker");
    let mut stderr = std::io::BufReader::new(worker.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    let address: std::net::SocketAddr = line
        .trim()
        .strip_prefix("ingest worker: metrics at http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("the worker says where its metrics are: {line:?}"))
        .parse()
        .unwrap();
    let files = 17;
    let deadline = Instant::now() + Duration::from_secs(60);
    let metrics = loop {
        let text = common::service::request(address, "GET", "/metrics", &[], b"").body;
        if sample(&text, "ingest_worker_files_done_total") == Some(files as f64) {
            break text;
        }
        assert!(Instant::now() < deadline, "the worker's metrics never counted every file:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    unsafe { libc::kill(worker.id() as libc::pid_t, libc::SIGTERM) };
    let stopped = worker.wait().unwrap();
    assert!(stopped.code().is_some(), "{stopped}");

    assert_eq!(sample(&metrics, "ingest_worker_claims_total"), Some(files as f64), "{metrics}");
    assert_eq!(sample(&metrics, "ingest_worker_failures_total{reason=\"corrupt\"}"), Some(1.0), "{metrics}");
    assert_eq!(sample(&metrics, "ingest_worker_failures_total{reason=\"timeout\"}"), Some(0.0), "{metrics}");
    assert!(sample(&metrics, "ingest_worker_chunks_embedded_total").unwrap() > 0.0, "{metrics}");
    assert!(sample(&metrics, "ingest_worker_embed_seconds_total").unwrap() > 0.0, "{metrics}");
    assert!(sample(&metrics, "ingest_worker_stage_seconds_total{stage=\"upsert\"}").unwrap() > 0.0, "{metrics}");
    assert!(sample(&metrics, "ingest_worker_retries_total{service=\"Qdrant\"}").unwrap() >= 1.0, "{metrics}");
    assert!(
        sample(&metrics, "ingest_worker_outage_wait_seconds_total{service=\"Qdrant\"}").unwrap() > 0.0,
        "{metrics}"
    );
    assert_eq!(sample(&metrics, "ingest_worker_lease_losses_total"), Some(0.0), "{metrics}");
    let done = format!("ingest_worker_queue_items{{job=\"{job}\",generation=\"1\",state=\"done\"}}");
    let queued = sample(&metrics, &done);
    assert!(queued.is_none() || queued == Some(files as f64), "{metrics}");
    assert!(metrics.contains("ingest_worker_live_generation{collection=\"documents\",generation=\"1\""), "{metrics}");
    assert!(!metrics.contains("postgres://"), "no URL in the metrics");
}
