//! PostgreSQL restarts in the middle of a job: the catalog's lost connections are retried,
//! the job stops resumably because its collection lock went with the old server, and the
//! next run ends exactly as an undisturbed one. This is its own test binary because it
//! restarts the machine's shared server, which no other test may see.

mod common;

use std::ffi::OsStr;
use std::process::Command;
use std::time::Duration;

use common::{show, small_run, snapshot, text, write, Workspace};

fn restart_postgres() {
    let version = std::fs::read_dir("/etc/postgresql")
        .expect("a Debian PostgreSQL cluster, as scripts/ensure_postgres.sh sets up")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .max_by_key(|v| v.parse::<u32>().unwrap_or(0))
        .unwrap();
    let status = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", "restart", "-m", "fast"])
        .status()
        .unwrap();
    assert!(status.success(), "pg_ctlcluster restart failed");
}

#[test]
fn a_postgres_restart_mid_job_stops_it_resumably() {
    let base = Workspace::on_servers();
    let docs = base.docs();
    std::fs::create_dir_all(&docs).unwrap();
    for (i, topic) in
        ["orchards", "vineyards", "meadows", "marshes", "prairies", "tundra", "savannas"].iter().enumerate()
    {
        write(&docs, &format!("{topic}.txt"), &text(topic, 5 + 2 * i));
    }
    let flags = small_run(&["--upload-batch-size", "8", "--outage-limit", "60"]);
    let args = || [docs.as_os_str()].into_iter().chain(flags.iter().map(OsStr::new));
    base.ingest_json(args(), 0);
    let clean = snapshot(&base);

    let ws = base.another();
    ws.qdrant().delay_every_call(Duration::from_millis(100));
    let child = ws.spawn(&docs, &flags);
    ws.wait_for_upserts(2);
    restart_postgres();
    let output = child.wait_with_output().unwrap();
    let shown = show(&output);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(shown.contains("lost the collection lock on PostgreSQL"), "{shown}");
    ws.ingest_json(args(), 0);
    assert_eq!(snapshot(&ws), clean);
}
