//! The operator commands against real data: backups taken offline and while the server
//! runs (and writes), restores that verify every checksum, exports, and `chinwag admin`.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::TestServer;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_chinwag");

fn chinwag(args: &[&str], data_dir: &Path) -> std::process::Output {
    Command::new(BIN).args(args).arg("--data-dir").arg(data_dir).env("CHINWAG_LOG", "warn").output().unwrap()
}

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "stdout: {}\nstderr: {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_backup_taken_while_users_chat_restores_every_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(dir.path(), |_| {}).await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    let conv = ann.dm(&bob);
    let mut ws = s.ws(&ann).await;
    // A file shared before the backup must come back byte for byte.
    let file_bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let up: serde_json::Value = s
        .http()
        .client
        .post(s.url("/api/files?name=report.bin"))
        .bearer_auth(&ann.token)
        .header("content-type", "application/octet-stream")
        .body(file_bytes.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let file_id = up["id"].as_str().unwrap().to_owned();
    ws.send_json(json!({"type":"send","client_id":"file","conv":conv,"content":{"kind":"file","file_id":file_id}})).await;
    assert_eq!(ws.until_client_id("file").await["type"], "ack");
    for i in 0..200 {
        assert_eq!(ws.send_text(&format!("before-{i}"), &conv, &format!("before {i}")).await["type"], "ack");
    }
    // Keep writing while the backup runs, through the server's control socket.
    let writer = tokio::spawn(async move {
        let mut acked = 0;
        for i in 0..300 {
            if ws.send_text(&format!("during-{i}"), &conv, "during").await["type"] == "ack" {
                acked += 1;
            }
        }
        acked
    });
    let archive = dir.path().parent().unwrap().join(format!("{}.tar.zst", dir.path().file_name().unwrap().to_string_lossy()));
    let data = dir.path().to_path_buf();
    let archive2 = archive.clone();
    let out = tokio::task::spawn_blocking(move || chinwag(&["backup", archive2.to_str().unwrap()], &data)).await.unwrap();
    assert!(ok(&out).contains("from the running server"));
    assert_eq!(writer.await.unwrap(), 300);
    s.stop().await;

    let restored = tempfile::tempdir().unwrap();
    let target = restored.path().join("data");
    let out = chinwag(&["restore", archive.to_str().unwrap()], &target);
    assert!(ok(&out).contains("every checksum verified"));
    let s = TestServer::start_in(&target, |_| {}).await;
    let mut bob_ws = s.ws(&bob).await;
    let got = bob_ws.sync(json!({})).await;
    // Sync sends at most the newest 100 of a conversation; page the rest through history.
    let (_, page) = s.http().get(&format!("/api/conversations/{}/messages?after=0&limit=100", ann.dm(&bob)), Some(&bob.token)).await;
    let seqs: Vec<u64> = page["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=100).collect::<Vec<_>>(), "gap-free from the start");
    let last = got.last().unwrap()["message"]["seq"].as_u64().unwrap();
    assert!(last >= 200, "every message acknowledged before the backup started is there (last seq {last})");
    // The sessions came along too: bob's old token works on the restored server.
    assert_eq!(s.http().get("/api/me", Some(&bob.token)).await.0, 200);
    let got = s.http().client.get(s.url(&format!("/api/files/{file_id}"))).bearer_auth(&bob.token).send().await.unwrap();
    assert_eq!(got.status().as_u16(), 200);
    assert_eq!(got.bytes().await.unwrap().to_vec(), file_bytes, "the file is restored byte for byte");
    s.stop().await;
    let _ = std::fs::remove_file(&archive);
}

#[tokio::test]
async fn offline_backup_restore_and_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(dir.path(), |_| {}).await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    let mut ws = s.ws(&ann).await;
    ws.send_text("x", &ann.dm(&bob), "kept across a restore 留存").await;
    drop(ws);
    s.stop().await;

    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("b.tar.zst");
    assert!(ok(&chinwag(&["backup", archive.to_str().unwrap()], dir.path())).contains("offline"));
    let again = chinwag(&["backup", archive.to_str().unwrap()], dir.path());
    assert!(!again.status.success(), "an existing file is never overwritten");

    // Restoring refuses a directory with something in it.
    let busy = work.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("x"), "x").unwrap();
    assert!(String::from_utf8_lossy(&chinwag(&["restore", archive.to_str().unwrap()], &busy).stderr).contains("not empty"));

    // A damaged archive is refused and leaves nothing behind.
    let mut bytes = std::fs::read(&archive).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    let bad = work.path().join("bad.tar.zst");
    std::fs::write(&bad, &bytes).unwrap();
    let target = work.path().join("from-bad");
    let out = chinwag(&["restore", bad.to_str().unwrap()], &target);
    assert!(!out.status.success());
    assert!(std::fs::read_dir(&target).map_or(true, |mut d| d.next().is_none()), "no half-restored data dir");

    let target = work.path().join("good");
    ok(&chinwag(&["restore", archive.to_str().unwrap()], &target));
    let export = ok(&chinwag(&["export", "--user", "bob"], &target));
    let v: serde_json::Value = serde_json::from_str(&export).unwrap();
    assert_eq!(v["user"]["username"], "bob");
    assert_eq!(v["conversations"][0]["messages"][0]["content"]["text"], "kept across a restore 留存");
    let all: serde_json::Value = serde_json::from_str(&ok(&chinwag(&["export"], &target))).unwrap();
    assert_eq!(all["users"].as_array().unwrap().len(), 2);
    assert!(!all.to_string().contains("argon2"), "no password hashes in exports");
}

#[tokio::test]
async fn admin_commands_work_offline_and_against_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    // Offline, before the first start: the operator creates the first administrator.
    let mut child = Command::new(BIN)
        .args(["admin", "create-user", "boss", "--admin", "--password-stdin", "--data-dir"])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"boss-password\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(ok(&out).contains("\"is_admin\": true"));

    let s = TestServer::start_in(dir.path(), |c| c.auth.registration = chinwag::config::Registration::Closed).await;
    let (st, body) = s.http().post("/api/auth/login", None, json!({"username":"boss","password":"boss-password"})).await;
    assert_eq!((st, body["user"]["is_admin"].as_bool()), (200, Some(true)));
    // Online: the same commands go through the running server.
    let data = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || chinwag(&["admin", "create-user", "carl"], &data)).await.unwrap();
    let text = ok(&out);
    let pw = text.lines().find_map(|l| l.strip_prefix("password: ")).expect("a generated password is printed").to_owned();
    assert_eq!(s.http().post("/api/auth/login", None, json!({"username":"carl","password":pw})).await.0, 200);
    let data = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || chinwag(&["admin", "promote", "carl"], &data)).await.unwrap();
    assert!(ok(&out).contains("\"is_admin\": true"));
    let data = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || chinwag(&["admin", "list"], &data)).await.unwrap();
    assert!(ok(&out).contains("\"total\": 2"));
    let data = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || chinwag(&["admin", "demote", "nobody"], &data)).await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user nobody"));
    s.stop().await;
}
