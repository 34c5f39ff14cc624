//! Tidy checks on the source tree itself, run inside `cargo test` (rust-analyzer's `tidy.rs` is the
//! model): habits the team agreed on in review, checked so that they need no reviewer.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, sorted so that a failure lists them in a stable order.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    files_with(dir, &["rs"])
}

/// Every file under `dir` whose extension is one of `exts`, sorted.
fn files_with(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("cannot read {}: {e}", d.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().and_then(|e| e.to_str()).is_some_and(|e| exts.contains(&e)) {
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

/// Files longer than this many lines are named, with the reason, in ARCHITECTURE.md's
/// "Files over 600 lines, and why"; a file that holds two concepts is split instead.
const LONG_FILE: usize = 600;

/// A file under `src/` or `web/src/` over `LONG_FILE` lines is listed in ARCHITECTURE.md's section
/// on long files (Rust files by their path under `src/`, web files from `web/`), and every file
/// listed there is still that long, so the list stays true both ways.
#[test]
fn every_long_file_is_explained_in_architecture_md() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let start = doc.find("### Files over 600 lines").expect("ARCHITECTURE.md has a section \"Files over 600 lines, and why\"");
    let section = &doc[start..];
    let section = &section[..section[3..].find("\n#").map_or(section.len(), |i| i + 3)];
    // Each entry is a line "- `path`, `path` (~N): why"; the paths are the ones before the "(".
    let named: Vec<&str> = section
        .lines()
        .filter_map(|l| l.strip_prefix("- "))
        .flat_map(|l| l[..l.find('(').unwrap_or(l.len())].split('`').skip(1).step_by(2))
        .collect();

    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for f in files_with(&root.join("src"), &["rs"]) {
        files.push((f.strip_prefix(root.join("src")).expect("under src").display().to_string(), f));
    }
    for f in files_with(&root.join("web/src"), &["ts", "vue", "css"]) {
        files.push((f.strip_prefix(root).expect("under the root").display().to_string(), f));
    }
    assert!(files.iter().any(|(n, _)| n == "web/src/main.ts"), "the walk found no web/src/main.ts");
    let lines = |f: &Path| std::fs::read_to_string(f).unwrap_or_else(|e| panic!("cannot read {}: {e}", f.display())).lines().count();

    let mut unexplained = Vec::new();
    let mut stale = Vec::new();
    for (name, path) in &files {
        let n = lines(path);
        let listed = named.contains(&name.as_str());
        if n > LONG_FILE && !listed {
            unexplained.push(format!("  {name} ({n} lines)"));
        } else if n <= LONG_FILE && listed {
            stale.push(format!("  {name} ({n} lines)"));
        }
    }
    for name in &named {
        if !files.iter().any(|(n, _)| n == name) {
            stale.push(format!("  {name} (no such file)"));
        }
    }
    assert!(
        unexplained.is_empty(),
        "{} file(s) are over {LONG_FILE} lines: split what holds two concepts, or name the file in \
         ARCHITECTURE.md's \"Files over 600 lines, and why\" with the reason:\n{}",
        unexplained.len(),
        unexplained.join("\n")
    );
    assert!(
        stale.is_empty(),
        "ARCHITECTURE.md's \"Files over 600 lines, and why\" names file(s) that are no longer that long; \
         drop them from the list:\n{}",
        stale.join("\n")
    );
}
