//! Forwarding end to end: copies and chat-history cards to several conversations, live
//! delivery, idempotent resends, who may forward what where, and files readable in a target
//! only through the forward.

mod common;

use common::{TestServer, User};
use serde_json::{Value, json};

async fn upload(s: &TestServer, who: &User, name: &str, bytes: Vec<u8>) -> String {
    let resp = reqwest::Client::new()
        .post(s.url(&format!("/api/files?name={name}")))
        .bearer_auth(&who.token)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let body: Value = resp.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

async fn file_status(s: &TestServer, who: &User, id: &str) -> u16 {
    reqwest::Client::new().get(s.url(&format!("/api/files/{id}"))).bearer_auth(&who.token).send().await.unwrap().status().as_u16()
}

async fn forward(s: &TestServer, who: &User, body: Value) -> (u16, Value) {
    s.http().post("/api/forward", Some(&who.token), body).await
}

/// ann, bob and cat, all contacts of ann; ann and bob have talked.
async fn three(s: &TestServer) -> (User, User, User) {
    let (ann, bob, cat) = (s.register("ann").await, s.register("bob").await, s.register("cat").await);
    s.befriend(&ann, &bob).await;
    s.befriend(&ann, &cat).await;
    (ann, bob, cat)
}

#[tokio::test]
async fn copies_and_a_card_reach_every_target_live_and_a_resend_writes_nothing_again() {
    let s = TestServer::start().await;
    let (ann, bob, cat) = three(&s).await;
    let gid = s.group(&ann, "team", &[&bob, &cat]).await;
    let group = format!("g:{gid}");
    let mut a = s.ws(&ann).await;
    let mut c = s.ws(&cat).await;
    let one = a.send_text("m1", &ann.dm(&bob), "hello bob").await["message"]["seq"].as_u64().unwrap();
    let mut b = s.ws(&bob).await;
    let two = b.send_text("m2", &ann.dm(&bob), "你好 ann").await["message"]["seq"].as_u64().unwrap();

    let body = json!({"client_id":"f1","from":{"conv":ann.dm(&bob),"seqs":[two, one]},"to":[ann.dm(&cat), group],"mode":"copies"});
    let (st, out) = forward(&s, &ann, body.clone()).await;
    assert_eq!(st, 200, "{out}");
    let results = out["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for r in results {
        assert!(r["error"].is_null(), "{r}");
        let texts: Vec<&str> = r["messages"].as_array().unwrap().iter().map(|m| m["content"]["text"].as_str().unwrap()).collect();
        assert_eq!(texts, ["hello bob", "你好 ann"], "copies keep the source order");
        assert!(r["messages"].as_array().unwrap().iter().all(|m| m["sender"] == ann.id));
    }
    // cat gets the copies live: two in the 1:1 chat, two in the group.
    let mut got = Vec::new();
    while got.len() < 4 {
        let f = c.next_of("message").await;
        got.push(f["message"]["content"]["text"].as_str().unwrap().to_owned());
    }
    assert_eq!(got.iter().filter(|t| *t == "hello bob").count(), 2);

    // The same client id again: the same messages, nothing new.
    let (st, again) = forward(&s, &ann, body).await;
    assert_eq!(st, 200);
    assert_eq!(again["results"], out["results"]);
    let (_, page) = s.http().get(&format!("/api/conversations/{}/messages", ann.dm(&cat)), Some(&cat.token)).await;
    assert_eq!(page["messages"].as_array().unwrap().iter().filter(|m| m["content"]["kind"] == "text").count(), 2);

    // A card: one message holding both, with names and times, searchable by its contents.
    let (st, out) =
        forward(&s, &ann, json!({"client_id":"f2","from":{"conv":ann.dm(&bob),"seqs":[one, two]},"to":[ann.dm(&cat)],"mode":"card"})).await;
    assert_eq!(st, 200, "{out}");
    let card = &out["results"][0]["messages"][0];
    assert_eq!(card["content"]["kind"], "history");
    let items = card["content"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["name"], "ann");
    assert_eq!(items[1]["name"], "bob");
    assert_eq!(items[1]["content"]["text"], "你好 ann");
    let live = c.next_of("message").await;
    assert_eq!(live["message"]["content"]["kind"], "history");
    let (_, found) = s.http().get("/api/search?q=%E4%BD%A0%E5%A5%BD", Some(&cat.token)).await;
    assert!(found["messages"].as_array().unwrap().iter().any(|m| m["content"]["kind"] == "history"), "{found}");

    // A card of a card is flattened: its items join the new card.
    let card_seq = card["seq"].as_u64().unwrap();
    let (st, out) =
        forward(&s, &cat, json!({"client_id":"f3","from":{"conv":ann.dm(&cat),"seqs":[card_seq]},"to":[format!("g:{gid}")],"mode":"card"}))
            .await;
    assert_eq!(st, 200, "{out}");
    assert_eq!(out["results"][0]["messages"][0]["content"]["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn forwarding_needs_read_access_to_the_source_and_write_access_to_each_target() {
    let s = TestServer::start().await;
    let (ann, bob, cat) = three(&s).await;
    let mut a = s.ws(&ann).await;
    let seq = a.send_text("m1", &ann.dm(&bob), "private").await["message"]["seq"].as_u64().unwrap();
    let gid = s.group(&ann, "team", &[&bob, &cat]).await;
    let group = format!("g:{gid}");

    // cat is not in the ann–bob chat.
    let (st, body) =
        forward(&s, &cat, json!({"client_id":"x","from":{"conv":ann.dm(&bob),"seqs":[seq]},"to":[ann.dm(&cat)],"mode":"copies"})).await;
    assert_eq!(st, 404, "{body}");
    // A seq that does not exist, a recalled source, a system message.
    let (st, _) =
        forward(&s, &ann, json!({"client_id":"x","from":{"conv":ann.dm(&bob),"seqs":[999]},"to":[ann.dm(&cat)],"mode":"copies"})).await;
    assert_eq!(st, 404);
    let gone = a.send_text("m2", &ann.dm(&bob), "oops").await["message"]["seq"].as_u64().unwrap();
    let (st, _) = s.http().post(&format!("/api/conversations/{}/messages/{gone}/recall", ann.dm(&bob)), Some(&ann.token), json!({})).await;
    assert_eq!(st, 200);
    let (st, body) =
        forward(&s, &ann, json!({"client_id":"x","from":{"conv":ann.dm(&bob),"seqs":[seq, gone]},"to":[ann.dm(&cat)],"mode":"card"})).await;
    assert_eq!(st, 403, "{body}");
    let (st, _) = forward(&s, &ann, json!({"client_id":"x","from":{"conv":group,"seqs":[1]},"to":[ann.dm(&cat)],"mode":"copies"})).await;
    assert_eq!(st, 403, "the group-created line is a system message");

    // bob muted in the group: that target is refused, the other still gets the copy.
    let http = s.http();
    let (st, _) = http.post(&format!("/api/groups/{gid}/members/{}/mute", bob.id), Some(&ann.token), json!({"minutes": 10})).await;
    assert_eq!(st, 200);
    let (st, out) =
        forward(&s, &bob, json!({"client_id":"b1","from":{"conv":ann.dm(&bob),"seqs":[seq]},"to":[group, ann.dm(&bob)],"mode":"copies"}))
            .await;
    assert_eq!(st, 200, "{out}");
    assert_eq!(out["results"][0]["error"]["code"], "forbidden");
    assert!(out["results"][0]["messages"].as_array().unwrap().is_empty());
    assert!(out["results"][1]["error"].is_null());
    // cat removed from the group: refused there as not found.
    let (st, _) = http.delete(&format!("/api/groups/{gid}/members/{}", cat.id), Some(&ann.token)).await;
    assert!(st < 300, "{st}");
    let mut c = s.ws(&cat).await;
    let mine = c.send_text("c1", &ann.dm(&cat), "mine").await["message"]["seq"].as_u64().unwrap();
    let (st, out) =
        forward(&s, &cat, json!({"client_id":"c2","from":{"conv":ann.dm(&cat),"seqs":[mine]},"to":[format!("g:{gid}")],"mode":"card"}))
            .await;
    assert_eq!(st, 200);
    assert_eq!(out["results"][0]["error"]["code"], "not_found");

    // Limits and bad input.
    let many: Vec<u64> = (1..=101).collect();
    let (st, _) =
        forward(&s, &ann, json!({"client_id":"x","from":{"conv":ann.dm(&bob),"seqs":many},"to":[ann.dm(&cat)],"mode":"card"})).await;
    assert_eq!(st, 400);
    let fifty: Vec<u64> = (1..=50).collect();
    let five: Vec<String> = (1..=5).map(|g| format!("g:{g}")).collect();
    let (st, body) = forward(&s, &ann, json!({"client_id":"x","from":{"conv":ann.dm(&bob),"seqs":fifty},"to":five,"mode":"copies"})).await;
    assert_eq!(st, 400, "250 copies are over the limit: {body}");
    let targets: Vec<String> = (1..=21).map(|g| format!("g:{g}")).collect();
    let (st, _) = forward(&s, &ann, json!({"client_id":"x","from":{"conv":ann.dm(&bob),"seqs":[seq]},"to":targets,"mode":"card"})).await;
    assert_eq!(st, 400);
    let (st, _) =
        forward(&s, &ann, json!({"client_id":"","from":{"conv":ann.dm(&bob),"seqs":[seq]},"to":[ann.dm(&cat)],"mode":"card"})).await;
    assert_eq!(st, 400);
    let (st, _) =
        forward(&s, &ann, json!({"client_id":"x","from":{"conv":ann.dm(&bob),"seqs":[seq]},"to":[ann.dm(&cat)],"mode":"zip"})).await;
    assert_eq!(st, 400);
}

#[tokio::test]
async fn a_forwarded_file_is_readable_in_the_target_only_through_the_forward() {
    let s = TestServer::start().await;
    let (ann, bob, cat) = three(&s).await;
    let dan = s.register("dan").await;
    s.befriend(&cat, &dan).await;
    let file = upload(&s, &bob, "notes.txt", b"plain notes".to_vec()).await;
    let mut b = s.ws(&bob).await;
    b.send_json(json!({"type":"send","client_id":"f","conv":ann.dm(&bob),"content":{"kind":"file","file_id":file}})).await;
    let seq = b.until_client_id("f").await["message"]["seq"].as_u64().unwrap();
    assert_eq!(file_status(&s, &cat, &file).await, 404, "cat is not in the chat it was sent in");

    // cat cannot send bob's file directly.
    let mut c = s.ws(&cat).await;
    c.send_json(json!({"type":"send","client_id":"steal","conv":cat.dm(&dan),"content":{"kind":"file","file_id":file}})).await;
    assert_eq!(c.until_client_id("steal").await["type"], "error");

    // ann forwards it to cat, as a copy: cat may read it now; dan may not.
    let (st, out) =
        forward(&s, &ann, json!({"client_id":"fw","from":{"conv":ann.dm(&bob),"seqs":[seq]},"to":[ann.dm(&cat)],"mode":"copies"})).await;
    assert_eq!(st, 200, "{out}");
    assert_eq!(file_status(&s, &cat, &file).await, 200);
    assert_eq!(file_status(&s, &dan, &file).await, 404);

    // In a card forwarded on by cat to dan, dan may read it too.
    let (st, out) =
        forward(&s, &ann, json!({"client_id":"fw2","from":{"conv":ann.dm(&bob),"seqs":[seq]},"to":[ann.dm(&cat)],"mode":"card"})).await;
    assert_eq!(st, 200, "{out}");
    let card = out["results"][0]["messages"][0]["seq"].as_u64().unwrap();
    let (st, out) =
        forward(&s, &cat, json!({"client_id":"fw3","from":{"conv":ann.dm(&cat),"seqs":[card]},"to":[cat.dm(&dan)],"mode":"copies"})).await;
    assert_eq!(st, 200, "{out}");
    assert_eq!(file_status(&s, &dan, &file).await, 200);

    // Recalling the forwards takes the file back from those who had it only through them.
    let dan_seq = out["results"][0]["messages"][0]["seq"].as_u64().unwrap();
    let (st, _) =
        s.http().post(&format!("/api/conversations/{}/messages/{dan_seq}/recall", cat.dm(&dan)), Some(&cat.token), json!({})).await;
    assert_eq!(st, 200);
    assert_eq!(file_status(&s, &dan, &file).await, 404);
}
