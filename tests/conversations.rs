//! The conversation experience end to end: read receipts, recall, edit, replies, reactions,
//! mentions, typing, presence, the conversation list, sync of changes, and search.

mod common;

use std::time::Duration;

use common::TestServer;
use serde_json::{Value, json};

fn conv_of<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["conversations"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("{id} not in {list}"))
}

#[tokio::test]
async fn read_receipts_in_direct_and_group_chats() {
    let s = TestServer::start().await;
    let (ann, bob, cat) = (s.register("ann").await, s.register("bob").await, s.register("cat").await);
    s.befriend(&ann, &bob).await;
    s.befriend(&ann, &cat).await;
    let http = s.http();
    let dm = ann.dm(&bob);
    let mut ann_ws = s.ws(&ann).await;
    let mut bob_ws = s.ws(&bob).await;
    for i in 0..3 {
        ann_ws.send_text(&format!("r{i}"), &dm, "ping").await;
    }
    let (_, list) = http.get("/api/conversations", Some(&bob.token)).await;
    let c = conv_of(&list, &dm);
    assert_eq!((c["unread"].as_u64(), c["last_seq"].as_u64()), (Some(3), Some(4)), "the system message counts too: {c}");
    let (_, list) = http.get("/api/conversations", Some(&ann.token)).await;
    assert_eq!(conv_of(&list, &dm)["unread"], 0, "your own messages are read");

    bob_ws.send_json(json!({"type":"read","conv":dm,"seq":4})).await;
    let r = ann_ws.next_of("read").await;
    assert_eq!(r, json!({"type":"read","conv":dm,"user":bob.id,"seq":4}));
    let (_, list) = http.get("/api/conversations", Some(&ann.token)).await;
    assert_eq!(conv_of(&list, &dm)["peer_read_seq"], 4);
    // Read positions never move back, nor past the end.
    bob_ws.send_json(json!({"type":"read","conv":dm,"seq":2})).await;
    bob_ws.send_json(json!({"type":"read","conv":dm,"seq":99})).await;
    ann_ws.assert_none_of("read").await;

    // In a group, "read by N" comes from the reads route.
    let gid = s.group(&ann, "trio", &[&bob, &cat]).await;
    let g = format!("g:{gid}");
    let ack = ann_ws.send_text("g1", &g, "group ping").await;
    let seq = ack["message"]["seq"].as_u64().unwrap();
    bob_ws.send_json(json!({"type":"read","conv":g,"seq":seq})).await;
    // The reader's own devices hear it (after the echo of the earlier 1:1 read).
    assert_eq!(bob_ws.next_of("read").await["conv"], dm);
    assert_eq!(bob_ws.next_of("read").await["seq"], seq);
    let (_, reads) = http.get(&format!("/api/conversations/{g}/messages/{seq}/reads"), Some(&ann.token)).await;
    assert_eq!((reads["read_by"].clone(), reads["unread_by"].clone()), (json!([bob.id]), json!([cat.id])));
    s.stop().await;
}

#[tokio::test]
async fn recall_edit_reply_and_react() {
    let s = TestServer::start().await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    let http = s.http();
    let dm = ann.dm(&bob);
    let mut ann_ws = s.ws(&ann).await;
    let mut bob_ws = s.ws(&bob).await;
    let first = ann_ws.send_text("a1", &dm, "first draft").await["message"]["seq"].as_u64().unwrap();
    bob_ws.next_of("message").await;

    // Edit: only the sender; everyone sees the change as an update.
    let (st, _) = http.patch(&format!("/api/conversations/{dm}/messages/{first}"), Some(&bob.token), json!({"text":"bob's words"})).await;
    assert_eq!(st, 403);
    let (st, m) = http.patch(&format!("/api/conversations/{dm}/messages/{first}"), Some(&ann.token), json!({"text":"final text"})).await;
    assert_eq!((st, m["content"]["text"].as_str()), (200, Some("final text")));
    assert!(m["edited_at"].as_u64().is_some());
    let u = bob_ws.next_of("update").await;
    assert_eq!((u["message"]["seq"].as_u64(), u["message"]["content"]["text"].as_str()), (Some(first), Some("final text")));

    // Reply: quotes the original.
    bob_ws.send_json(json!({"type":"send","client_id":"b1","conv":dm,"content":{"kind":"text","text":"agreed"},"reply_to":first})).await;
    let ack = bob_ws.until_client_id("b1").await;
    assert_eq!(ack["message"]["reply_to"], json!({"seq": first, "sender": ann.id, "preview": "final text"}));
    bob_ws.send_json(json!({"type":"send","client_id":"b2","conv":dm,"content":{"kind":"text","text":"?"},"reply_to":999})).await;
    assert_eq!(bob_ws.until_client_id("b2").await["code"], "invalid");

    // Reactions: a set per user, counted per emoji.
    for (who, emoji) in [(&bob, "👍"), (&ann, "👍"), (&bob, "🎉")] {
        let (st, _) = http
            .post(&format!("/api/conversations/{dm}/messages/{first}/reactions"), Some(&who.token), json!({"emoji":emoji,"on":true}))
            .await;
        assert_eq!(st, 200);
    }
    let (_, m) =
        http.post(&format!("/api/conversations/{dm}/messages/{first}/reactions"), Some(&bob.token), json!({"emoji":"👍","on":true})).await;
    assert_eq!(m["reactions"], json!({"👍":[bob.id, ann.id],"🎉":[bob.id]}), "adding twice changes nothing");
    let (_, m) =
        http.post(&format!("/api/conversations/{dm}/messages/{first}/reactions"), Some(&bob.token), json!({"emoji":"🎉","on":false})).await;
    assert_eq!(m["reactions"], json!({"👍":[bob.id, ann.id]}));
    let (st, _) =
        http.post(&format!("/api/conversations/{dm}/messages/{first}/reactions"), Some(&bob.token), json!({"emoji":"abc","on":true})).await;
    assert_eq!(st, 400);

    // Recall: not someone else's.
    let (st, _) = http.post(&format!("/api/conversations/{dm}/messages/{first}/recall"), Some(&bob.token), json!({})).await;
    assert_eq!(st, 403);
    let late = ann_ws.send_text("a2", &dm, "oops").await["message"]["seq"].as_u64().unwrap();
    let (st, m) = http.post(&format!("/api/conversations/{dm}/messages/{late}/recall"), Some(&ann.token), json!({})).await;
    assert_eq!((st, m["content"].clone()), (200, json!({"kind":"recalled"})), "{m}");
    assert_eq!(m["recalled"]["by"], ann.id);
    let (_, page) = http.get(&format!("/api/conversations/{dm}/messages"), Some(&bob.token)).await;
    let tomb = page["messages"].as_array().unwrap().iter().find(|x| x["seq"] == late).unwrap();
    assert_eq!(tomb["content"]["kind"], "recalled", "the tombstone is what everyone sees");
    assert!(!page.to_string().contains("oops"));
    s.stop().await;
}

#[tokio::test]
async fn senders_cannot_recall_after_the_window() {
    let s = TestServer::start_with(|c| c.chat.recall_window_secs = 0).await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    let dm = ann.dm(&bob);
    let mut ann_ws = s.ws(&ann).await;
    let seq = ann_ws.send_text("a", &dm, "too late").await["message"]["seq"].as_u64().unwrap();
    // The window is zero: any time after the send is too late (a millisecond tick at most).
    tokio::time::sleep(Duration::from_millis(2)).await;
    let (st, body) = s.http().post(&format!("/api/conversations/{dm}/messages/{seq}/recall"), Some(&ann.token), json!({})).await;
    assert_eq!((st, body["error"]["message"].as_str()), (403, Some("It is too late to recall this message.")));
    s.stop().await;
}

#[tokio::test]
async fn group_admins_recall_anything_and_mentions_mark_unread() {
    let s = TestServer::start().await;
    let (own, bob, cat) = (s.register("own").await, s.register("bob").await, s.register("cat").await);
    s.befriend(&own, &bob).await;
    s.befriend(&own, &cat).await;
    let gid = s.group(&own, "g", &[&bob, &cat]).await;
    let g = format!("g:{gid}");
    let http = s.http();
    let mut bob_ws = s.ws(&bob).await;
    let mut own_ws = s.ws(&own).await;
    let bad = bob_ws.send_text("b1", &g, "spam").await["message"]["seq"].as_u64().unwrap();
    let (st, m) = http.post(&format!("/api/conversations/{g}/messages/{bad}/recall"), Some(&cat.token), json!({})).await;
    assert_eq!(st, 403, "{m}");
    let (st, m) = http.post(&format!("/api/conversations/{g}/messages/{bad}/recall"), Some(&own.token), json!({})).await;
    assert_eq!((st, m["recalled"]["by"].as_u64()), (200, Some(own.id)));

    // Mentions: cat is mentioned; @all is for admins only.
    bob_ws
        .send_json(json!({"type":"send","client_id":"b2","conv":g,"content":{"kind":"text","text":"@cat look"},"mentions":[cat.id]}))
        .await;
    assert_eq!(bob_ws.until_client_id("b2").await["message"]["mentions"], json!([cat.id]));
    let (_, list) = http.get("/api/conversations", Some(&cat.token)).await;
    assert_eq!(conv_of(&list, &g)["mentioned"], true);
    let (_, list) = http.get("/api/conversations", Some(&own.token)).await;
    assert_eq!(conv_of(&list, &g)["mentioned"], false);
    bob_ws.send_json(json!({"type":"send","client_id":"b3","conv":g,"content":{"kind":"text","text":"@all"},"mention_all":true})).await;
    assert_eq!(bob_ws.until_client_id("b3").await["code"], "forbidden");
    bob_ws.send_json(json!({"type":"send","client_id":"b4","conv":g,"content":{"kind":"text","text":"@zoe"},"mentions":[999]})).await;
    assert_eq!(bob_ws.until_client_id("b4").await["code"], "invalid", "only members can be mentioned");
    own_ws
        .send_json(json!({"type":"send","client_id":"o1","conv":g,"content":{"kind":"text","text":"@all meeting"},"mention_all":true}))
        .await;
    let seq = own_ws.until_client_id("o1").await["message"]["seq"].as_u64().unwrap();
    let (_, list) = http.get("/api/conversations", Some(&bob.token)).await;
    assert_eq!(conv_of(&list, &g)["mentioned"], true, "@all marks everyone");
    bob_ws.send_json(json!({"type":"read","conv":g,"seq":seq})).await;
    bob_ws.next_of("read").await;
    let (_, list) = http.get("/api/conversations", Some(&bob.token)).await;
    assert_eq!((conv_of(&list, &g)["mentioned"].as_bool(), conv_of(&list, &g)["unread"].as_u64()), (Some(false), Some(0)));
    s.stop().await;
}

#[tokio::test]
async fn typing_is_forwarded_not_stored_and_rate_limited() {
    let s = TestServer::start().await;
    let (ann, bob, eve) = (s.register("ann").await, s.register("bob").await, s.register("eve").await);
    let dm = ann.dm(&bob);
    let mut ann_ws = s.ws(&ann).await;
    let mut bob_ws = s.ws(&bob).await;
    ann_ws.send_json(json!({"type":"typing","conv":dm})).await;
    assert_eq!(bob_ws.next_of("typing").await, json!({"type":"typing","conv":dm,"user":ann.id}));
    ann_ws.send_json(json!({"type":"typing","conv":dm})).await;
    bob_ws.assert_none_of("typing").await;
    let mut eve_ws = s.ws(&eve).await;
    eve_ws.send_json(json!({"type":"typing","conv":dm})).await;
    assert_eq!(eve_ws.next_json().await["code"], "not_found");
    let (_, page) = s.http().get(&format!("/api/conversations/{dm}/messages"), Some(&bob.token)).await;
    assert!(page["messages"].as_array().unwrap().is_empty());
    s.stop().await;
}

#[tokio::test]
async fn presence_reaches_contacts_only_and_can_be_hidden() {
    let s = TestServer::start().await;
    let (ann, bob, eve) = (s.register("ann").await, s.register("bob").await, s.register("eve").await);
    s.befriend(&ann, &bob).await;
    let http = s.http();
    let mut bob_ws = s.ws(&bob).await;
    let ann_ws = s.ws(&ann).await;
    assert_eq!(bob_ws.next_of("presence").await, json!({"type":"presence","user":ann.id,"online":true,"last_seen":null}));
    let (st, p) = http.get(&format!("/api/users/{}/presence", ann.id), Some(&bob.token)).await;
    assert_eq!((st, p["online"].as_bool()), (200, Some(true)));
    assert_eq!(http.get(&format!("/api/users/{}/presence", ann.id), Some(&eve.token)).await.0, 403, "strangers do not see it");
    drop(ann_ws);
    let off = bob_ws.next_of("presence").await;
    assert_eq!(off["online"], false);
    assert!(off["last_seen"].as_u64().is_some());
    // Hidden presence: nothing is pushed and the route refuses.
    http.patch("/api/me", Some(&ann.token), json!({"hide_presence": true})).await;
    let _ann_ws = s.ws(&ann).await;
    bob_ws.assert_none_of("presence").await;
    assert_eq!(http.get(&format!("/api/users/{}/presence", ann.id), Some(&bob.token)).await.0, 403);
    s.stop().await;
}

#[tokio::test]
async fn the_conversation_list_pins_mutes_hides_and_syncs_devices() {
    let s = TestServer::start().await;
    let (ann, bob, cat) = (s.register("ann").await, s.register("bob").await, s.register("cat").await);
    let http = s.http();
    let mut bob_ws = s.ws(&bob).await;
    let mut cat_ws = s.ws(&cat).await;
    bob_ws.send_text("b", &ann.dm(&bob), "from bob").await;
    cat_ws.send_text("c", &ann.dm(&cat), "from cat").await;
    let ids = |v: &Value| v["conversations"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    let (_, list) = http.get("/api/conversations", Some(&ann.token)).await;
    assert_eq!(ids(&list), vec![ann.dm(&cat), ann.dm(&bob)], "newest activity first");

    let mut ann_other_device = s.ws(&ann).await;
    let (st, c) =
        http.patch(&format!("/api/conversations/{}", ann.dm(&bob)), Some(&ann.token), json!({"pinned": true, "muted": true})).await;
    assert_eq!((st, c["pinned"].as_bool(), c["muted"].as_bool()), (200, Some(true), Some(true)));
    let pushed = ann_other_device.next_of("conversation").await;
    assert_eq!(pushed["conversation"]["pinned"], true, "every device of the user hears it");
    let (_, list) = http.get("/api/conversations", Some(&ann.token)).await;
    assert_eq!(ids(&list), vec![ann.dm(&bob), ann.dm(&cat)], "pinned first");

    http.patch(&format!("/api/conversations/{}", ann.dm(&cat)), Some(&ann.token), json!({"hidden": true})).await;
    let (_, list) = http.get("/api/conversations", Some(&ann.token)).await;
    assert_eq!(ids(&list), vec![ann.dm(&bob)]);
    let (_, all) = http.get("/api/conversations?hidden=true", Some(&ann.token)).await;
    assert_eq!(all["conversations"].as_array().unwrap().len(), 2);
    cat_ws.send_text("c2", &ann.dm(&cat), "again").await;
    let (_, list) = http.get("/api/conversations", Some(&ann.token)).await;
    assert_eq!(ids(&list).len(), 2, "a new message shows it again");
    assert_eq!(http.patch(&format!("/api/conversations/{}", bob.dm(&cat)), Some(&ann.token), json!({"pinned": true})).await.0, 404);
    s.stop().await;
}

#[tokio::test]
async fn sync_brings_changes_made_while_offline() {
    let s = TestServer::start().await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    let dm = ann.dm(&bob);
    let http = s.http();
    let mut ann_ws = s.ws(&ann).await;
    for i in 1..=3 {
        ann_ws.send_text(&format!("s{i}"), &dm, &format!("n{i}")).await;
    }
    // Bob synced everything, then went away while ann edited and reacted.
    let mut bob_ws = s.ws(&bob).await;
    assert_eq!(bob_ws.sync(json!({})).await.len(), 3);
    drop(bob_ws);
    http.patch(&format!("/api/conversations/{dm}/messages/2"), Some(&ann.token), json!({"text":"n2 fixed"})).await;
    http.post(&format!("/api/conversations/{dm}/messages/1/reactions"), Some(&ann.token), json!({"emoji":"❤️","on":true})).await;
    ann_ws.send_text("s4", &dm, "n4").await;
    let mut bob_ws = s.ws(&bob).await;
    let got = bob_ws.sync(json!({ dm.clone(): {"seq": 3, "rev": 0} })).await;
    let summary: Vec<(String, u64)> =
        got.iter().map(|f| (f["type"].as_str().unwrap().to_owned(), f["message"]["seq"].as_u64().unwrap())).collect();
    assert_eq!(summary, vec![("update".into(), 2), ("update".into(), 1), ("message".into(), 4)]);
    let rev = got[1]["message"]["rev"].as_u64().unwrap();
    // With the newest rev, nothing more comes.
    let again = bob_ws.sync(json!({ dm.clone(): {"seq": 4, "rev": rev} })).await;
    assert!(again.is_empty(), "{again:?}");
    s.stop().await;
}

#[tokio::test]
async fn search_finds_english_and_chinese_only_where_you_may_read() {
    let s = TestServer::start().await;
    let (ann, bob, eve) = (s.register("ann").await, s.register("bob").await, s.register("eve").await);
    let http = s.http();
    let mut ann_ws = s.ws(&ann).await;
    let mut eve_ws = s.ws(&eve).await;
    for (i, t) in ["Meeting moved to Friday", "我们明天在北京开会", "lunch?", "北京烤鸭很好吃"].iter().enumerate() {
        ann_ws.send_text(&format!("t{i}"), &ann.dm(&bob), t).await;
    }
    eve_ws.send_text("e", &eve.dm(&ann), "secret meeting notes").await;
    let texts =
        |v: &Value| v["messages"].as_array().unwrap().iter().map(|m| m["content"]["text"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    let (_, r) = http.get("/api/search?q=meet", Some(&bob.token)).await;
    assert_eq!(texts(&r), vec!["Meeting moved to Friday"], "prefix match, and not eve's chat with ann");
    let (_, r) = http.get("/api/search?q=meet", Some(&ann.token)).await;
    assert_eq!(texts(&r), vec!["secret meeting notes", "Meeting moved to Friday"], "newest first");
    let (_, r) = http.get(&format!("/api/search?q={}", urlencode("北京")), Some(&bob.token)).await;
    assert_eq!(texts(&r), vec!["北京烤鸭很好吃", "我们明天在北京开会"]);
    let (_, r) = http.get(&format!("/api/search?q={}", urlencode("明天开会")), Some(&bob.token)).await;
    assert!(texts(&r).is_empty(), "pairs must all be present: 天开 is not");
    let (_, r) = http.get(&format!("/api/search?q={}", urlencode("在北京")), Some(&bob.token)).await;
    assert_eq!(texts(&r), vec!["我们明天在北京开会"]);
    let (st, _) = http.get(&format!("/api/search?q=meet&conv={}", ann.dm(&bob)), Some(&eve.token)).await;
    assert_eq!(st, 404, "no searching other people's chats");
    let (_, r) = http.get(&format!("/api/search?q=lunch&conv={}", ann.dm(&bob)), Some(&bob.token)).await;
    assert_eq!(texts(&r), vec!["lunch?"]);
    // A recalled message disappears from search.
    http.post(&format!("/api/conversations/{}/messages/3/recall", ann.dm(&bob)), Some(&ann.token), json!({})).await;
    let (_, r) = http.get("/api/search?q=lunch", Some(&bob.token)).await;
    assert!(texts(&r).is_empty());
    // People and groups by name.
    let (_, r) = http.get("/api/search?q=an", Some(&bob.token)).await;
    assert_eq!(r["users"][0]["username"], "ann");
    s.stop().await;
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[tokio::test]
async fn a_recall_takes_the_quoted_text_out_of_every_reply_live_in_history_and_in_sync() {
    let s = TestServer::start().await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    let http = s.http();
    let dm = ann.dm(&bob);
    let mut ann_ws = s.ws(&ann).await;
    let mut bob_ws = s.ws(&bob).await;
    let secret = ann_ws.send_text("a1", &dm, "the secret plan 秘密").await["message"]["seq"].as_u64().unwrap();
    bob_ws.next_of("message").await;
    let mut replies = Vec::new();
    for (i, text) in ["got it", "me too"].iter().enumerate() {
        let cid = format!("b{i}");
        bob_ws.send_json(json!({"type":"send","client_id":cid,"conv":dm,"content":{"kind":"text","text":text},"reply_to":secret})).await;
        let ack = bob_ws.until_client_id(&cid).await;
        assert_eq!(ack["message"]["reply_to"]["preview"], "the secret plan 秘密", "{ack}");
        replies.push(ack["message"]["seq"].as_u64().unwrap());
    }
    let unrelated = ann_ws.send_text("a2", &dm, "unrelated").await["message"]["seq"].as_u64().unwrap();
    // A device of bob's that saw everything so far, then went offline.
    let cursor = json!({ dm.clone(): {"seq": unrelated, "rev": 0} });

    let (st, _) = http.post(&format!("/api/conversations/{dm}/messages/{secret}/recall"), Some(&ann.token), json!({})).await;
    assert_eq!(st, 200);
    let quote = json!({"seq": secret, "sender": ann.id, "preview": "", "recalled": true});

    // Live: the tombstone and each reply as an update.
    let mut live = Vec::new();
    while live.len() < 3 {
        live.push(bob_ws.next_of("update").await);
    }
    assert!(!json!(live).to_string().contains("secret"), "{live:?}");
    for r in &replies {
        let u = live.iter().find(|u| u["message"]["seq"] == *r).expect("an update for each reply");
        assert_eq!(u["message"]["reply_to"], quote);
    }

    // History.
    let (_, page) = http.get(&format!("/api/conversations/{dm}/messages"), Some(&bob.token)).await;
    assert!(!page.to_string().contains("secret"), "{page}");
    for r in &replies {
        let m = page["messages"].as_array().unwrap().iter().find(|m| m["seq"] == *r).unwrap();
        assert_eq!(m["reply_to"], quote);
    }

    // Sync of the device that was offline: the changed replies come with the tombstone.
    let mut phone = s.ws(&bob).await;
    let frames = phone.sync(cursor).await;
    assert!(!json!(frames).to_string().contains("secret"), "{frames:?}");
    for r in &replies {
        let synced = frames.iter().any(|f| f["message"]["seq"] == *r && f["message"]["reply_to"] == quote)
            || frames
                .iter()
                .any(|f| f["messages"].as_array().is_some_and(|ms| ms.iter().any(|m| m["seq"] == *r && m["reply_to"] == quote)));
        assert!(synced, "reply {r} is synced with the quote taken back: {frames:?}");
    }

    // Nor the conversation list, nor search.
    let (_, list) = http.get("/api/conversations", Some(&bob.token)).await;
    assert!(!list.to_string().contains("secret"), "{list}");
    let (_, found) = http.get("/api/search?q=secret", Some(&bob.token)).await;
    assert_eq!(found["messages"], json!([]), "{found}");

    // A reply to the recalled message is refused.
    bob_ws.send_json(json!({"type":"send","client_id":"b9","conv":dm,"content":{"kind":"text","text":"?"},"reply_to":secret})).await;
    assert_eq!(bob_ws.until_client_id("b9").await["type"], "error");
    s.stop().await;
}
