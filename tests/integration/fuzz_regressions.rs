//! Replays every input kept under fuzz/regressions/<target>/ through the code its
//! fuzz target runs, on stable Rust, so that an input that once crashed sluice
//! cannot crash it again unnoticed. The targets' logic is fuzz/src/lib.rs,
//! included here as is rather than copied. See docs/operations.md, "Fuzzing".

#[path = "../../fuzz/src/lib.rs"]
mod targets;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// The kept inputs of `target`, in file name order (there must be some).
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no inputs in {}", dir.display());
    files
        .into_iter()
        .map(|path| {
            let data = std::fs::read(&path).expect("read a regression input");
            (path, data)
        })
        .collect()
}

/// Runs `check` on every input of `target`; fails naming every input that panicked.
fn replay(target: &str, mut check: impl FnMut(&[u8])) {
    let failed: Vec<String> = inputs(target)
        .into_iter()
        .filter(|(_, data)| catch_unwind(AssertUnwindSafe(|| check(data))).is_err())
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{target}: these inputs panic: {failed:#?}"
    );
}

#[test]
fn sql_parse_regressions() {
    replay("sql_parse", targets::sql_parse);
}

#[test]
fn sql_plan_regressions() {
    let harness = targets::PlanHarness::new();
    replay("sql_plan", |data| {
        harness.run(data);
        assert!(
            harness.answers(),
            "the engine stopped answering SHOW SOURCES"
        );
    });
}

#[test]
fn decode_regressions() {
    replay("decode", targets::decode);
}
