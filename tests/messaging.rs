//! 1:1 messaging end to end: live delivery, offline sync, idempotent resends, history,
//! persistence across restarts, and the limits that protect the server.

mod common;

use std::time::Duration;

use common::{Ended, TestServer};
use serde_json::{Value, json};

#[tokio::test]
async fn a_message_reaches_the_online_peer_and_the_senders_other_devices() {
    let s = TestServer::start().await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    let conv = ann.dm(&bob);
    let mut ann_phone = s.ws(&ann).await;
    let mut ann_laptop = s.ws(&ann).await;
    let mut bob_ws = s.ws(&bob).await;

    let ack = ann_phone.send_text("m1", &conv, "hello bob 你好").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let msg = &ack["message"];
    assert_eq!((msg["seq"].as_u64(), msg["sender"].as_u64(), msg["conv"].as_str()), (Some(1), Some(ann.id), Some(conv.as_str())));
    assert!(msg["ts"].as_u64().unwrap() > 1_700_000_000_000);

    for ws in [&mut bob_ws, &mut ann_laptop] {
        let got = ws.next_json().await;
        assert_eq!(got["type"], "message");
        assert_eq!(got["message"], *msg);
    }
    // Bob answers; sequence numbers continue without gaps.
    let ack = bob_ws.send_text("r1", &conv, "hi ann").await;
    assert_eq!(ack["message"]["seq"], 2);
    assert_eq!(ann_phone.next_json().await["message"]["seq"], 2);
    s.stop().await;
}

#[tokio::test]
async fn messages_sent_while_offline_arrive_on_sync_in_order_without_duplicates() {
    let s = TestServer::start().await;
    let (ann, bob, cat) = (s.register("ann").await, s.register("bob").await, s.register("cat").await);
    let mut ann_ws = s.ws(&ann).await;
    let mut cat_ws = s.ws(&cat).await;
    for i in 1..=5 {
        assert_eq!(ann_ws.send_text(&format!("a{i}"), &ann.dm(&bob), &format!("to bob {i}")).await["type"], "ack");
    }
    assert_eq!(cat_ws.send_text("c1", &cat.dm(&bob), "from cat").await["type"], "ack");

    // Bob was never online: a first sync brings everything.
    let mut bob_ws = s.ws(&bob).await;
    let got = bob_ws.sync(json!({})).await;
    let from_ann: Vec<u64> =
        got.iter().filter(|f| f["message"]["conv"] == ann.dm(&bob)).map(|f| f["message"]["seq"].as_u64().unwrap()).collect();
    assert_eq!(from_ann, vec![1, 2, 3, 4, 5]);
    assert_eq!(got.iter().filter(|f| f["message"]["conv"] == cat.dm(&bob)).count(), 1);
    drop(bob_ws);

    // Bob saw up to 3 with ann and everything with cat; two more arrive while he is away.
    for i in 6..=7 {
        ann_ws.send_text(&format!("a{i}"), &ann.dm(&bob), "later").await;
    }
    let mut bob_ws = s.ws(&bob).await;
    let got = bob_ws.sync(json!({ ann.dm(&bob): 3, cat.dm(&bob): 1 })).await;
    let seqs: Vec<u64> = got.iter().map(|f| f["message"]["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![4, 5, 6, 7]);
    assert!(got.iter().all(|f| f["message"]["conv"] == ann.dm(&bob)));
    // After sync, live messages follow.
    ann_ws.send_text("a8", &ann.dm(&bob), "live").await;
    assert_eq!(bob_ws.next_json().await["message"]["seq"], 8);
    s.stop().await;
}

#[tokio::test]
async fn a_sync_names_the_messages_it_left_out_and_history_pages_them() {
    let s = TestServer::start().await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    let conv = ann.dm(&bob);
    let mut ann_ws = s.ws(&ann).await;
    for i in 1..=150 {
        assert_eq!(ann_ws.send_text(&format!("a{i}"), &conv, &format!("m{i}")).await["type"], "ack");
    }
    // Bob saw up to 10: the sync sends the newest 100 and names the 40 it left out.
    let mut bob_ws = s.ws(&bob).await;
    bob_ws.send_json(json!({"type":"sync","cursors":{conv.clone(): 10}})).await;
    let mut frames = bob_ws.until("synced").await;
    let synced = frames.pop().unwrap();
    let seqs: Vec<u64> = frames.iter().map(|f| f["message"]["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (51..=150).collect::<Vec<_>>());
    assert_eq!(synced, json!({"type":"synced","gaps":[{"conv": conv, "after": 10, "before": 51}]}));
    let (st, page) = s.http().get(&format!("/api/conversations/{conv}/messages?after=10&before=51&limit=100"), Some(&bob.token)).await;
    assert_eq!(st, 200, "{page}");
    let paged: Vec<u64> = page["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(paged, (11..=50).collect::<Vec<_>>());
    // A first sync (no cursor) names the gap from the beginning; one that fits names none.
    let got = bob_ws.sync(json!({})).await;
    assert_eq!(got.len(), 100);
    bob_ws.send_json(json!({"type":"sync","cursors":{}})).await;
    let synced = bob_ws.until("synced").await.pop().unwrap();
    assert_eq!(synced["gaps"], json!([{"conv": conv, "after": 0, "before": 51}]));
    bob_ws.send_json(json!({"type":"sync","cursors":{conv.clone(): 50}})).await;
    let synced = bob_ws.until("synced").await.pop().unwrap();
    assert_eq!(synced, json!({"type":"synced"}), "100 new messages fit: no gap");
    s.stop().await;
}

#[tokio::test]
async fn resending_a_client_id_returns_the_first_result_and_stores_nothing_new() {
    let s = TestServer::start().await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    let conv = ann.dm(&bob);
    let mut ann_ws = s.ws(&ann).await;
    let mut bob_ws = s.ws(&bob).await;
    let first = ann_ws.send_text("same-id", &conv, "once").await;
    assert_eq!(bob_ws.next_json().await["message"]["seq"], 1);
    // Resent after a reconnect, even with different text: the first message stands.
    let mut ann_ws2 = s.ws(&ann).await;
    let again = ann_ws2.send_text("same-id", &conv, "twice?").await;
    assert_eq!(again, first);
    ann_ws.send_text("next-id", &conv, "two").await;
    assert_eq!(bob_ws.next_json().await["message"]["seq"], 2, "bob never saw a duplicate");
    let (_, page) = s.http().get(&format!("/api/conversations/{conv}/messages"), Some(&bob.token)).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 2);
    s.stop().await;
}

#[tokio::test]
async fn nobody_reads_or_writes_a_conversation_they_are_not_in() {
    let s = TestServer::start().await;
    let (ann, bob, eve) = (s.register("ann").await, s.register("bob").await, s.register("eve").await);
    let conv = ann.dm(&bob);
    let mut ann_ws = s.ws(&ann).await;
    ann_ws.send_text("x", &conv, "private").await;
    let mut eve_ws = s.ws(&eve).await;
    let refused = eve_ws.send_text("e1", &conv, "let me in").await;
    assert_eq!((refused["type"].as_str(), refused["code"].as_str()), (Some("error"), Some("not_found")));
    assert!(eve_ws.sync(json!({ conv.clone(): 0 })).await.is_empty());
    let (status, _) = s.http().get(&format!("/api/conversations/{conv}/messages"), Some(&eve.token)).await;
    assert_eq!(status, 404);
    let (status, _) = s.http().get(&format!("/api/conversations/{conv}/messages"), None).await;
    assert_eq!(status, 401);
    // Talking to yourself or to nobody is refused too.
    let own = format!("d:{}:{}", eve.id, eve.id);
    let refused = eve_ws.send_text("e2", &own, "me").await;
    assert_eq!((refused["type"].as_str(), refused["code"].as_str()), (Some("error"), Some("bad_frame")));
    let ghost = format!("d:{}:999", eve.id);
    assert_eq!(eve_ws.send_text("e3", &ghost, "boo").await["code"], "not_found");
    s.stop().await;
}

#[tokio::test]
async fn history_pages_by_sequence() {
    let s = TestServer::start().await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    let conv = ann.dm(&bob);
    let mut ws = s.ws(&ann).await;
    for i in 1..=120 {
        ws.send_text(&format!("h{i}"), &conv, &format!("n{i}")).await;
    }
    let http = s.http();
    let seqs = |v: &Value| v["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()).collect::<Vec<_>>();
    let (_, newest) = http.get(&format!("/api/conversations/{conv}/messages"), Some(&bob.token)).await;
    assert_eq!(seqs(&newest), (71..=120).collect::<Vec<_>>());
    assert_eq!(newest["has_more"], true);
    let (_, older) = http.get(&format!("/api/conversations/{conv}/messages?before=71&limit=100"), Some(&bob.token)).await;
    assert_eq!(seqs(&older), (1..=70).collect::<Vec<_>>());
    assert_eq!(older["has_more"], false);
    let (_, after) = http.get(&format!("/api/conversations/{conv}/messages?after=115"), Some(&bob.token)).await;
    assert_eq!(seqs(&after), vec![116, 117, 118, 119, 120]);
    let (_, mid) = http.get(&format!("/api/conversations/{conv}/messages?after=10&before=14"), Some(&bob.token)).await;
    assert_eq!(seqs(&mid), vec![11, 12, 13]);
    assert_eq!(http.get(&format!("/api/conversations/{conv}/messages?limit=101"), Some(&bob.token)).await.0, 400);
    assert_eq!(http.get(&format!("/api/conversations/{conv}/messages?before=-1"), Some(&bob.token)).await.0, 400);
    let (_, list) = http.get("/api/conversations", Some(&bob.token)).await;
    assert_eq!(list["conversations"][0]["id"], conv);
    assert_eq!(list["conversations"][0]["last_seq"], 120);
    assert_eq!(list["conversations"][0]["peer"]["username"], "ann");
    assert_eq!(list["conversations"][0]["last_message"]["content"]["text"], "n120");
    s.stop().await;
}

#[tokio::test]
async fn acknowledged_messages_and_sessions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(dir.path(), |_| {}).await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    let conv = ann.dm(&bob);
    let mut ws = s.ws(&ann).await;
    for i in 1..=10 {
        assert_eq!(ws.send_text(&format!("p{i}"), &conv, &format!("kept {i}")).await["type"], "ack");
    }
    // Shutdown closes sockets with 1001.
    let stopping = tokio::spawn(s.stop());
    assert_eq!(ws.until_end(Duration::from_secs(10)).await, Ended::Closed(Some(1001)));
    stopping.await.unwrap();

    let s = TestServer::start_in(dir.path(), |_| {}).await;
    let mut bob_ws = s.ws(&bob).await;
    let got = bob_ws.sync(json!({})).await;
    let texts: Vec<&str> = got.iter().map(|f| f["message"]["content"]["text"].as_str().unwrap()).collect();
    assert_eq!(texts, (1..=10).map(|i| format!("kept {i}")).collect::<Vec<_>>());
    // The idempotency index survived too, and numbering goes on.
    let mut ann_ws = s.ws(&ann).await;
    assert_eq!(ann_ws.send_text("p10", &conv, "again").await["message"]["seq"], 10);
    assert_eq!(ann_ws.send_text("p11", &conv, "new").await["message"]["seq"], 11);
    s.stop().await;
}

#[tokio::test]
async fn bad_frames_get_errors_and_oversized_frames_close_with_1009() {
    let s = TestServer::start_with(|c| c.limits.max_frame_bytes = 64 * 1024).await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    let mut ws = s.ws(&ann).await;
    for bad in ["not json", "{}", r#"{"type":"send"}"#, &format!("{}{}", "[".repeat(10_000), "]".repeat(10_000))] {
        ws.stream.send(tokio_tungstenite::tungstenite::Message::Text(bad.into())).await.unwrap();
        let v = ws.next_json().await;
        assert_eq!((v["type"].as_str(), v["code"].as_str()), (Some("error"), Some("bad_frame")), "{bad:.40}");
    }
    let empty = ws.send_text("e", &ann.dm(&bob), "   ").await;
    assert_eq!(empty["code"], "invalid");
    ws.send_json(json!({"type":"send","client_id":"x".repeat(65),"conv":ann.dm(&bob),"content":{"kind":"text","text":"hi"}})).await;
    let v = ws.next_json().await;
    assert_eq!((v["type"].as_str(), v["code"].as_str()), (Some("error"), Some("invalid")), "{v}");
    assert_eq!(v["client_id"], "x".repeat(65), "echoed whole, so that the client can match it");
    // An emoji message is one emoji, not text.
    for (i, (emoji, ok)) in [("a", false), ("not an emoji", false), ("👍👍", false), ("👍🏽", true), ("👨‍👩‍👧", true)].into_iter().enumerate()
    {
        let id = format!("emoji{i}");
        ws.send_json(json!({"type":"send","client_id":id,"conv":ann.dm(&bob),"content":{"kind":"emoji","emoji":emoji}})).await;
        let v = ws.until_client_id(&id).await;
        assert_eq!(v["type"] == "ack", ok, "{emoji}: {v}");
        if !ok {
            assert_eq!(v["code"], "invalid", "{v}");
        }
    }
    // Still usable after all that.
    assert_eq!(ws.send_text("ok", &ann.dm(&bob), "fine").await["type"], "ack");

    let huge = format!(
        r#"{{"type":"send","client_id":"h","conv":"{}","content":{{"kind":"text","text":"{}"}}}}"#,
        ann.dm(&bob),
        "y".repeat(70 * 1024)
    );
    let _ = ws.stream.send(tokio_tungstenite::tungstenite::Message::Text(huge.into())).await;
    assert_eq!(ws.until_end(Duration::from_secs(5)).await, Ended::Closed(Some(1009)));
    s.stop().await;
}

use futures_util::SinkExt;

#[tokio::test]
async fn a_client_that_never_reads_is_cut_off_while_others_keep_receiving() {
    let s = TestServer::start_with(|c| {
        c.limits.outbound_queue = 16;
        c.limits.write_timeout_secs = 2;
    })
    .await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    let conv = ann.dm(&bob);
    let mut stalled = s.ws(&bob).await; // bob's device that never reads
    let mut reader = s.ws(&bob).await; // bob's device that keeps up
    let mut ann_ws = s.ws(&ann).await;
    let text = "z".repeat(7_000);
    let total = 1_500;
    let reader_task = tokio::spawn(async move {
        let mut last = 0;
        while last < total {
            let v = reader.next_json().await;
            if v["type"] == "message" {
                last = v["message"]["seq"].as_u64().unwrap();
            }
        }
        last
    });
    for i in 0..total {
        let ack = ann_ws.send_text(&format!("s{i}"), &conv, &text).await;
        assert_eq!(ack["type"], "ack");
    }
    assert_eq!(tokio::time::timeout(Duration::from_secs(30), reader_task).await.unwrap().unwrap(), total);
    // The stalled device got cut off: reading now drains what the kernel buffered, then ends
    // well before all the messages.
    let mut got = 0;
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(10), futures_util::StreamExt::next(&mut stalled.stream)).await.expect("ends") {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(_))) => got += 1,
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(f))) => {
                break Some(f.map(|f| u16::from(f.code)));
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break None,
        }
    };
    assert!(got < total, "the stalled client was dropped after {got} frames");
    assert!(matches!(ended, None | Some(Some(4008))), "{ended:?}");
    s.stop().await;
}
