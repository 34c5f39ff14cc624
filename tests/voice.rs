//! Voice messages end to end: a recording uploaded like any file, sent as `voice` content that
//! the server checks against the file (audio by its bytes, duration by its own timestamps,
//! size for its length, the server's limit) and fills in; history returns what was stored.

mod common;

use common::{TestServer, User, Ws};
use serde_json::{Value, json};

/// The Ogg CRC-32 (polynomial 0x04C11DB7, not reflected), so that players accept the pages.
fn ogg_crc(data: &[u8]) -> u32 {
    let mut crc = 0u32;
    for b in data {
        crc ^= u32::from(*b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 { (crc << 1) ^ 0x04C1_1DB7 } else { crc << 1 };
        }
    }
    crc
}

/// One Ogg page holding whole packets.
fn page(flags: u8, granule: u64, seq: u32, packets: &[&[u8]]) -> Vec<u8> {
    let mut lacing = Vec::new();
    for p in packets {
        lacing.extend(std::iter::repeat_n(255u8, p.len() / 255));
        lacing.push(u8::try_from(p.len() % 255).unwrap());
    }
    let mut out = b"OggS\0".to_vec();
    out.push(flags);
    out.extend_from_slice(&granule.to_le_bytes());
    out.extend_from_slice(&0x4348_5747u32.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(u8::try_from(lacing.len()).unwrap());
    out.extend_from_slice(&lacing);
    for p in packets {
        out.extend_from_slice(p);
    }
    let crc = ogg_crc(&out);
    out[22..26].copy_from_slice(&crc.to_le_bytes());
    out
}

/// A real Ogg Opus file of `ms` milliseconds of silence: 20 ms CELT frames carried as their
/// one-byte table of contents (a frame with no data decodes as silence), 50 to a page, and
/// `pad_pages` extra pages of 60,000 bytes to make the file heavy.
fn ogg_opus(ms: u64, pad_pages: u32) -> Vec<u8> {
    const PRE_SKIP: u64 = 312;
    let mut head = b"OpusHead\x01\x01".to_vec();
    head.extend_from_slice(&u16::try_from(PRE_SKIP).unwrap().to_le_bytes());
    head.extend_from_slice(&48_000u32.to_le_bytes());
    head.extend_from_slice(&[0, 0, 0]);
    let mut f = page(2, 0, 0, &[&head]);
    f.extend(page(0, 0, 1, &[b"OpusTags\x07\0\0\0chinwag\0\0\0\0"]));
    let frames = ms / 20;
    let mut seq = 2;
    for _ in 0..pad_pages {
        f.extend(page(0, PRE_SKIP, seq, &[&vec![0xF8u8; 60_000]]));
        seq += 1;
    }
    let mut done = 0;
    while done < frames {
        let n = (frames - done).min(50);
        done += n;
        let packets: Vec<&[u8]> = (0..n).map(|_| &[0xF8u8][..]).collect();
        let last = done == frames;
        f.extend(page(if last { 4 } else { 0 }, PRE_SKIP + done * 960, seq, &packets));
        seq += 1;
    }
    f
}

/// A `WebM` file as a browser's `MediaRecorder` writes it (segment and cluster of unknown size),
/// with one Opus track (or a video track) and a block every second up to `secs`.
fn webm(secs: u16, video: bool) -> Vec<u8> {
    let mut f = vec![0x1A, 0x45, 0xDF, 0xA3, 0x84, 0x42, 0x82, 0x81, 0x00];
    f.extend([0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
    f.extend([0x16, 0x54, 0xAE, 0x6B, 0x85, 0xAE, 0x83, 0x83, 0x81, if video { 1 } else { 2 }]);
    f.extend([0x1F, 0x43, 0xB6, 0x75, 0xFF, 0xE7, 0x81, 0x00]);
    for s in 0..=secs {
        let [hi, lo] = (s * 1000).to_be_bytes();
        f.extend([0xA3, 0x85, 0x81, hi, lo, 0x80, 0xF8]);
    }
    f
}

async fn upload(s: &TestServer, who: &User, name: &str, bytes: Vec<u8>) -> Value {
    let resp =
        reqwest::Client::new().post(s.url(&format!("/api/files?name={name}"))).bearer_auth(&who.token).body(bytes).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

fn waveform(n: usize) -> Vec<u8> {
    (0..n).map(|i| u8::try_from(i % 32).unwrap()).collect()
}

async fn send_voice(ws: &mut Ws, cid: &str, conv: &str, file: &Value, duration_ms: u64, wave: &[u8]) -> Value {
    let content = json!({"kind":"voice","file_id":file["id"],"duration_ms":duration_ms,"waveform":wave});
    ws.send_json(json!({"type":"send","client_id":cid,"conv":conv,"content":content})).await;
    ws.until_client_id(cid).await
}

fn refused(v: &Value, code: &str) {
    assert_eq!((v["type"].as_str(), v["code"].as_str()), (Some("error"), Some(code)), "{v}");
}

#[tokio::test]
async fn a_voice_message_is_checked_filled_in_and_kept() {
    let s = TestServer::start().await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    let conv = ann.dm(&bob);
    let mut ws = s.ws(&ann).await;
    let mut bob_ws = s.ws(&bob).await;

    let rec = upload(&s, &ann, "voice.ogg", ogg_opus(3000, 0)).await;
    assert_eq!((rec["mime"].as_str(), rec["duration_ms"].as_u64()), (Some("audio/ogg"), Some(3000)), "{rec}");
    // The stop button lagged: the claim says 3.4 s, the recording's own data says 3 s.
    let ack = send_voice(&mut ws, "v1", &conv, &rec, 3400, &waveform(48)).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let c = &ack["message"]["content"];
    assert_eq!(c["kind"], "voice");
    assert_eq!(c["duration_ms"], 3000, "the file's length wins over the claim");
    assert_eq!((c["size"].as_u64(), c["mime"].as_str()), (rec["size"].as_u64(), Some("audio/ogg")));
    assert_eq!(c["waveform"].as_array().unwrap().len(), 48);
    let live = bob_ws.next_of("message").await;
    assert_eq!(live["message"]["content"], *c);

    // Bob may play it, history returns the filled fields, and previews say what it is.
    let got = reqwest::Client::new().get(s.url(&format!("/api/files/{}", rec["id"].as_str().unwrap()))).bearer_auth(&bob.token);
    let got = got.send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["content-type"], "audio/ogg");
    assert!(got.headers()["content-disposition"].to_str().unwrap().starts_with("inline;"));
    let (_, hist) = s.http().get(&format!("/api/conversations/{conv}/messages"), Some(&bob.token)).await;
    assert_eq!(hist["messages"][0]["content"], *c);
    let reply =
        json!({"type":"send","client_id":"r1","conv":conv,"reply_to":ack["message"]["seq"],"content":{"kind":"text","text":"nice"}});
    bob_ws.send_json(reply).await;
    let r = bob_ws.until_client_id("r1").await;
    assert_eq!(r["message"]["reply_to"]["preview"], "[Voice] 0:03", "{r}");

    // A WebM recording (what Chromium's MediaRecorder writes) is read the same way.
    let w = upload(&s, &ann, "voice.webm", webm(5, false)).await;
    assert_eq!((w["mime"].as_str(), w["duration_ms"].as_u64()), (Some("video/webm"), Some(5000)), "{w}");
    let ack = send_voice(&mut ws, "v2", &conv, &w, 5200, &waveform(16)).await;
    assert_eq!(ack["message"]["content"]["duration_ms"], 5000, "{ack}");
    s.stop().await;
}

#[tokio::test]
async fn files_that_are_not_recordings_are_refused_as_voice() {
    let s = TestServer::start().await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    let conv = ann.dm(&bob);
    let mut ws = s.ws(&ann).await;
    let text = upload(&s, &ann, "notes.txt", b"not audio at all".to_vec()).await;
    refused(&send_voice(&mut ws, "t", &conv, &text, 1000, &waveform(32)).await, "forbidden");
    let pdf = upload(&s, &ann, "x.pdf", b"%PDF-1.7 fake".to_vec()).await;
    refused(&send_voice(&mut ws, "p", &conv, &pdf, 1000, &waveform(32)).await, "forbidden");
    // WebM with a video track is a video, not a voice message; a damaged Ogg has no length.
    let video = upload(&s, &ann, "v.webm", webm(2, true)).await;
    assert!(video["duration_ms"].is_null(), "{video}");
    refused(&send_voice(&mut ws, "w", &conv, &video, 2000, &waveform(32)).await, "forbidden");
    let broken = upload(&s, &ann, "b.ogg", b"OggS\0\x02garbage that is no opus head".to_vec()).await;
    refused(&send_voice(&mut ws, "b", &conv, &broken, 2000, &waveform(32)).await, "forbidden");
    // Bob cannot send Ann's recording.
    let rec = upload(&s, &ann, "voice.ogg", ogg_opus(1000, 0)).await;
    let mut bob_ws = s.ws(&bob).await;
    refused(&send_voice(&mut bob_ws, "x", &conv, &rec, 1000, &waveform(32)).await, "forbidden");
    // A recording far heavier than its length allows (at most 128 KiB for one second).
    let light = upload(&s, &ann, "light.ogg", ogg_opus(1000, 1)).await;
    assert_eq!(send_voice(&mut ws, "l", &conv, &light, 1000, &waveform(32)).await["type"], "ack");
    let heavy = upload(&s, &ann, "heavy.ogg", ogg_opus(1000, 3)).await;
    assert_eq!(heavy["duration_ms"], 1000, "{heavy}");
    refused(&send_voice(&mut ws, "h", &conv, &heavy, 1000, &waveform(32)).await, "forbidden");
    s.stop().await;
}

#[tokio::test]
async fn bad_waveforms_and_durations_are_refused() {
    let s = TestServer::start_with(|c| c.limits.voice_max_secs = 5).await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    let conv = ann.dm(&bob);
    let mut ws = s.ws(&ann).await;
    let rec = upload(&s, &ann, "voice.ogg", ogg_opus(4000, 0)).await;
    refused(&send_voice(&mut ws, "a", &conv, &rec, 4000, &waveform(15)).await, "invalid");
    refused(&send_voice(&mut ws, "b", &conv, &rec, 4000, &waveform(65)).await, "invalid");
    let mut loud = waveform(32);
    loud[3] = 32;
    refused(&send_voice(&mut ws, "c", &conv, &rec, 4000, &loud).await, "invalid");
    refused(&send_voice(&mut ws, "d", &conv, &rec, 0, &waveform(32)).await, "invalid");
    // Not a list of small numbers at all: the frame does not parse.
    let content = json!({"kind":"voice","file_id":rec["id"],"duration_ms":4000,"waveform":[300, -1]});
    ws.send_json(json!({"type":"send","client_id":"e","conv":conv,"content":content})).await;
    assert_eq!(ws.next_of("error").await["code"], "bad_frame");
    // The claim must match the recording.
    refused(&send_voice(&mut ws, "f", &conv, &rec, 1000, &waveform(32)).await, "forbidden");
    // Over the server's limit: by the claim, and by the recording's own length.
    refused(&send_voice(&mut ws, "g", &conv, &rec, 5001, &waveform(32)).await, "invalid");
    let long = upload(&s, &ann, "long.ogg", ogg_opus(8000, 0)).await;
    refused(&send_voice(&mut ws, "h", &conv, &long, 5000, &waveform(32)).await, "forbidden");
    let ok = send_voice(&mut ws, "i", &conv, &rec, 4000, &waveform(64)).await;
    assert_eq!(ok["type"], "ack", "{ok}");
    let (_, hist) = s.http().get(&format!("/api/conversations/{conv}/messages"), Some(&bob.token)).await;
    assert_eq!(hist["messages"].as_array().unwrap().len(), 1, "nothing refused was stored");
    s.stop().await;
}
