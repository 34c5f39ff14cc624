//! What each user keeps for themselves, end to end: delete for me, contact remarks, search
//! inside one conversation, and group invite links.

mod common;

use common::TestServer;
use serde_json::{Value, json};

fn seqs(v: &Value) -> Vec<u64> {
    v.as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn delete_for_me_hides_a_message_from_the_hider_only_on_every_device() {
    let s = TestServer::start().await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    s.befriend(&ann, &bob).await;
    let http = s.http();
    let dm = ann.dm(&bob);
    let mut ann_ws = s.ws(&ann).await;
    let keep = ann_ws.send_text("k", &dm, "keep this pineapple").await["message"]["seq"].as_u64().unwrap();
    let gone = ann_ws.send_text("g", &dm, "hide this pineapple").await["message"]["seq"].as_u64().unwrap();
    let mut ann_phone = s.ws(&ann).await;

    let path = format!("/api/conversations/{dm}/messages/{gone}/hide");
    let (st, body) = http.post(&path, Some(&ann.token), json!({})).await;
    assert_eq!(st, 204, "{body}");
    // The hider's other device is told at once.
    let f = ann_phone.next_of("hidden").await;
    assert_eq!((f["conv"].as_str(), f["seq"].as_u64()), (Some(dm.as_str()), Some(gone)));
    // Again: no error.
    assert_eq!(http.post(&path, Some(&ann.token), json!({})).await.0, 204);

    let (_, page) = http.get(&format!("/api/conversations/{dm}/messages"), Some(&ann.token)).await;
    assert!(!seqs(&page["messages"]).contains(&gone) && seqs(&page["messages"]).contains(&keep), "{page}");
    assert_eq!(page["hidden"], json!([gone]), "the page names the hole it left: {page}");
    let (_, page) = http.get(&format!("/api/conversations/{dm}/messages"), Some(&bob.token)).await;
    assert!(seqs(&page["messages"]).contains(&gone), "bob still sees it: {page}");

    let (_, found) = http.get("/api/search?q=pineapple", Some(&ann.token)).await;
    assert_eq!(seqs(&found["messages"]), vec![keep], "{found}");
    let (_, found) = http.get("/api/search?q=pineapple", Some(&bob.token)).await;
    assert_eq!(seqs(&found["messages"]).len(), 2, "{found}");

    // The list's preview skips it for ann, not for bob.
    let (_, conv) = http.get(&format!("/api/conversations/{dm}"), Some(&ann.token)).await;
    assert_eq!(conv["last_message"]["seq"].as_u64(), Some(keep), "{conv}");
    let (_, conv) = http.get(&format!("/api/conversations/{dm}"), Some(&bob.token)).await;
    assert_eq!(conv["last_message"]["seq"].as_u64(), Some(gone), "{conv}");

    // A fresh device's sync leaves it out, and so does a sync of its later changes.
    let mut bob_ws = s.ws(&bob).await;
    bob_ws.send_json(json!({"type":"react","conv":dm,"seq":gone,"emoji":"👍","on":true})).await;
    assert_eq!(
        http.post(&format!("/api/conversations/{dm}/messages/{gone}/reactions"), Some(&bob.token), json!({"emoji":"👍","on":true})).await.0,
        200
    );
    let mut fresh = s.ws(&ann).await;
    let frames = fresh.sync(json!({})).await;
    let synced: Vec<u64> =
        frames.iter().filter(|f| f["message"]["conv"] == dm.as_str()).map(|f| f["message"]["seq"].as_u64().unwrap()).collect();
    assert!(synced.contains(&keep) && !synced.contains(&gone), "{frames:?}");
    let frames = fresh.sync(json!({ dm.clone(): {"seq": gone, "rev": 0} })).await;
    assert!(frames.iter().all(|f| f["message"]["seq"].as_u64() != Some(gone)), "{frames:?}");
}

#[tokio::test]
async fn only_readable_messages_can_be_hidden() {
    let s = TestServer::start().await;
    let (ann, bob, eve) = (s.register("ann").await, s.register("bob").await, s.register("eve").await);
    s.befriend(&ann, &bob).await;
    let http = s.http();
    let dm = ann.dm(&bob);
    let mut ws = s.ws(&ann).await;
    let seq = ws.send_text("x", &dm, "private").await["message"]["seq"].as_u64().unwrap();
    assert_eq!(http.post(&format!("/api/conversations/{dm}/messages/{seq}/hide"), Some(&eve.token), json!({})).await.0, 404);
    assert_eq!(http.post(&format!("/api/conversations/{dm}/messages/999/hide"), Some(&ann.token), json!({})).await.0, 404);
    assert_eq!(http.post(&format!("/api/conversations/{dm}/messages/{seq}/hide"), None, json!({})).await.0, 401);

    // A message deleted for me is no longer mine to forward or save; the other side still may.
    assert_eq!(http.post(&format!("/api/conversations/{dm}/messages/{seq}/hide"), Some(&ann.token), json!({})).await.0, 204);
    let cat = s.register("cat").await;
    s.befriend(&ann, &cat).await;
    s.befriend(&bob, &cat).await;
    let forward = |to: String| json!({"client_id": "fw", "from": {"conv": dm, "seqs": [seq]}, "to": [to], "mode": "copies"});
    assert_eq!(http.post("/api/forward", Some(&ann.token), forward(ann.dm(&cat))).await.0, 404);
    assert_eq!(http.post("/api/favorites", Some(&ann.token), json!({"conv": dm, "seq": seq})).await.0, 404);
    let (st, body) = http.post("/api/forward", Some(&bob.token), forward(bob.dm(&cat))).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(http.post("/api/favorites", Some(&bob.token), json!({"conv": dm, "seq": seq})).await.0, 201);
}

#[tokio::test]
async fn a_remark_is_private_synced_and_searchable() {
    let s = TestServer::start().await;
    let (ann, bob, eve) = (s.register("ann").await, s.register("bob").await, s.register("eve").await);
    s.befriend(&ann, &bob).await;
    let http = s.http();
    let mut ann_phone = s.ws(&ann).await;
    let path = format!("/api/contacts/{}/remark", bob.id);

    let (st, body) = http.send(reqwest::Method::PUT, &path, Some(&ann.token), json!({"remark": " Plumber Bob "})).await;
    assert_eq!((st, body["remark"].as_str()), (200, Some("Plumber Bob")), "{body}");
    let f = ann_phone.next_of("remark").await;
    assert_eq!((f["user"].as_u64(), f["remark"].as_str()), (Some(bob.id), Some("Plumber Bob")));

    let (_, list) = http.get("/api/contacts", Some(&ann.token)).await;
    assert_eq!(list["contacts"][0]["remark"], "Plumber Bob", "{list}");
    let (_, list) = http.get("/api/contacts", Some(&bob.token)).await;
    assert!(list["contacts"][0].get("remark").is_none(), "bob never sees ann's remark: {list}");
    let (_, found) = http.get("/api/search?q=plumber", Some(&ann.token)).await;
    assert_eq!(found["users"][0]["id"].as_u64(), Some(bob.id), "{found}");
    let (_, found) = http.get("/api/search?q=plumber", Some(&bob.token)).await;
    assert_eq!(found["users"].as_array().map(Vec::len), Some(0), "{found}");

    let long = "x".repeat(33);
    assert_eq!(http.send(reqwest::Method::PUT, &path, Some(&ann.token), json!({"remark": long})).await.0, 400);
    // Only for contacts.
    let (st, _) =
        http.send(reqwest::Method::PUT, &format!("/api/contacts/{}/remark", eve.id), Some(&ann.token), json!({"remark": "x"})).await;
    assert_eq!(st, 404);
    // Empty clears.
    let (st, body) = http.send(reqwest::Method::PUT, &path, Some(&ann.token), json!({"remark": ""})).await;
    assert_eq!((st, body["remark"].is_null()), (200, true), "{body}");
    let (_, list) = http.get("/api/contacts", Some(&ann.token)).await;
    assert!(list["contacts"][0].get("remark").is_none(), "{list}");
}

#[tokio::test]
async fn search_inside_one_conversation_finds_only_its_messages() {
    let s = TestServer::start().await;
    let (ann, bob, cat) = (s.register("ann").await, s.register("bob").await, s.register("cat").await);
    s.befriend(&ann, &bob).await;
    s.befriend(&ann, &cat).await;
    let http = s.http();
    let mut ws = s.ws(&ann).await;
    let (with_bob, with_cat) = (ann.dm(&bob), ann.dm(&cat));
    let here = ws.send_text("1", &with_bob, "the walrus song").await["message"]["seq"].as_u64().unwrap();
    ws.send_text("2", &with_cat, "the walrus again").await;
    let (st, found) = http.get(&format!("/api/search?q=walrus&conv={with_bob}"), Some(&ann.token)).await;
    assert_eq!(st, 200, "{found}");
    let hits: Vec<(String, u64)> = found["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["conv"].as_str().unwrap().to_owned(), m["seq"].as_u64().unwrap()))
        .collect();
    assert_eq!(hits, vec![(with_bob.clone(), here)]);
    let (st, _) = http.get(&format!("/api/search?q=walrus&conv={with_bob}"), Some(&cat.token)).await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn group_invite_links_join_by_the_groups_mode_and_die_on_reset() {
    let s = TestServer::start().await;
    let (owner, admin, member) = (s.register("owner").await, s.register("admin").await, s.register("member").await);
    let (joiner, applicant, late) = (s.register("joiner").await, s.register("applicant").await, s.register("late").await);
    s.befriend(&owner, &admin).await;
    s.befriend(&owner, &member).await;
    let http = s.http();
    let gid = s.group(&owner, "open club", &[&admin, &member]).await;
    assert_eq!(http.post(&format!("/api/groups/{gid}/admins/{}", admin.id), Some(&owner.token), json!({})).await.0, 200);
    let link = format!("/api/groups/{gid}/invite-link");

    // Owners and admins see the same token; members and outsiders do not.
    let (st, body) = http.get(&link, Some(&owner.token)).await;
    assert_eq!(st, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 32);
    assert_eq!(http.get(&link, Some(&admin.token)).await.1["token"].as_str(), Some(token.as_str()));
    assert_eq!(http.get(&link, Some(&member.token)).await.0, 403);
    assert_eq!(http.get(&link, Some(&joiner.token)).await.0, 404);
    assert_eq!(http.post(&link, Some(&member.token), json!({})).await.0, 403);
    assert_eq!(http.post(&link, Some(&joiner.token), json!({})).await.0, 404);

    // The link shows the group and joins an open group at once.
    let (st, g) = http.get(&format!("/api/group-invites/{token}"), Some(&joiner.token)).await;
    assert_eq!((st, g["name"].as_str()), (200, Some("open club")), "{g}");
    let (st, ans) = http.post(&format!("/api/group-invites/{token}/join"), Some(&joiner.token), json!({})).await;
    assert_eq!((st, ans["joined"].as_bool()), (200, Some(true)), "{ans}");
    assert_eq!(http.post(&format!("/api/group-invites/{token}/join"), Some(&joiner.token), json!({})).await.0, 409);

    // In an approval group it files an application.
    assert_eq!(http.patch(&format!("/api/groups/{gid}"), Some(&owner.token), json!({"join_mode": "approval"})).await.0, 200);
    let (st, ans) = http.post(&format!("/api/group-invites/{token}/join"), Some(&applicant.token), json!({"message": "let me in"})).await;
    assert_eq!((st, ans["joined"].as_bool()), (200, Some(false)), "{ans}");
    let (_, apps) = http.get(&format!("/api/groups/{gid}/applications"), Some(&owner.token)).await;
    assert_eq!(apps["applications"][0]["user"]["id"].as_u64(), Some(applicant.id), "{apps}");

    // A reset makes the old token worthless.
    let (st, body) = http.post(&link, Some(&admin.token), json!({})).await;
    assert_eq!(st, 200);
    let fresh = body["token"].as_str().unwrap().to_owned();
    assert_ne!(fresh, token);
    assert_eq!(http.get(&format!("/api/group-invites/{token}"), Some(&late.token)).await.0, 404);
    assert_eq!(http.post(&format!("/api/group-invites/{token}/join"), Some(&late.token), json!({})).await.0, 404);
    assert_eq!(http.get(&format!("/api/group-invites/{fresh}"), Some(&late.token)).await.0, 200);
    // Garbage is no token, and the group id alone is not one.
    assert_eq!(http.post(&format!("/api/group-invites/{gid}/join"), Some(&late.token), json!({})).await.0, 404);
    assert_eq!(http.get(&format!("/api/group-invites/{}", fresh.to_uppercase()), Some(&late.token)).await.0, 404);
    assert_eq!(http.get(&format!("/api/group-invites/{fresh}"), None).await.0, 401);
}
