//! Tidy checks on the source tree itself, run inside `cargo test` (rust-analyzer's `tidy.rs` is the
//! model): habits the team agreed on in review, checked so that they need no reviewer.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, sorted so that a failure lists them in a stable order.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("cannot read {}: {e}", d.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Every module opens with a `//!` line that says what it is for (ARCHITECTURE.md leans on them).
#[test]
fn every_module_opens_with_a_doc_line() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = rust_files(&root.join("src"));
    assert!(files.iter().any(|f| f.ends_with("src/lib.rs")), "the walk found no src/lib.rs: {files:?}");
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("cannot read {}: {e}", f.display()));
            !text.starts_with("//!")
        })
        .map(|f| format!("  {}", f.strip_prefix(root).unwrap_or(f).display()))
        .collect();
    assert!(
        offenders.is_empty(),
        "{} file(s) under src/ do not start with a `//!` module doc line; \
         open each with one line saying what the module is for:\n{}",
        offenders.len(),
        offenders.join("\n")
    );
}
