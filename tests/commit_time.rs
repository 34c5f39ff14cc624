//! Rules hold at commit time, end to end: a sender pipelines `send` frames while someone else
//! removes, blocks, mutes them or disables or dissolves the group. Nothing of theirs may be
//! stored after the change: every message an observer gets from them arrives before the change's
//! own frame (both are delivered in commit order), every acknowledged message is in the history,
//! and every other send was refused.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{TestServer, User, Ws};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Sends go on this long after the change has been answered, so that refusals are certain.
const AFTER_CHANGE: usize = 40;
/// Sends in flight at once: enough to overlap the change, few enough for the queues.
const IN_FLIGHT: usize = 8;

/// What became of the pipelined sends.
struct Raced {
    acked: Vec<u64>,
    refused: Vec<String>,
}

/// Pipelines sends from `sender` into `conv`, runs `change` once some were acknowledged, keeps
/// sending a little longer, and collects every answer.
async fn race<F: std::future::Future<Output = ()>>(s: &TestServer, sender: &User, conv: &str, change: F) -> Raced {
    let ws = s.ws(sender).await;
    let (mut sink, mut stream) = ws.stream.split();
    let stop_at = Arc::new(AtomicUsize::new(usize::MAX));
    let sent = Arc::new(AtomicUsize::new(0));
    let window = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let (conv2, stop2, sent2, window2) = (conv.to_owned(), stop_at.clone(), sent.clone(), window.clone());
    let writer = tokio::spawn(async move {
        let mut i = 0;
        while i < stop2.load(Ordering::SeqCst) {
            window2.acquire().await.unwrap().forget();
            let frame = json!({"type":"send","client_id":format!("r{i}"),"conv":conv2,"content":{"kind":"text","text":format!("m{i}")}});
            sink.send(WsMessage::Text(frame.to_string().into())).await.unwrap();
            i += 1;
            sent2.store(i, Ordering::SeqCst);
        }
        sink
    });
    let acks_seen = Arc::new(tokio::sync::Notify::new());
    let (notify, sent3, stop3) = (acks_seen.clone(), sent.clone(), stop_at.clone());
    let reader = tokio::spawn(async move {
        let (mut acked, mut refused) = (Vec::new(), Vec::new());
        loop {
            let stop = stop3.load(Ordering::SeqCst);
            if stop != usize::MAX && acked.len() + refused.len() == stop && sent3.load(Ordering::SeqCst) == stop {
                return Raced { acked, refused };
            }
            let msg = tokio::time::timeout(common::WAIT, stream.next()).await.expect("answers arrive in time");
            let v: Value = match msg {
                Some(Ok(WsMessage::Text(t))) => serde_json::from_str(t.as_str()).unwrap(),
                Some(Ok(_)) => continue,
                other => panic!("the sender's socket ended: {other:?}"),
            };
            let mine = v["client_id"].as_str().is_some_and(|c| c.starts_with('r'));
            if mine {
                window.add_permits(1);
            }
            match v["type"].as_str() {
                Some("ack") if mine => {
                    acked.push(v["message"]["seq"].as_u64().unwrap());
                    if acked.len() == 20 {
                        notify.notify_one();
                    }
                }
                Some("error") if mine => refused.push(v["code"].as_str().unwrap().to_owned()),
                _ => {}
            }
        }
    });
    acks_seen.notified().await;
    change.await;
    stop_at.store(sent.load(Ordering::SeqCst) + AFTER_CHANGE, Ordering::SeqCst);
    let _sink = writer.await.unwrap();
    reader.await.unwrap()
}

/// Reads `observer`'s frames (while the race runs, so its queue never fills) until
/// `is_change` matches one; gives back the socket and the seqs of `sender`'s messages in `conv`
/// that came before it.
fn seen_before_change(
    mut observer: Ws,
    sender: &User,
    conv: &str,
    is_change: impl Fn(&Value) -> bool + Send + 'static,
) -> tokio::task::JoinHandle<(Ws, Vec<u64>)> {
    let (sender, conv) = (sender.id, conv.to_owned());
    tokio::spawn(async move {
        let mut before = Vec::new();
        loop {
            let v = observer.next_json().await;
            if is_change(&v) {
                return (observer, before);
            }
            if v["type"] == "message" && v["message"]["conv"] == conv && v["message"]["sender"] == sender {
                before.push(v["message"]["seq"].as_u64().unwrap());
            }
        }
    })
}

async fn nothing_more_from(observer: &mut Ws, sender: &User) {
    observer.send_json(json!({"type":"ping"})).await;
    loop {
        let v = observer.next_json().await;
        assert!(!(v["type"] == "message" && v["message"]["sender"] == sender.id), "a message stored after the change: {v}");
        if v["type"] == "pong" {
            return;
        }
    }
}

/// The sender's messages in the stored history of `conv`, read by `reader`.
async fn stored_from(s: &TestServer, reader: &User, conv: &str, sender: &User) -> Vec<u64> {
    let (mut out, mut before) = (Vec::new(), None::<u64>);
    loop {
        let q = before.map_or(String::new(), |b| format!("&before={b}"));
        let (st, page) = s.http().get(&format!("/api/conversations/{conv}/messages?limit=100{q}"), Some(&reader.token)).await;
        assert_eq!(st, 200, "{page}");
        let msgs = page["messages"].as_array().unwrap();
        for m in msgs {
            if m["sender"] == sender.id && m["content"]["kind"] == "text" {
                out.push(m["seq"].as_u64().unwrap());
            }
        }
        match msgs.first() {
            Some(first) if page["has_more"] == true => before = first["seq"].as_u64(),
            _ => break,
        }
    }
    out.sort_unstable();
    out
}

fn check(name: &str, raced: &Raced, delivered: &[u64], stored: &[u64], refusal: &str) {
    let mut acked = raced.acked.clone();
    acked.sort_unstable();
    assert!(!acked.is_empty() && !raced.refused.is_empty(), "{name}: the sends raced the change");
    assert!(raced.refused.iter().all(|c| c == refusal), "{name}: refusals {:?}", raced.refused);
    assert_eq!(stored, acked, "{name}: exactly the acknowledged messages are stored");
    assert_eq!(delivered, acked, "{name}: each was delivered before the change");
}

async fn group_of(s: &TestServer, owner: &User, member: &User) -> (u64, String) {
    s.befriend(owner, member).await;
    let gid = s.group(owner, "race", &[member]).await;
    (gid, format!("g:{gid}"))
}

/// The owner's `group` frame that a committed group change announces.
fn group_frame(gid: u64) -> impl Fn(&Value) -> bool {
    move |v| v["type"] == "group" && v["group"]["id"] == gid
}

#[tokio::test]
async fn nothing_is_stored_after_a_removal_a_mute_a_disable_or_a_dissolve() {
    let s = TestServer::start().await;
    let admin = s.register("root").await;
    let owner = s.register("olga").await;
    for (i, (name, refusal)) in
        [("removed", "not_found"), ("muted", "forbidden"), ("disabled", "forbidden"), ("dissolved", "forbidden")].into_iter().enumerate()
    {
        let member = s.register(&format!("mem{i}")).await;
        let (gid, conv) = group_of(&s, &owner, &member).await;
        let observer = seen_before_change(s.ws(&owner).await, &member, &conv, group_frame(gid));
        let http = s.http();
        let change = async {
            let (st, body) = match name {
                "removed" => http.delete(&format!("/api/groups/{gid}/members/{}", member.id), Some(&owner.token)).await,
                "muted" => {
                    http.post(&format!("/api/groups/{gid}/members/{}/mute", member.id), Some(&owner.token), json!({"minutes": 10})).await
                }
                "disabled" => http.post(&format!("/api/admin/groups/{gid}/disable"), Some(&admin.token), json!({})).await,
                _ => http.delete(&format!("/api/groups/{gid}"), Some(&owner.token)).await,
            };
            assert!(st < 300, "{name}: {st} {body}");
        };
        let raced = race(&s, &member, &conv, change).await;
        let (mut observer, delivered) = observer.await.unwrap();
        nothing_more_from(&mut observer, &member).await;
        let stored = stored_from(&s, &owner, &conv, &member).await;
        check(name, &raced, &delivered, &stored, refusal);
    }
    s.stop().await;
}

#[tokio::test]
async fn nothing_is_stored_after_a_block() {
    let s = TestServer::start().await;
    let (bea, sam) = (s.register("bea").await, s.register("sam").await);
    let conv = bea.dm(&sam);
    let is_block = |v: &Value| v["type"] == "contact" && v["contact"]["state"] == "blocked";
    let observer = seen_before_change(s.ws(&bea).await, &sam, &conv, is_block);
    let http = s.http();
    let change = async {
        let (st, body) = http.post(&format!("/api/contacts/{}/block", sam.id), Some(&bea.token), json!({})).await;
        assert_eq!(st, 200, "{body}");
    };
    let raced = race(&s, &sam, &conv, change).await;
    let (mut observer, delivered) = observer.await.unwrap();
    nothing_more_from(&mut observer, &sam).await;
    let stored = stored_from(&s, &bea, &conv, &sam).await;
    check("blocked", &raced, &delivered, &stored, "forbidden");
    s.stop().await;
}
