//! Files end to end: streamed uploads with their size limit and quota, content-addressed
//! storage, who may download, safe serving, image metadata, thumbnails, avatars and stickers.

mod common;

use std::io::Cursor;
use std::path::{Path, PathBuf};

use common::{TestServer, User};
use image::{DynamicImage, ImageFormat};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KIB: u64 = 1024;

async fn finish(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// A raw upload with `?name=`.
async fn upload_raw(s: &TestServer, token: &str, name: &str, bytes: Vec<u8>) -> (u16, Value) {
    let encoded: String = name
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { char::from(b).to_string() } else { format!("%{b:02X}") })
        .collect();
    let resp = reqwest::Client::new()
        .post(s.url(&format!("/api/files?name={encoded}")))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .unwrap();
    finish(resp).await
}

/// A `multipart/form-data` upload as a browser's `FormData` sends it, with a field before the file.
async fn upload_form(s: &TestServer, token: &str, filename: &str, bytes: &[u8]) -> (u16, Value) {
    let boundary = "----chinwagtestboundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n").as_bytes());
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let resp = reqwest::Client::new()
        .post(s.url("/api/files"))
        .bearer_auth(token)
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .unwrap();
    finish(resp).await
}

async fn uploaded(s: &TestServer, who: &User, name: &str, bytes: Vec<u8>) -> Value {
    let (st, body) = upload_raw(s, &who.token, name, bytes).await;
    assert_eq!(st, 201, "{body}");
    body
}

async fn fetch(s: &TestServer, token: Option<&str>, path: &str) -> reqwest::Response {
    let mut r = reqwest::Client::new().get(s.url(path));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.unwrap()
}

async fn status_of(s: &TestServer, who: &User, id: &str) -> u16 {
    fetch(s, Some(&who.token), &format!("/api/files/{id}")).await.status().as_u16()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

/// Stored blobs (not counting temporary files).
fn blobs(s: &TestServer) -> Vec<PathBuf> {
    let tmp = s.data_dir.join("blobs").join("tmp");
    files_under(&s.data_dir.join("blobs")).into_iter().filter(|p| !p.starts_with(&tmp)).collect()
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A JPEG carrying an EXIF segment with a GPS-looking payload.
fn jpeg_with_exif(w: u32, h: u32) -> Vec<u8> {
    let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 200])));
    let mut plain = Cursor::new(Vec::new());
    img.write_to(&mut plain, ImageFormat::Jpeg).unwrap();
    let plain = plain.into_inner();
    // Exif header, then a big-endian TIFF with one IFD entry (orientation 1) and a location string.
    let mut app1 = b"Exif\0\0MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x01\0\0\0\0\0\0".to_vec();
    app1.extend_from_slice(b"GPS 52.5200N 13.4050E home");
    let mut out = plain[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&u16::try_from(app1.len() + 2).unwrap().to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&plain[2..]);
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

async fn send_media(ws: &mut common::Ws, client_id: &str, conv: &str, content: Value) -> Value {
    ws.send_json(json!({"type":"send","client_id":client_id,"conv":conv,"content":content})).await;
    ws.until_client_id(client_id).await
}

#[tokio::test]
async fn an_upload_over_the_limit_is_refused_and_stores_nothing() {
    let s = TestServer::start_with(|c| c.media.max_upload_bytes = 64 * KIB).await;
    let ann = s.register("ann").await;

    // Declared too big: refused before the body is read.
    let (st, body) = upload_raw(&s, &ann.token, "big.bin", vec![7u8; 200 * 1024]).await;
    assert_eq!((st, body["error"]["code"].as_str()), (413, Some("too_large")), "{body}");
    // Within the multipart allowance but over the limit: refused while streaming.
    let (st, body) = upload_form(&s, &ann.token, "big.bin", &vec![7u8; 100 * 1024]).await;
    assert_eq!((st, body["error"]["code"].as_str()), (413, Some("too_large")), "{body}");

    // No length at all (chunked): the answer comes once the limit is passed, long before the
    // client is done; the rest of the body is never read.
    let mut tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "POST /api/files?name=huge.bin HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
        s.addr, ann.token
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let (mut rd, mut wr) = tcp.into_split();
    let writer = tokio::spawn(async move {
        let chunk = vec![1u8; 64 * 1024];
        let mut sent = 0u64;
        // Nominally 1 GiB.
        while sent < 1024 * 1024 * 1024 {
            let framed = [format!("{:x}\r\n", chunk.len()).into_bytes(), chunk.clone(), b"\r\n".to_vec()].concat();
            if wr.write_all(&framed).await.is_err() {
                break;
            }
            sent += chunk.len() as u64;
        }
        sent
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !contains(&answer, b"\r\n\r\n") {
        let n = tokio::time::timeout(common::WAIT, rd.read(&mut buf)).await.expect("an answer in time").unwrap();
        assert!(n > 0, "the server closed without answering");
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 413"), "{}", String::from_utf8_lossy(&answer));
    drop(rd);
    let sent = tokio::time::timeout(common::WAIT, writer).await.expect("the upload is cut off").unwrap();
    assert!(sent < 64 * 1024 * 1024, "the server kept reading: {sent} bytes");

    assert!(blobs(&s).is_empty(), "nothing stored: {:?}", blobs(&s));
    assert!(files_under(&s.data_dir.join("blobs").join("tmp")).is_empty(), "temporary files are removed");
    // A small file still goes through.
    let (st, body) = upload_form(&s, &ann.token, "small.bin", &[1, 2, 3]).await;
    assert_eq!(st, 201, "{body}");
    assert_eq!((body["name"].as_str(), body["size"].as_u64()), (Some("small.bin"), Some(3)));
    s.stop().await;
}

#[tokio::test]
async fn the_quota_counts_every_upload() {
    let s = TestServer::start_with(|c| c.media.user_quota_bytes = 10 * KIB).await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    uploaded(&s, &ann, "a.bin", vec![1u8; 6 * 1024]).await;
    let (st, body) = upload_raw(&s, &ann.token, "b.bin", vec![2u8; 6 * 1024]).await;
    assert_eq!((st, body["error"]["code"].as_str()), (413, Some("quota_exceeded")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("storage"), "{body}");
    // Also when the size is only known while streaming.
    let (st, body) = upload_form(&s, &ann.token, "c.bin", &[3u8; 6 * 1024]).await;
    assert_eq!((st, body["error"]["code"].as_str()), (413, Some("quota_exceeded")), "{body}");
    // What still fits is accepted; other users have their own quota.
    uploaded(&s, &ann, "d.bin", vec![4u8; 4 * 1024]).await;
    uploaded(&s, &bob, "e.bin", vec![5u8; 6 * 1024]).await;
    s.stop().await;
}

#[tokio::test]
async fn the_same_content_is_stored_once() {
    let s = TestServer::start().await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    // Bigger than the JSON body limit (1 MiB): uploads have their own limit.
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let a = uploaded(&s, &ann, "one.bin", bytes.clone()).await;
    let b = uploaded(&s, &bob, "two.bin", bytes.clone()).await;
    let (st, c) = upload_form(&s, &ann.token, "three.bin", &bytes).await;
    assert_eq!(st, 201, "{c}");
    assert!(a["id"] != b["id"] && a["id"] != c["id"], "each upload has its own id");
    let stored = blobs(&s);
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(std::fs::read(&stored[0]).unwrap(), bytes);
    // Each keeps its own name.
    let resp = fetch(&s, Some(&bob.token), &format!("/api/files/{}", b["id"].as_str().unwrap())).await;
    assert!(resp.headers()["content-disposition"].to_str().unwrap().contains("two.bin"));
    assert_eq!(resp.bytes().await.unwrap().as_ref(), bytes.as_slice());
    s.stop().await;
}

#[tokio::test]
async fn only_the_uploader_and_the_conversations_it_was_sent_in_may_download() {
    let s = TestServer::start().await;
    let (ann, bob, cat) = (s.register("ann").await, s.register("bob").await, s.register("cat").await);
    let f = uploaded(&s, &ann, "report.pdf", b"%PDF-1.4 not really".to_vec()).await;
    let id = f["id"].as_str().unwrap();
    assert_eq!(f["mime"], "application/pdf");
    assert_eq!(id.len(), 32);

    assert_eq!(status_of(&s, &ann, id).await, 200);
    assert_eq!(status_of(&s, &bob, id).await, 404, "not sent to bob yet");
    assert_eq!(fetch(&s, None, &format!("/api/files/{id}")).await.status(), 401);
    assert_eq!(status_of(&s, &bob, "0123456789abcdef0123456789abcdef").await, 404);
    assert_eq!(status_of(&s, &bob, "..%2F..%2Fchinwag.redb").await, 404);

    // Bob cannot send ann's file; ann's claims about it are replaced by what the server knows.
    let mut bob_ws = s.ws(&bob).await;
    let err = send_media(&mut bob_ws, "b1", &bob.dm(&cat), json!({"kind":"file","file_id":id})).await;
    assert_eq!(err["type"], "error", "{err}");
    let mut ann_ws = s.ws(&ann).await;
    let ack =
        send_media(&mut ann_ws, "a1", &ann.dm(&bob), json!({"kind":"file","file_id":id,"name":"lies.exe","size":1,"mime":"text/html"}))
            .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let content = &ack["message"]["content"];
    assert_eq!(
        (content["name"].as_str(), content["size"].as_u64(), content["mime"].as_str()),
        (Some("report.pdf"), Some(19), Some("application/pdf"))
    );
    let got = bob_ws.next_of("message").await;
    assert_eq!(got["message"]["content"], *content);
    // A pdf is not an image.
    let err = send_media(&mut ann_ws, "a2", &ann.dm(&bob), json!({"kind":"image","file_id":id})).await;
    assert_eq!(err["type"], "error", "{err}");

    assert_eq!(status_of(&s, &bob, id).await, 200, "bob is in the conversation now");
    assert_eq!(status_of(&s, &cat, id).await, 404, "cat is not");
    s.stop().await;
}

#[tokio::test]
async fn a_removed_group_member_loses_access_to_the_groups_files() {
    let s = TestServer::start().await;
    let (ann, bob, cat) = (s.register("ann").await, s.register("bob").await, s.register("cat").await);
    s.befriend(&ann, &bob).await;
    s.befriend(&ann, &cat).await;
    let gid = s.group(&ann, "team", &[&bob, &cat]).await;
    let f = uploaded(&s, &bob, "photo.png", png(64, 48)).await;
    let id = f["id"].as_str().unwrap();
    let mut bob_ws = s.ws(&bob).await;
    let ack = send_media(&mut bob_ws, "p1", &format!("g:{gid}"), json!({"kind":"image","file_id":id})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let c = &ack["message"]["content"];
    assert_eq!(
        (c["kind"].as_str(), c["width"].as_u64(), c["height"].as_u64(), c["name"].as_str()),
        (Some("image"), Some(64), Some(48), Some("photo.png"))
    );
    for who in [&ann, &cat] {
        assert_eq!(status_of(&s, who, id).await, 200);
        assert_eq!(fetch(&s, Some(&who.token), &format!("/api/files/{id}/thumb")).await.status(), 200);
    }
    let (st, body) = s.http().delete(&format!("/api/groups/{gid}/members/{}", cat.id), Some(&ann.token)).await;
    assert_eq!(st, 204, "{body}");
    assert_eq!(status_of(&s, &cat, id).await, 404);
    assert_eq!(fetch(&s, Some(&cat.token), &format!("/api/files/{id}/thumb")).await.status(), 404);
    assert_eq!(status_of(&s, &ann, id).await, 200);
    s.stop().await;
}

#[tokio::test]
async fn recalling_a_file_message_takes_the_file_back_from_the_conversation() {
    let s = TestServer::start().await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    let dm = ann.dm(&bob);
    let photo = uploaded(&s, &ann, "photo.png", png(40, 30)).await;
    let notes = uploaded(&s, &ann, "notes.txt", b"twice".to_vec()).await;
    let (photo, notes) = (photo["id"].as_str().unwrap(), notes["id"].as_str().unwrap());
    let mut ann_ws = s.ws(&ann).await;
    let p = send_media(&mut ann_ws, "p", &dm, json!({"kind":"image","file_id":photo})).await["message"]["seq"].as_u64().unwrap();
    // The same file sent twice: recalling one message leaves it with the other.
    let n1 = send_media(&mut ann_ws, "n1", &dm, json!({"kind":"file","file_id":notes})).await["message"]["seq"].as_u64().unwrap();
    let n2 = send_media(&mut ann_ws, "n2", &dm, json!({"kind":"file","file_id":notes})).await["message"]["seq"].as_u64().unwrap();
    for id in [photo, notes] {
        assert_eq!(status_of(&s, &bob, id).await, 200);
    }
    let recall = |seq: u64| {
        let (http, dm, token) = (s.http(), dm.clone(), ann.token.clone());
        async move { http.post(&format!("/api/conversations/{dm}/messages/{seq}/recall"), Some(&token), json!({})).await }
    };
    let (st, body) = recall(p).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(status_of(&s, &bob, photo).await, 404, "a recalled photo is gone for the other side");
    assert_eq!(fetch(&s, Some(&bob.token), &format!("/api/files/{photo}/thumb")).await.status(), 404);
    assert_eq!(status_of(&s, &ann, photo).await, 200, "the uploader keeps their file");
    assert_eq!(recall(n1).await.0, 200);
    assert_eq!(status_of(&s, &bob, notes).await, 200, "still in message {n2}");
    assert_eq!(recall(n2).await.0, 200);
    assert_eq!(status_of(&s, &bob, notes).await, 404);
    // Sending it again shares it again.
    send_media(&mut ann_ws, "n3", &dm, json!({"kind":"file","file_id":notes})).await;
    assert_eq!(status_of(&s, &bob, notes).await, 200);
    s.stop().await;
}

#[tokio::test]
async fn names_are_sanitized_and_nothing_is_written_outside_the_blob_store() {
    let s = TestServer::start().await;
    let ann = s.register("ann").await;
    let blob_root = s.data_dir.join("blobs");
    let outside = || -> Vec<PathBuf> { files_under(&s.data_dir).into_iter().filter(|p| !p.starts_with(&blob_root)).collect() };
    let before = outside();
    let long = "n".repeat(300);
    let cases: Vec<(String, String)> = vec![
        ("../../etc/passwd".into(), "passwd".into()),
        ("..\\x".into(), "x".into()),
        ("%2e%2e%2f".into(), "%2e%2e%2f".into()),
        ("/etc/shadow".into(), "shadow".into()),
        ("C:\\Windows\\win.ini".into(), "win.ini".into()),
        ("nul\0byte.txt".into(), "nulbyte.txt".into()),
        ("..".into(), "file".into()),
        (long.clone(), "n".repeat(200)),
    ];
    for (i, (raw, want)) in cases.iter().enumerate() {
        let content = format!("file number {i}").into_bytes();
        let f = uploaded(&s, &ann, raw, content).await;
        assert_eq!(f["name"].as_str(), Some(want.as_str()), "{raw:?}");
        let resp = fetch(&s, Some(&ann.token), &format!("/api/files/{}", f["id"].as_str().unwrap())).await;
        let cd = resp.headers()["content-disposition"].to_str().unwrap().to_owned();
        assert!(cd.starts_with("attachment; "), "{cd}");
        assert!(!cd.contains('/') && !cd.contains('\\') && !cd.contains(".."), "{raw:?}: {cd}");
        assert!(cd.len() < 800, "{cd}");
    }
    // The multipart name goes through the same cleaning.
    let (st, f) = upload_form(&s, &ann.token, "../../../../tmp/evil.sh", b"#!/bin/sh\necho hi\n").await;
    assert_eq!((st, f["name"].as_str()), (201, Some("evil.sh")), "{f}");

    assert_eq!(outside(), before, "uploads wrote nothing outside blobs/");
    for p in blobs(&s) {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
    }
    s.stop().await;
}

#[tokio::test]
async fn jpeg_metadata_is_stripped_from_the_stored_original() {
    let s = TestServer::start().await;
    let ann = s.register("ann").await;
    let original = jpeg_with_exif(80, 60);
    assert!(contains(&original, b"Exif") && contains(&original, b"GPS 52.52"));
    let (st, f) = upload_form(&s, &ann.token, "holiday.jpg", &original).await;
    assert_eq!(st, 201, "{f}");
    assert_eq!(
        (f["mime"].as_str(), f["width"].as_u64(), f["height"].as_u64(), f["thumb"].as_bool()),
        (Some("image/jpeg"), Some(80), Some(60), Some(true))
    );
    let resp = fetch(&s, Some(&ann.token), &format!("/api/files/{}", f["id"].as_str().unwrap())).await;
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    let got = resp.bytes().await.unwrap();
    assert!(!contains(&got, b"Exif") && !contains(&got, b"GPS 52.52"), "metadata left the server");
    assert_eq!(f["size"].as_u64(), Some(got.len() as u64));
    let img = image::load_from_memory(&got).unwrap();
    assert_eq!((img.width(), img.height()), (80, 60));
    for p in blobs(&s) {
        assert!(!contains(&std::fs::read(p).unwrap(), b"GPS 52.52"), "not even on disk");
    }
    s.stop().await;
}

#[tokio::test]
async fn images_get_dimensions_and_a_thumbnail() {
    let s = TestServer::start().await;
    let ann = s.register("ann").await;
    let big = uploaded(&s, &ann, "wide.png", png(1000, 500)).await;
    assert_eq!((big["width"].as_u64(), big["height"].as_u64(), big["mime"].as_str()), (Some(1000), Some(500), Some("image/png")));
    let resp = fetch(&s, Some(&ann.token), &format!("/api/files/{}/thumb", big["id"].as_str().unwrap())).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    let thumb = image::load_from_memory(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (320, 160));

    let small = uploaded(&s, &ann, "small.png", png(100, 50)).await;
    let resp = fetch(&s, Some(&ann.token), &format!("/api/files/{}/thumb", small["id"].as_str().unwrap())).await;
    let thumb = image::load_from_memory(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (100, 50), "small images are not enlarged");

    let text = uploaded(&s, &ann, "notes.txt", b"just text".to_vec()).await;
    assert_eq!((text["mime"].as_str(), text["width"].as_u64(), text["thumb"].as_bool()), (Some("text/plain"), None, Some(false)));
    assert_eq!(fetch(&s, Some(&ann.token), &format!("/api/files/{}/thumb", text["id"].as_str().unwrap())).await.status(), 404);

    // Claims to be a PNG but is not one: kept as a plain download.
    let mut fake = b"\x89PNG\r\n\x1a\n".to_vec();
    fake.extend_from_slice(b"\0\0\0\x0dIHDR\0\0\0\x10\0\0\0\x10\x08\x02\0\0\0\0\0\0\0\0\0\0\0IEND\xaeB`\x82");
    let f = uploaded(&s, &ann, "fake.png", fake).await;
    assert_eq!((f["mime"].as_str(), f["thumb"].as_bool()), (Some("application/octet-stream"), Some(false)), "{f}");
    s.stop().await;
}

#[tokio::test]
async fn files_are_served_with_safe_headers() {
    let s = TestServer::start().await;
    let ann = s.register("ann").await;
    let cases = [
        ("page.html", b"<!DOCTYPE html><script>alert(1)</script>".to_vec(), "text/html", false),
        ("logo.svg", b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>".to_vec(), "image/svg+xml", false),
        ("pic.png", png(8, 8), "image/png", true),
        // PDFs, audio and video open in the browser's own viewers (the in-app viewer).
        ("doc.pdf", b"%PDF-1.7 ...".to_vec(), "application/pdf", true),
        ("note.ogg", b"OggS\0\x02 not really opus".to_vec(), "audio/ogg", true),
        ("clip.webm", vec![0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86], "video/webm", true),
        ("song.mp3", b"ID3\x04\0\0\0\0\0\0".to_vec(), "audio/mpeg", true),
        ("archive.zip", b"PK\x03\x04\x14\0\0\0".to_vec(), "application/zip", false),
        ("notes.txt", b"plain words".to_vec(), "text/plain", false),
    ];
    for (name, bytes, mime, inline) in cases {
        // The client's content type is ignored.
        let f = uploaded(&s, &ann, name, bytes).await;
        assert_eq!(f["mime"].as_str(), Some(mime), "{name}");
        let resp = fetch(&s, Some(&ann.token), &format!("/api/files/{}", f["id"].as_str().unwrap())).await;
        assert_eq!(resp.status(), 200);
        let h = resp.headers();
        let cd = h["content-disposition"].to_str().unwrap();
        assert_eq!(cd.starts_with("inline;"), inline, "{name}: {cd}");
        assert!(cd.contains(&format!("filename*=UTF-8''{name}")), "{cd}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["content-security-policy"], "sandbox; default-src 'none'");
        assert!(h["cache-control"].to_str().unwrap().starts_with("private, max-age="));
        let served = h["content-type"].to_str().unwrap();
        if mime.contains("html") || mime.contains("svg") {
            assert_eq!(served, "application/octet-stream", "{name}");
        } else {
            assert_eq!(served, mime);
        }
        // Revalidation answers 304 without the body.
        let etag = h["etag"].to_str().unwrap().to_owned();
        let again = reqwest::Client::new()
            .get(s.url(&format!("/api/files/{}", f["id"].as_str().unwrap())))
            .bearer_auth(&ann.token)
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304);
    }
    s.stop().await;
}

#[tokio::test]
async fn avatars_are_readable_by_everyone_logged_in() {
    let s = TestServer::start().await;
    let (ann, bob, cat) = (s.register("ann").await, s.register("bob").await, s.register("cat").await);
    let http = s.http();
    let pic = uploaded(&s, &ann, "me.png", png(200, 200)).await;
    let pic_id = pic["id"].as_str().unwrap();
    assert_eq!(status_of(&s, &bob, pic_id).await, 404);
    let (st, me) = http.send(reqwest::Method::PUT, "/api/me/avatar", Some(&ann.token), json!({"file_id": pic_id})).await;
    assert_eq!(st, 200, "{me}");
    assert_eq!(me["avatar"], pic_id);
    let (_, seen) = http.get(&format!("/api/users/{}", ann.id), Some(&bob.token)).await;
    assert_eq!(seen["avatar"], pic_id);
    assert_eq!(status_of(&s, &bob, pic_id).await, 200);
    assert_eq!(fetch(&s, Some(&bob.token), &format!("/api/files/{pic_id}/thumb")).await.status(), 200);
    assert_eq!(fetch(&s, None, &format!("/api/files/{pic_id}")).await.status(), 401);

    // Not an image, or not yours: refused.
    let txt = uploaded(&s, &ann, "a.txt", b"text".to_vec()).await;
    let (st, body) = http.send(reqwest::Method::PUT, "/api/me/avatar", Some(&ann.token), json!({"file_id": txt["id"]})).await;
    assert_eq!((st, body["error"]["code"].as_str()), (400, Some("not_an_image")));
    let (st, _) = http.send(reqwest::Method::PUT, "/api/me/avatar", Some(&bob.token), json!({"file_id": pic_id})).await;
    assert_eq!(st, 404);

    // A replaced avatar is private again.
    let pic2 = uploaded(&s, &ann, "me2.png", png(50, 50)).await;
    let (st, _) = http.send(reqwest::Method::PUT, "/api/me/avatar", Some(&ann.token), json!({"file_id": pic2["id"]})).await;
    assert_eq!(st, 200);
    assert_eq!(status_of(&s, &bob, pic_id).await, 404);
    assert_eq!(status_of(&s, &bob, pic2["id"].as_str().unwrap()).await, 200);

    // Group avatars: admins set them; everyone logged in can see them.
    s.befriend(&ann, &bob).await;
    let gid = s.group(&ann, "team", &[&bob]).await;
    let gpic = uploaded(&s, &bob, "g.png", png(30, 30)).await;
    let (st, body) =
        http.send(reqwest::Method::PUT, &format!("/api/groups/{gid}/avatar"), Some(&bob.token), json!({"file_id": gpic["id"]})).await;
    assert_eq!(st, 403, "members are not admins: {body}");
    assert_eq!(status_of(&s, &cat, gpic["id"].as_str().unwrap()).await, 404, "a refused change grants nothing");
    let gpic = uploaded(&s, &ann, "g.png", png(31, 31)).await;
    let (st, g) =
        http.send(reqwest::Method::PUT, &format!("/api/groups/{gid}/avatar"), Some(&ann.token), json!({"file_id": gpic["id"]})).await;
    assert_eq!(st, 200, "{g}");
    assert_eq!(g["avatar"], gpic["id"]);
    assert_eq!(status_of(&s, &cat, gpic["id"].as_str().unwrap()).await, 200);
    s.stop().await;
}

#[tokio::test]
async fn administrators_keep_sticker_packs_that_everyone_can_send() {
    let s = TestServer::start().await;
    let root = s.register("root").await; // the first user administers the server
    let (bob, cat, dan) = (s.register("bob").await, s.register("cat").await, s.register("dan").await);
    let http = s.http();
    let (st, _) = http.post("/api/stickers/packs", Some(&bob.token), json!({"name": "mine"})).await;
    assert_eq!(st, 403);
    let (st, pack) = http.post("/api/stickers/packs", Some(&root.token), json!({"name": "Cats"})).await;
    assert_eq!(st, 201, "{pack}");
    let pack_id = pack["id"].as_u64().unwrap();
    let img = uploaded(&s, &root, "cat.png", png(120, 100)).await;
    let sticker = img["id"].as_str().unwrap();
    let (st, pack) = http.post(&format!("/api/stickers/packs/{pack_id}/stickers"), Some(&root.token), json!({"file_id": sticker})).await;
    assert_eq!(st, 200, "{pack}");
    assert_eq!(pack["stickers"][0], json!({"file_id": sticker, "width": 120, "height": 100}));
    let (st, _) = http.post(&format!("/api/stickers/packs/{pack_id}/stickers"), Some(&bob.token), json!({"file_id": sticker})).await;
    assert_eq!(st, 403);

    let (st, list) = http.get("/api/stickers", Some(&bob.token)).await;
    assert_eq!(st, 200);
    assert_eq!(list["packs"][0]["name"], "Cats");
    assert_eq!(status_of(&s, &dan, sticker).await, 200, "stickers are public to users");

    let mut bob_ws = s.ws(&bob).await;
    let ack = send_media(&mut bob_ws, "s1", &bob.dm(&cat), json!({"kind":"sticker","file_id":sticker})).await;
    assert_eq!(ack["message"]["content"], json!({"kind":"sticker","file_id":sticker,"width":120,"height":100}), "{ack}");
    // Bob's own upload is no sticker.
    let own = uploaded(&s, &bob, "x.png", png(10, 10)).await;
    let err = send_media(&mut bob_ws, "s2", &bob.dm(&cat), json!({"kind":"sticker","file_id":own["id"]})).await;
    assert_eq!(err["type"], "error", "{err}");

    let (st, _) = http.delete(&format!("/api/stickers/packs/{pack_id}"), Some(&root.token)).await;
    assert_eq!(st, 204);
    let (_, list) = http.get("/api/stickers", Some(&bob.token)).await;
    assert_eq!(list["packs"], json!([]));
    assert_eq!(status_of(&s, &cat, sticker).await, 200, "still readable where it was sent");
    assert_eq!(status_of(&s, &dan, sticker).await, 404, "no longer public");
    let err = send_media(&mut bob_ws, "s3", &bob.dm(&cat), json!({"kind":"sticker","file_id":sticker})).await;
    assert_eq!(err["type"], "error", "{err}");
    s.stop().await;
}

#[tokio::test]
async fn every_media_route_is_in_the_openapi_document() {
    let s = TestServer::start().await;
    let (_, doc) = s.http().get("/api/openapi.json", None).await;
    for path in [
        "/api/files",
        "/api/files/{id}",
        "/api/files/{id}/thumb",
        "/api/me/avatar",
        "/api/groups/{id}/avatar",
        "/api/stickers",
        "/api/stickers/packs",
        "/api/stickers/packs/{id}",
        "/api/stickers/packs/{id}/stickers",
        "/api/stickers/packs/{id}/stickers/{file_id}",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is missing");
    }
    s.stop().await;
}
