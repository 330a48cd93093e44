//! Section 11, scale: the whole-collection steps at growing sizes, through the real binary,
//! each with its wall time, its rate, its peak RSS and its peak anonymous memory.
//!
//! Each point is a file of one sentence, the same in every file: the model embeds it once and
//! the embedding cache serves every other file, so the first run measures the per-file work
//! (catalog rows, cache lookups, commits, parquet parts) and not the model. Then, for each
//! size: a no-change re-run, beside a bare walk that stats every file; `verify`; `verify --repair` after 1% of the points are deleted
//! from the collection and 1% of the rows from the parquet copy; `restore` into an empty
//! collection, beside a bare loop that upserts the same points, already in memory, into a
//! fresh collection of the same store with the same batches; `export`; on a server, a
//! generation's copy (`ingest migrate` moving a collection from before generations out of
//! its name: every point copied, then compared).
//!
//! Sizes: `INGEST_BENCH_SCALE` (point counts separated by commas), by default 100,000,
//! 300,000 and 1,000,000; with `--quick`, 20,000 and 60,000. On the embedded default, and on
//! PostgreSQL (`DATABASE_URL_TEST`, else the local one) with a real Qdrant when
//! `INGEST_BENCH_QDRANT_URL` names its gRPC address (`../shared/qdrant/start.sh single DIR`);
//! `INGEST_BENCH_SCALE_BACKEND=embedded` or `servers` runs only one of them.
//! `INGEST_BENCH_SCALE_MODEL` names an installed model (`scripts/setup.sh --models`) to
//! build the collections with instead of the default, for its width of vector: with
//! all-mpnet-base-v2, 768 dimensions.
//!
//! On a server, restore is also set beside an independent client: Qdrant's own Python client
//! (`benches/scale/bare_client.py`, `upload_points` with parallel workers over gRPC) upserting
//! the same rows, read from the same parquet copy, into a fresh collection of the same
//! server. It runs with the Python of `INGEST_TEST_PYTHON` (as `scripts/test.sh` sets it) when
//! that Python has `qdrant_client` and `pyarrow`, and says so when it does not.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;

use ingest::model::ModelInfo;
use ingest::parquet_copy::{point_batches, ParquetCopy};
use ingest::store::{Point, StoreLocation, VectorIndex};

use crate::Bench;

/// The one sentence every file holds.
const SENTENCE: &str = "The archive keeps one short note in every folder, the same note in each.";

/// One step of one size: what the binary printed, its seconds, its peak RSS and its peak
/// anonymous memory (RSS less the pages of mapped files, which the kernel can take back: the
/// embedded engine maps its collection's files).
struct Step {
    seconds: f64,
    peak_mib: f64,
    peak_anon_mib: f64,
    report: serde_json::Value,
}

/// A field of `/proc/PID/status`, in MiB.
fn status_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}

/// Runs `ingest ARGS --json --quiet`, reading its memory from `/proc` every 20 ms (`VmHWM`
/// is the kernel's own high-water mark; the anonymous peak is the largest `RssAnon` read);
/// an error unless it exits `code`.
fn step(args: &[OsString], code: i32) -> Result<Step> {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ingest"))
        .args(args)
        .args(["--json", "--quiet"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting ingest")?;
    let pid = child.id();
    let reader = {
        let mut stdout = child.stdout.take().context("no stdout")?;
        std::thread::spawn(move || {
            let mut text = Vec::new();
            std::io::Read::read_to_end(&mut stdout, &mut text).map(|_| text)
        })
    };
    let (mut peak, mut peak_anon) = (0f64, 0f64);
    while child.try_wait()?.is_none() {
        peak = peak.max(status_mib(pid, "VmHWM:").unwrap_or(0.0));
        peak_anon = peak_anon.max(status_mib(pid, "RssAnon:").unwrap_or(0.0));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let output = child.wait_with_output()?;
    let seconds = started.elapsed().as_secs_f64();
    let stdout = reader.join().expect("the reader thread")?;
    anyhow::ensure!(
        output.status.code() == Some(code),
        "ingest {args:?} exited {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    let report = serde_json::from_slice(&stdout).unwrap_or(serde_json::Value::Null);
    Ok(Step { seconds, peak_mib: peak, peak_anon_mib: peak_anon, report })
}

/// `files` files of [`SENTENCE`] in directories of 1,000.
fn make_identical_files(root: &Path, files: usize) -> Result<()> {
    for f in 0..files {
        let dir = root.join(format!("d{:04}", f / 1000));
        if f % 1000 == 0 {
            std::fs::create_dir_all(&dir)?;
        }
        std::fs::write(dir.join(format!("n{f:07}.txt")), SENTENCE)?;
    }
    Ok(())
}

/// Where a collection's stores are: the data directory, and the servers when there are.
struct Stores {
    data: PathBuf,
    database_url: Option<String>,
    qdrant_url: Option<String>,
    collection: String,
    /// The model's directory, when it is not the default one.
    model_dir: Option<PathBuf>,
}

impl Stores {
    fn args(&self, first: &[&str]) -> Vec<OsString> {
        let mut args: Vec<OsString> = first.iter().map(OsString::from).collect();
        args.extend(["--data-dir".into(), self.data.clone().into_os_string()]);
        args.extend(["--collection".into(), self.collection.clone().into()]);
        if let (Some(database), Some(qdrant)) = (&self.database_url, &self.qdrant_url) {
            args.extend(["--database-url".into(), database.into(), "--qdrant-url".into(), qdrant.into()]);
        }
        if let Some(model_dir) = &self.model_dir {
            args.extend(["--model-dir".into(), model_dir.clone().into_os_string()]);
        }
        args
    }

    /// The collection that holds the points: on a server, generation 1 behind the name.
    fn stored_name(&self) -> String {
        match self.qdrant_url {
            Some(_) => format!("{}-g1", self.collection),
            None => self.collection.clone(),
        }
    }

    fn index(&self, bench: &Bench, collection: &str) -> Result<std::sync::Arc<dyn VectorIndex>> {
        let location = StoreLocation {
            data_dir: &self.data,
            qdrant_url: self.qdrant_url.as_deref(),
            api_key: None,
            layout: Default::default(),
            like: None,
        };
        bench.runtime.block_on(ingest::store::open(location, collection, ingest::retry::RetryPolicy::default()))
    }

    /// The directory of the parquet copy: the one under `parquet/` that holds files.
    fn parquet_dir(&self) -> Result<PathBuf> {
        let root = self.data.join("parquet");
        for entry in std::fs::read_dir(&root)? {
            let dir = entry?.path();
            if ParquetCopy::at(dir.clone(), 1).files()?.iter().any(|f| f.extension().is_some_and(|e| e == "parquet")) {
                return Ok(dir);
            }
        }
        anyhow::bail!("no parquet copy under {}", root.display())
    }
}

/// The bytes of the files under `dir`, in MiB.
fn mib_on_disk(dir: &Path) -> f64 {
    let files = walkdir::WalkDir::new(dir).into_iter().flatten().filter(|entry| entry.file_type().is_file());
    files.filter_map(|entry| entry.metadata().ok()).map(|meta| meta.len()).sum::<u64>() as f64 / (1 << 20) as f64
}

/// Removes every hundredth row from the parquet copy, file by file; returns how many.
fn drop_parquet_rows(dir: &Path, dim: usize) -> Result<u64> {
    let copy = ParquetCopy::at(dir.to_path_buf(), dim);
    let mut dropped = 0;
    for (n, file) in copy.files()?.into_iter().enumerate() {
        let mut writer = copy.create(&format!("thinned-{n:04}"))?;
        let mut row = 0u64;
        for batch in point_batches(&file, dim)? {
            let kept: Vec<Point> = batch?
                .into_iter()
                .filter(|_| {
                    row += 1;
                    !row.is_multiple_of(100)
                })
                .collect();
            writer.write(&kept)?;
        }
        dropped += row / 100;
        writer.finish()?;
        std::fs::remove_file(&file)?;
    }
    Ok(dropped)
}

/// Every live row of the copy, in memory: the bare loop's input.
fn all_rows(dir: &Path, dim: usize) -> Result<Vec<Point>> {
    let mut rows = Vec::new();
    for file in ParquetCopy::at(dir.to_path_buf(), dim).files()? {
        for batch in point_batches(&file, dim)? {
            rows.extend(batch?);
        }
    }
    rows.sort_by_key(|row| row.id);
    rows.dedup_by_key(|row| row.id);
    Ok(rows)
}

/// The steps at one size over `docs`, in `stores`, with vectors of `dim` dimensions.
fn one_size(bench: &Bench, docs: &Path, size: usize, dim: usize, stores: &Stores) -> Result<serde_json::Value> {
    let mut rows = Vec::new();
    let mut row = |name: &str, step: &Step, units: f64, unit: &str| {
        let rate = units / step.seconds;
        println!(
            "   {size:>9} {name:<26} {:>9.1} {rate:>12.0} {unit:<9} {:>8.0} {:>8.0}",
            step.seconds, step.peak_mib, step.peak_anon_mib
        );
        rows.push(json!({
            "step": name, "seconds": step.seconds, "rate": rate, "unit": unit,
            "peak_rss_mib": step.peak_mib, "peak_anon_mib": step.peak_anon_mib,
        }));
    };
    let docs_arg = docs.to_string_lossy().to_string();
    let first = step(&stores.args(&[&docs_arg]), 0)?;
    anyhow::ensure!(first.report["points"] == size, "the first run made {} points", first.report["points"]);
    row("first run", &first, size as f64, "files/s");
    let (parquet_mib, data_mib) = (mib_on_disk(&stores.parquet_dir()?), mib_on_disk(&stores.data));
    println!("   {size:>9} on disk: the parquet copy {parquet_mib:.1} MiB, the data directory {data_mib:.1} MiB");
    let rerun = step(&stores.args(&[&docs_arg]), 0)?;
    anyhow::ensure!(rerun.report["files_read"] == 0, "the re-run read files: {}", rerun.report);
    row("no-change re-run", &rerun, size as f64, "files/s");
    let (walked, walk_seconds) = crate::bare_stat_walk(docs);
    anyhow::ensure!(walked == size as u64, "the walk found {walked} files");
    println!(
        "   {size:>9} {:<26} {walk_seconds:>9.1} {:>12.0} files/s",
        "bare walk + stat",
        size as f64 / walk_seconds
    );
    let verify = step(&stores.args(&["verify"]), 0)?;
    row("verify", &verify, size as f64, "points/s");

    let parquet = stores.parquet_dir()?;
    let index = stores.index(bench, &stores.collection)?;
    let victims: Vec<uuid::Uuid> = all_rows(&parquet, dim)?.iter().step_by(100).map(|row| row.id).collect();
    bench.runtime.block_on(async {
        for group in victims.chunks(1000) {
            index.delete_points(group).await?;
        }
        anyhow::Ok(())
    })?;
    drop(index);
    let thinned = drop_parquet_rows(&parquet, dim)?;
    let repair = step(&stores.args(&["verify", "--repair"]), 0)?;
    let repaired = &repair.report["repair"];
    anyhow::ensure!(
        repaired["files_to_reembed"].as_array().is_some_and(|files| files.len() as u64 <= thinned),
        "the repair: {repaired}"
    );
    row("verify --repair (1% + 1%)", &repair, size as f64, "points/s");

    let stored = stores.index(bench, &stores.stored_name())?;
    bench.runtime.block_on(stored.drop_collection())?;
    drop(stored);
    let restore = step(&stores.args(&["restore"]), 0)?;
    let restored = restore.report["points_restored"].as_u64().unwrap_or(0);
    row("restore", &restore, restored as f64, "points/s");

    let bare_name = format!("{}-bare", stores.collection);
    let bare_index = stores.index(bench, &bare_name)?;
    let points = all_rows(&stores.parquet_dir()?, dim)?;
    let point_count = points.len();
    let bare_seconds = bench.runtime.block_on(async {
        bare_index.ensure_collection(dim).await?;
        let started = Instant::now();
        ingest::store::upsert_in_batches(bare_index.as_ref(), points, 4000, 2, |_| {}).await?;
        bare_index.finish().await?;
        let seconds = started.elapsed().as_secs_f64();
        bare_index.drop_collection().await?;
        anyhow::Ok(seconds)
    })?;
    let bare_rate = point_count as f64 / bare_seconds;
    drop(bare_index);
    println!("   {size:>9} {:<26} {bare_seconds:>9.1} {bare_rate:>12.0} points/s", "bare upsert loop");
    let restore_rate = restored as f64 / restore.seconds;
    let restore_ratio = restore_rate / bare_rate;
    let python_client = match &stores.qdrant_url {
        Some(url) => python_client(url, &format!("{}-python", stores.collection), dim, &stores.parquet_dir()?)?,
        None => None,
    };
    let python_client = python_client.map(|(points, seconds)| (points, seconds, points as f64 / seconds));
    if let Some((points, seconds, rate)) = python_client {
        anyhow::ensure!(points == point_count as u64, "the Python client stored {points} of {point_count} points");
        println!(
            "   {size:>9} {:<26} {seconds:>9.1} {rate:>12.0} points/s (restore / client {:.2})",
            "Python client, parallel 2",
            restore_rate / rate
        );
    }

    let out = bench.dir(&format!("export-{}", stores.collection));
    let export = step(&stores.args(&["export", "--out", &out.to_string_lossy()]), 0)?;
    row("export", &export, export.report["points"].as_f64().unwrap_or(0.0), "points/s");
    std::fs::remove_dir_all(&out)?;

    // A generation's copy, on a server: generation 1 put where a build from before
    // generations kept it (under the collection's own name, restored there from the parquet
    // copy), then moved by `ingest migrate` into `<collection>-g1`, copied and compared
    // point for point.
    if let Some(database_url) = &stores.database_url {
        let stored = stores.index(bench, &stores.stored_name())?;
        bench.runtime.block_on(stored.drop_collection())?;
        drop(stored);
        let forget = format!("DELETE FROM generations WHERE collection = '{}'", stores.collection);
        crate::admin_sql(bench, database_url, &forget)?;
        let before = step(&stores.args(&["restore"]), 0)?;
        let points = before.report["points_restored"].as_f64().unwrap_or(0.0);
        let copy = step(&stores.args(&["migrate"]), 0)?;
        let moved = stores.index(bench, &stores.stored_name())?;
        let copied = bench.runtime.block_on(moved.count(None))?;
        anyhow::ensure!(copied as f64 == points, "the move left {copied} of {points} points in {}", moved.collection());
        row("generation copy (migrate)", &copy, points, "points/s");
    }
    Ok(json!({
        "points": size,
        "steps": rows,
        "bare_upsert": { "seconds": bare_seconds, "points_per_second": bare_rate },
        "bare_walk_seconds": walk_seconds,
        "rerun_over_walk": rerun.seconds / walk_seconds,
        "restore_over_bare": restore_ratio,
        "python_client": python_client.map(|(points, seconds, rate)| json!({
            "points": points, "seconds": seconds, "points_per_second": rate, "restore_over_client": restore_rate / rate,
        })),
        "repair": repaired.clone(),
        "disk_mib": { "parquet_copy": parquet_mib, "data_dir": data_mib },
        "damage": { "points_deleted": victims.len(), "parquet_rows_dropped": thinned },
    }))
}

/// Upserts the rows of the copy in `parquet` into `collection` on the server at `url` with
/// Qdrant's Python client (`bare_client.py`, as a restore would: 4,000 points a request, two
/// workers): the points it stored and its seconds; `None`, said, where that client is not
/// installed.
fn python_client(url: &str, collection: &str, dim: usize, parquet: &Path) -> Result<Option<(u64, f64)>> {
    let python = std::env::var("INGEST_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_client = Command::new(&python)
        .args(["-c", "import qdrant_client, pyarrow"])
        .status()
        .is_ok_and(|status| status.success());
    if !has_client {
        println!("   (the Python client's row did not run: {python} has no qdrant_client or pyarrow; `pip install qdrant-client pyarrow` into it)");
        return Ok(None);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/scale/bare_client.py");
    let output = Command::new(&python)
        .arg(script)
        .args([url, collection, &dim.to_string()])
        .arg(parquet)
        .args(["2", "4000"])
        .output()
        .context("running the Python client")?;
    anyhow::ensure!(output.status.success(), "the Python client failed: {}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).context("the Python client's report")?;
    let points = report["points"].as_u64().context("the Python client's points")?;
    let seconds = report["seconds"].as_f64().context("the Python client's seconds")?;
    Ok(Some((points, seconds)))
}

/// The sizes to run.
fn sizes(bench: &Bench) -> Result<Vec<usize>> {
    match std::env::var("INGEST_BENCH_SCALE") {
        Ok(list) => list
            .split(',')
            .map(|n| n.trim().replace('_', "").parse().with_context(|| format!("INGEST_BENCH_SCALE: {n:?}")))
            .collect(),
        Err(_) if bench.quick => Ok(vec![20_000, 60_000]),
        Err(_) => Ok(vec![100_000, 300_000, 1_000_000]),
    }
}

/// The spread of each step's `field` (a peak, in MiB) across the sizes.
fn spreads(results: &[serde_json::Value], field: &str) -> serde_json::Value {
    let mut by_step: std::collections::BTreeMap<String, (f64, f64)> = Default::default();
    for result in results {
        for step in result["steps"].as_array().into_iter().flatten() {
            let peak = step[field].as_f64().unwrap_or(0.0);
            let entry = by_step.entry(step["step"].as_str().unwrap_or("").to_string()).or_insert((f64::MAX, 0.0));
            *entry = (entry.0.min(peak), entry.1.max(peak));
        }
    }
    by_step.into_iter().map(|(step, (low, high))| (step, json!((high - low).round()))).collect()
}

/// The model to build the collections with: `INGEST_BENCH_SCALE_MODEL`, else the default.
fn scale_model(bench: &Bench) -> Result<ModelInfo> {
    match std::env::var("INGEST_BENCH_SCALE_MODEL") {
        Ok(name) => ModelInfo::load(Some(&ingest::model::models_home().join(&name))).with_context(|| {
            format!("INGEST_BENCH_SCALE_MODEL={name}: install it with scripts/setup.sh --models {name}")
        }),
        Err(_) => Ok(bench.model.clone()),
    }
}

pub fn scale(bench: &Bench) -> Result<serde_json::Value> {
    let sizes = sizes(bench)?;
    let model = scale_model(bench)?;
    println!("\n11. scale: {} ({} dimensions)", model.name, model.dim);
    let servers = std::env::var("INGEST_BENCH_QDRANT_URL").ok();
    let only = std::env::var("INGEST_BENCH_SCALE_BACKEND").ok();
    let mut backends = Vec::new();
    if only.as_deref() != Some("servers") {
        backends.push(("embedded", None));
    }
    match &servers {
        Some(url) if only.as_deref() != Some("embedded") => backends.push(("postgresql + qdrant", Some(url.clone()))),
        Some(_) => {}
        None => println!("\n11. (INGEST_BENCH_QDRANT_URL is not set: the servers' rows did not run)"),
    }
    let mut out = serde_json::Map::new();
    for (backend, qdrant_url) in backends {
        println!("\n11. scale, {backend}: each step through the binary");
        println!(
            "   {:>9} {:<26} {:>9} {:>12} {:<9} {:>8} {:>8}",
            "points", "step", "seconds", "rate", "", "peak MiB", "anon MiB"
        );
        let mut results = Vec::new();
        for &size in &sizes {
            let docs = bench.dir(&format!("scale-docs-{size}"));
            if !docs.exists() {
                make_identical_files(&docs, size)?;
            }
            let database = match &qdrant_url {
                Some(_) => Some(crate::fresh_database(bench)?),
                None => None,
            };
            let stores = Stores {
                data: bench.dir(&format!("scale-data-{size}-{}", qdrant_url.is_some())),
                database_url: database.as_ref().map(|d| d.url.clone()),
                qdrant_url: qdrant_url.clone(),
                collection: format!("scale{size}-{}", uuid::Uuid::new_v4().simple()),
                model_dir: (model.dir != bench.model.dir).then(|| model.dir.clone()),
            };
            let result = one_size(bench, &docs, size, model.dim, &stores);
            if let Some(database) = database {
                // The server's collection (its alias goes with it) and the database go with the run.
                let index = stores.index(bench, &stores.stored_name())?;
                bench.runtime.block_on(index.drop_collection())?;
                crate::drop_database(bench, database)?;
            }
            std::fs::remove_dir_all(&stores.data)?;
            results.push(result?);
        }
        let (spread, anon_spread) = (spreads(&results, "peak_rss_mib"), spreads(&results, "peak_anon_mib"));
        println!("   spread across the sizes, per step (MiB; target <= 64): peak RSS {spread}");
        println!("   anonymous memory {anon_spread}");
        out.insert(
            backend.into(),
            json!({
                "model": model.name, "dim": model.dim, "sizes": results, "peak_rss_spread_mib": spread,
                "peak_anon_spread_mib": anon_spread, "target_spread_mib": 64,
            }),
        );
    }
    Ok(serde_json::Value::Object(out))
}
