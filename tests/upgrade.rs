//! Upgrades: a data dir written by the previous release (a committed fixture) opens and
//! works; one written by a newer release is refused with a clear message.
//!
//! The fixtures are made by `UPDATE_FIXTURES=1 cargo test --test upgrade -- --ignored`; at a
//! release, the current fixture becomes the "previous release" fixture of the next one.

mod common;

use std::path::{Path, PathBuf};

use common::TestServer;
use serde_json::json;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A copy of a fixture data dir in a temp dir (tests never write to the committed one).
fn copy_of(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture(name).join("chinwag.redb"), dir.path().join("chinwag.redb")).unwrap();
    dir
}

#[tokio::test]
async fn a_data_dir_from_the_previous_release_opens_and_works() {
    let dir = copy_of("v0.1.0");
    let s = TestServer::start_in(dir.path(), |_| {}).await;
    let http = s.http();
    let (st, body) = http.post("/api/auth/login", None, json!({"username":"ann","password":"ann-password"})).await;
    assert_eq!(st, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let (_, list) = http.get("/api/conversations", Some(&token)).await;
    let conv = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .find(|id| id.starts_with("d:"))
        .unwrap();
    let (_, page) = http.get(&format!("/api/conversations/{conv}/messages"), Some(&token)).await;
    let texts: Vec<&str> = page["messages"].as_array().unwrap().iter().filter_map(|m| m["content"]["text"].as_str()).collect();
    assert_eq!(texts, vec!["written by v0.1.0", "你好"]);
    let (_, groups) = http.get("/api/groups", Some(&token)).await;
    assert_eq!(groups["groups"][0]["name"], "fixture group");
    s.stop().await;
}

#[tokio::test]
async fn a_data_dir_from_a_newer_release_is_refused_clearly() {
    // The previous release's data dir, marked as written by a schema after this one's.
    let dir = copy_of("v0.1.0");
    let store = chinwag::store::Store::open(dir.path(), &chinwag::store::StoreOptions::default()).unwrap();
    store.force_schema_version(chinwag::store::SCHEMA_VERSION + 1).await.unwrap();
    store.close().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chinwag"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("written by a newer Chinwag") && err.contains("upgrade Chinwag"), "{err}");
    // Nothing was migrated: a second start is refused the same way.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_chinwag"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("written by a newer Chinwag"));
}

#[tokio::test]
#[ignore = "writes the fixtures; run with UPDATE_FIXTURES=1"]
async fn write_fixtures() {
    if std::env::var("UPDATE_FIXTURES").is_err() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(dir.path(), |_| {}).await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    s.befriend(&ann, &bob).await;
    let mut ws = s.ws(&ann).await;
    ws.send_text("f1", &ann.dm(&bob), "written by v0.1.0").await;
    ws.send_text("f2", &ann.dm(&bob), "你好").await;
    s.group(&ann, "fixture group", &[&bob]).await;
    drop(ws);
    s.stop().await;
    let out = fixture("v0.1.0");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::copy(dir.path().join("chinwag.redb"), out.join("chinwag.redb")).unwrap();
}
