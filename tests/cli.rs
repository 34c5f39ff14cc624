//! The `chinwag` binary itself: `config` output and precedence, a clear refusal when a
//! second process opens a data dir that is in use, and `healthcheck` against a real server.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_chinwag");

#[test]
fn config_prints_the_effective_settings_with_secrets_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chinwag.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:9000\"\n[auth]\notp_sender = \"webhook\"\notp_webhook_url = \"https://gw.example/send?key=s3cret\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["config", "--config"])
        .arg(&file)
        .args(["--data-dir", "/srv/chat"])
        .env("CHINWAG_LISTEN", "127.0.0.1:9001")
        .env("CHINWAG_LIMITS__OUTBOUND_QUEUE", "99")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("listen = \"127.0.0.1:9001\""), "env beats the file:\n{text}");
    assert!(text.contains("data_dir = \"/srv/chat\""), "the flag wins:\n{text}");
    assert!(text.contains("outbound_queue = 99"));
    assert!(text.contains("max_frame_bytes = 65536"), "defaults are shown");
    assert!(!text.contains("s3cret") && text.contains("<hidden>"), "{text}");
    assert!(!dir.path().join("chat").exists(), "printing the config creates nothing");

    let bad = Command::new(BIN).arg("config").env("CHINWAG_LIMTS__X", "1").output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("CHINWAG_LIMTS__X"));
}

#[test]
fn a_second_server_on_the_same_data_dir_stops_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("CHINWAG_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the first server to be up: it logs its listening address.
    let mut lines = BufReader::new(first.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "the first server did not start");
        let line = lines.next().expect("server output").unwrap();
        if line.contains("Chinwag is listening") {
            break;
        }
    }
    let second = Command::new(BIN).args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(dir.path()).output().unwrap();
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("in use by another Chinwag process"), "{err}");
}

#[test]
fn healthcheck_passes_against_a_running_server_and_fails_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.path())
        .env("CHINWAG_LOG", "info")
        .env("CHINWAG_TURN__ENABLED", "false")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "the server did not start");
        if lines.next().expect("server output").unwrap().contains("Chinwag is listening") {
            break;
        }
    }
    let check = |listen: &str| Command::new(BIN).args(["healthcheck", "--timeout", "5", "--listen", listen]).output().unwrap();
    let ok = check(&format!("127.0.0.1:{port}"));
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    // The container's setting: listening on all addresses, checked over loopback.
    assert!(check(&format!("0.0.0.0:{port}")).status.success());
    server.kill().unwrap();
    server.wait().unwrap();
    let down = check(&format!("127.0.0.1:{port}"));
    assert!(!down.status.success());
    assert!(String::from_utf8_lossy(&down.stderr).contains("cannot connect"), "{}", String::from_utf8_lossy(&down.stderr));
}
