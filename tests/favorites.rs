//! Favourites ("Saved") end to end: saving what one can read, the copy kept after a recall,
//! search (Chinese too), paging, removal, the sync frames to the user's other devices, files
//! kept downloadable for the owner, and the limits.

mod common;

use common::{TestServer, User};
use serde_json::{Value, json};

async fn save(s: &TestServer, who: &User, conv: &str, seq: u64) -> (u16, Value) {
    s.http().post("/api/favorites", Some(&who.token), json!({"conv": conv, "seq": seq})).await
}

#[tokio::test]
async fn saving_syncs_to_other_devices_and_a_second_save_answers_the_first() {
    let s = TestServer::start().await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    s.befriend(&ann, &bob).await;
    let mut phone = s.ws(&ann).await;
    let mut laptop = s.ws(&ann).await;
    let seq = phone.send_text("m1", &ann.dm(&bob), "remember the milk").await["message"]["seq"].as_u64().unwrap();

    let (st, fav) = save(&s, &ann, &ann.dm(&bob), seq).await;
    assert_eq!(st, 201, "{fav}");
    assert_eq!(fav["content"]["text"], "remember the milk");
    assert_eq!(fav["sender_name"], "ann");
    let frame = laptop.next_of("favorite").await;
    assert_eq!(frame["favorite"], fav);

    let (st, again) = save(&s, &ann, &ann.dm(&bob), seq).await;
    assert_eq!(st, 200);
    assert_eq!(again["id"], fav["id"]);
    laptop.assert_none_of("favorite").await;

    let id = fav["id"].as_u64().unwrap();
    assert_eq!(s.http().delete(&format!("/api/favorites/{id}"), Some(&ann.token)).await.0, 204);
    assert_eq!(laptop.next_of("favorite_removed").await["id"], id);
    assert_eq!(s.http().delete(&format!("/api/favorites/{id}"), Some(&ann.token)).await.0, 404);
    let (_, page) = s.http().get("/api/favorites", Some(&ann.token)).await;
    assert!(page["favorites"].as_array().unwrap().is_empty());
    // bob cannot remove ann's favourites, nor see them.
    let (_, fav) = save(&s, &ann, &ann.dm(&bob), seq).await;
    assert_eq!(s.http().delete(&format!("/api/favorites/{}", fav["id"]), Some(&bob.token)).await.0, 404);
    let (_, page) = s.http().get("/api/favorites", Some(&bob.token)).await;
    assert!(page["favorites"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn only_readable_messages_are_saved_and_a_recall_leaves_the_saved_copy() {
    let s = TestServer::start().await;
    let (ann, bob, cat) = (s.register("ann").await, s.register("bob").await, s.register("cat").await);
    s.befriend(&ann, &bob).await;
    let mut b = s.ws(&bob).await;
    let seq = b.send_text("m1", &ann.dm(&bob), "a secret").await["message"]["seq"].as_u64().unwrap();
    assert_eq!(save(&s, &cat, &ann.dm(&bob), seq).await.0, 404, "cat is not in the chat");
    assert_eq!(save(&s, &ann, &ann.dm(&bob), 99).await.0, 404);
    assert_eq!(save(&s, &ann, "nonsense", 1).await.0, 404);

    let (st, fav) = save(&s, &ann, &ann.dm(&bob), seq).await;
    assert_eq!(st, 201);
    let (st, _) = s.http().post(&format!("/api/conversations/{}/messages/{seq}/recall", ann.dm(&bob)), Some(&bob.token), json!({})).await;
    assert_eq!(st, 200);
    // The saved copy stays (it is ann's copy, as in WeChat); the recalled original cannot be saved anew.
    let (_, page) = s.http().get("/api/favorites", Some(&ann.token)).await;
    assert_eq!(page["favorites"][0]["id"], fav["id"]);
    assert_eq!(page["favorites"][0]["content"]["text"], "a secret");
    let (st, _) = save(&s, &bob, &ann.dm(&bob), seq).await;
    assert_eq!(st, 403, "a recalled message cannot be saved");
}

#[tokio::test]
async fn search_finds_texts_names_and_chinese_and_pages_newest_first() {
    let s = TestServer::start().await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    s.befriend(&ann, &bob).await;
    let mut b = s.ws(&bob).await;
    let texts = ["meeting at noon", "明天下午开会", "buy apples"];
    let mut ids = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        let seq = b.send_text(&format!("m{i}"), &ann.dm(&bob), t).await["message"]["seq"].as_u64().unwrap();
        ids.push(save(&s, &ann, &ann.dm(&bob), seq).await.1["id"].as_u64().unwrap());
    }
    let http = s.http();
    let q = |q: &str| format!("/api/favorites?q={}", q.bytes().map(|b| format!("%{b:02X}")).collect::<String>());
    let (_, found) = http.get(&q("开会"), Some(&ann.token)).await;
    let got: Vec<&Value> = found["favorites"].as_array().unwrap().iter().map(|f| &f["content"]["text"]).collect();
    assert_eq!(got, [&json!("明天下午开会")]);
    let (_, found) = http.get(&q("meet"), Some(&ann.token)).await;
    assert_eq!(found["favorites"].as_array().unwrap().len(), 1);
    let (_, found) = http.get(&q("bob"), Some(&ann.token)).await;
    assert_eq!(found["favorites"].as_array().unwrap().len(), 3, "the sender's name is searchable");
    let (_, found) = http.get(&q("bob"), Some(&bob.token)).await;
    assert!(found["favorites"].as_array().unwrap().is_empty(), "each user searches only their own");

    let (_, page) = http.get("/api/favorites?limit=2", Some(&ann.token)).await;
    let first: Vec<u64> = page["favorites"].as_array().unwrap().iter().map(|f| f["id"].as_u64().unwrap()).collect();
    assert_eq!(first, [ids[2], ids[1]]);
    assert_eq!(page["has_more"], true);
    let (_, page) = http.get(&format!("/api/favorites?limit=2&before={}", ids[1]), Some(&ann.token)).await;
    assert_eq!(page["favorites"][0]["id"], ids[0]);
    assert_eq!(page["has_more"], false);
    assert_eq!(http.get("/api/favorites?limit=0", Some(&ann.token)).await.0, 400);
}

#[tokio::test]
async fn a_saved_file_stays_downloadable_for_its_owner_after_they_leave_the_group() {
    let s = TestServer::start().await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    s.befriend(&ann, &bob).await;
    let gid = s.group(&ann, "team", &[&bob]).await;
    let resp = reqwest::Client::new()
        .post(s.url("/api/files?name=plan.txt"))
        .bearer_auth(&ann.token)
        .header("content-type", "application/octet-stream")
        .body(b"the plan".to_vec())
        .send()
        .await
        .unwrap();
    let file = resp.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let mut a = s.ws(&ann).await;
    a.send_json(json!({"type":"send","client_id":"f","conv":format!("g:{gid}"),"content":{"kind":"file","file_id":file}})).await;
    let seq = a.until_client_id("f").await["message"]["seq"].as_u64().unwrap();
    let (st, fav) = save(&s, &bob, &format!("g:{gid}"), seq).await;
    assert_eq!(st, 201, "{fav}");
    assert_eq!(fav["content"]["kind"], "file");
    let get = |who: &User| {
        let req = reqwest::Client::new().get(s.url(&format!("/api/files/{file}"))).bearer_auth(who.token.clone());
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(s.http().post(&format!("/api/groups/{gid}/leave"), Some(&bob.token), json!({})).await.0, 204);
    assert_eq!(get(&bob).await, 200, "the favourite keeps the file readable for bob");
    let id = fav["id"].as_u64().unwrap();
    assert_eq!(s.http().delete(&format!("/api/favorites/{id}"), Some(&bob.token)).await.0, 204);
    assert_eq!(get(&bob).await, 404, "removing the favourite takes that back");
}
