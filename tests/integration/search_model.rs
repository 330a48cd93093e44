//! `ingest search` embeds the query with the model that built the collection: found among the
//! installed models when none is given, refused in one sentence when another is given. Runs
//! the real binary with the default model and multilingual-e5-small, which
//! `scripts/test.sh` installs.

use crate::common;

use common::{show, write, Workspace};
use ingest::model::{models_home, DEFAULT_MODEL};

#[test]
fn search_embeds_with_the_model_that_built_the_collection_and_refuses_another() {
    let e5 = models_home().join("multilingual-e5-small");
    assert!(e5.join("model.onnx").is_file(), "multilingual-e5-small is installed (scripts/test.sh installs it)");
    let ws = Workspace::new();
    let docs = ws.docs();
    std::fs::create_dir_all(&docs).unwrap();
    write(&docs, "shell.txt", "The chsh command changes the login shell of a user account.");
    write(&docs, "bees.txt", "Honey bees dance to tell the hive where the flowers are.");
    let run = ws.ingest([docs.to_str().unwrap(), "--quiet", "--model-dir", e5.to_str().unwrap()]);
    assert!(run.status.success(), "{}", show(&run));

    // No --model-dir: the default model did not build the collection, multilingual-e5-small did.
    let found = ws.ingest(["search", "Wie ändere ich die Anmelde-Shell", "-k", "1", "--mode", "dense"]);
    assert!(found.status.success(), "{}", show(&found));
    assert!(String::from_utf8_lossy(&found.stdout).contains("shell.txt"), "{}", show(&found));

    // Another model given: refused, naming both.
    let default = models_home().join(DEFAULT_MODEL);
    let refused = ws.ingest(["search", "login shell", "--model-dir", default.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1), "{}", show(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("built by model multilingual-e5-small@") && stderr.contains("all-MiniLM-L6-v2-int8@"),
        "{}",
        show(&refused)
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one sentence: {}", show(&refused));

    // A sparse search needs no model at all.
    let sparse = ws.ingest(["search", "chsh", "--mode", "sparse", "--model-dir", "/nonexistent/model"]);
    assert!(sparse.status.success(), "{}", show(&sparse));
    assert!(String::from_utf8_lossy(&sparse.stdout).contains("shell.txt"), "{}", show(&sparse));
}
