//! Contacts and groups end to end: several API clients on the real server.

mod common;

use common::TestServer;
use serde_json::json;

#[tokio::test]
async fn contact_requests_flow_to_both_sides_live() {
    let s = TestServer::start().await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    let http = s.http();
    let mut bob_ws = s.ws(&bob).await;
    let mut ann_ws = s.ws(&ann).await;

    let (st, body) = http.post("/api/contacts/requests", Some(&ann.token), json!({"user": bob.id, "message": "It's Ann from work"})).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["request"]["status"], "pending");
    let pushed = bob_ws.next_of("contact_request").await;
    assert_eq!(
        (pushed["request"]["message"].as_str(), pushed["request"]["from"]["id"].as_u64()),
        (Some("It's Ann from work"), Some(ann.id))
    );

    let (_, lists) = http.get("/api/contacts/requests", Some(&bob.token)).await;
    assert_eq!(lists["incoming"][0]["from"]["username"], "ann");
    let (_, lists) = http.get("/api/contacts/requests", Some(&ann.token)).await;
    assert_eq!(lists["outgoing"][0]["to"]["username"], "bob");

    let (st, body) = http.post(&format!("/api/contacts/requests/{}/accept", ann.id), Some(&bob.token), json!({})).await;
    assert_eq!((st, body["contact"]["state"].as_str()), (200, Some("normal")), "{body}");
    // Ann hears that bob accepted, and becoming contacts opens the conversation with a system
    // message for both (the two frames may come in either order).
    let (mut c, mut m) = (None, None);
    while c.is_none() || m.is_none() {
        let f = ann_ws.next_json().await;
        match f["type"].as_str() {
            Some("contact") => c = Some(f),
            Some("message") => m = Some(f),
            _ => {}
        }
    }
    let (c, m) = (c.unwrap(), m.unwrap());
    assert_eq!((c["contact"]["user"]["id"].as_u64(), c["contact"]["state"].as_str()), (Some(bob.id), Some("normal")));
    assert_eq!(m["message"]["content"], json!({"kind":"system","event":{"type":"contact_accepted"}}));
    let (_, list) = http.get("/api/contacts", Some(&ann.token)).await;
    assert_eq!(list["contacts"][0]["user"]["id"], bob.id);
    let (_, convs) = http.get("/api/conversations", Some(&bob.token)).await;
    assert_eq!(convs["conversations"][0]["id"], ann.dm(&bob));

    // Deleting is one-sided: ann sees "deleted", bob "deleted_by".
    let (st, body) = http.delete(&format!("/api/contacts/{}", bob.id), Some(&ann.token)).await;
    assert_eq!((st, body["contact"]["state"].as_str()), (200, Some("deleted")));
    // (Bob's socket first replays his own "normal" from accepting.)
    assert_eq!(bob_ws.next_of("contact").await["contact"]["state"], "normal");
    assert_eq!(bob_ws.next_of("contact").await["contact"]["state"], "deleted_by");
    // A second request to the same user is refused while already contacts; requesting yourself too.
    let (st, _) = http.post("/api/contacts/requests", Some(&bob.token), json!({"user": bob.id})).await;
    assert_eq!(st, 400);
    s.stop().await;
}

#[tokio::test]
async fn refusing_and_blocking_stop_requests_and_messages() {
    let s = TestServer::start().await;
    let (ann, bob, cat) = (s.register("ann").await, s.register("bob").await, s.register("cat").await);
    let http = s.http();
    http.post("/api/contacts/requests", Some(&ann.token), json!({"user": bob.id})).await;
    let (st, body) = http.post(&format!("/api/contacts/requests/{}/refuse", ann.id), Some(&bob.token), json!({})).await;
    assert_eq!((st, body["request"]["status"].as_str()), (200, Some("refused")));
    assert_eq!(
        http.post(&format!("/api/contacts/requests/{}/accept", ann.id), Some(&bob.token), json!({})).await.0,
        404,
        "nothing pending"
    );

    // cat asks bob; bob blocks her from the request.
    http.post("/api/contacts/requests", Some(&cat.token), json!({"user": bob.id})).await;
    let (st, body) = http.post(&format!("/api/contacts/requests/{}/block", cat.id), Some(&bob.token), json!({})).await;
    assert_eq!((st, body["contact"]["state"].as_str()), (200, Some("blocked")));
    let (st, body) = http.post("/api/contacts/requests", Some(&cat.token), json!({"user": bob.id})).await;
    assert_eq!((st, body["error"]["code"].as_str()), (403, Some("forbidden")), "a blocked user cannot re-apply");
    let mut cat_ws = s.ws(&cat).await;
    let refused = cat_ws.send_text("c1", &cat.dm(&bob), "please").await;
    assert_eq!((refused["type"].as_str(), refused["code"].as_str()), (Some("error"), Some("forbidden")));
    // Bob cannot write to her either while he blocks her.
    let mut bob_ws = s.ws(&bob).await;
    assert_eq!(bob_ws.send_text("b1", &cat.dm(&bob), "hm").await["type"], "error");
    let (_, list) = http.get("/api/contacts", Some(&bob.token)).await;
    assert_eq!(list["contacts"][0]["state"], "blocked", "the block list is part of the contact list");
    let (st, _) = http.delete(&format!("/api/contacts/{}/block", cat.id), Some(&bob.token)).await;
    assert_eq!(st, 200);
    assert_eq!(cat_ws.send_text("c2", &cat.dm(&bob), "thanks").await["type"], "ack");
    s.stop().await;
}

#[tokio::test]
async fn the_contacts_only_policy_keeps_strangers_out() {
    let s = TestServer::start_with(|c| c.chat.direct_policy = chinwag::config::DirectPolicy::Contacts).await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    let mut ann_ws = s.ws(&ann).await;
    assert_eq!(ann_ws.send_text("x", &ann.dm(&bob), "hello stranger").await["code"], "forbidden");
    s.befriend(&ann, &bob).await;
    assert_eq!(ann_ws.send_text("y", &ann.dm(&bob), "hello friend").await["type"], "ack");
    s.stop().await;
}

#[tokio::test]
async fn groups_from_creation_to_dissolution() {
    let s = TestServer::start().await;
    let owner = s.register("olga").await;
    let (adam, mia, ned, zoe) = (s.register("adam").await, s.register("mia").await, s.register("ned").await, s.register("zoe").await);
    for u in [&adam, &mia, &ned] {
        s.befriend(&owner, u).await;
    }
    let http = s.http();
    // Only contacts can be added at creation.
    let (st, _) = http.post("/api/groups", Some(&owner.token), json!({"name": "Team", "members": [zoe.id]})).await;
    assert_eq!(st, 403);
    let gid = s.group(&owner, "Team 团队", &[&adam, &mia]).await;
    let conv = format!("g:{gid}");
    let (_, g) = http.get(&format!("/api/groups/{gid}"), Some(&mia.token)).await;
    assert_eq!((g["member_count"].as_u64(), g["my_role"].as_str(), g["join_mode"].as_str()), (Some(3), Some("member"), Some("open")));

    // A message reaches every online member.
    let mut adam_ws = s.ws(&adam).await;
    let mut mia_ws = s.ws(&mia).await;
    let mut owner_ws = s.ws(&owner).await;
    assert_eq!(owner_ws.send_text("g1", &conv, "welcome").await["type"], "ack");
    assert_eq!(adam_ws.next_of("message").await["message"]["content"]["text"], "welcome");
    assert_eq!(mia_ws.next_of("message").await["message"]["content"]["text"], "welcome");

    // Zoe finds the group by name and joins (open group); she does not see older history.
    let (_, found) = http.get("/api/groups?q=team", Some(&zoe.token)).await;
    assert_eq!(found["groups"][0]["id"], gid);
    let (st, body) = http.post(&format!("/api/groups/{gid}/join"), Some(&zoe.token), json!({})).await;
    assert_eq!((st, body["joined"].as_bool()), (200, Some(true)), "{body}");
    let joined = owner_ws.next_of("message").await;
    assert_eq!(joined["message"]["content"]["event"], json!({"type":"joined","user":zoe.id,"by":null}));
    let (_, page) = http.get(&format!("/api/conversations/{conv}/messages"), Some(&zoe.token)).await;
    let kinds: Vec<&str> = page["messages"].as_array().unwrap().iter().map(|m| m["content"]["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["system"], "only her own join event: {page}");
    let (_, page) = http.get(&format!("/api/conversations/{conv}/messages"), Some(&adam.token)).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 3, "created, welcome, joined");

    // Approval mode: ned applies, an admin approves.
    let (st, _) =
        http.patch(&format!("/api/groups/{gid}"), Some(&owner.token), json!({"join_mode": "approval", "notice": "Be nice"})).await;
    assert_eq!(st, 200);
    // The system line carries the notice itself, so members read it where they chat.
    let changed = owner_ws.next_of("message").await;
    assert_eq!(changed["message"]["content"]["event"], json!({"type":"notice_changed","by":owner.id,"notice":"Be nice"}));
    let (st, _) = http.post(&format!("/api/groups/{gid}/admins/{}", adam.id), Some(&owner.token), json!({})).await;
    assert_eq!(st, 200);
    let (st, body) = http.post(&format!("/api/groups/{gid}/join"), Some(&ned.token), json!({"message": "let me in"})).await;
    assert_eq!((st, body["joined"].as_bool()), (200, Some(false)));
    assert_eq!(http.get(&format!("/api/conversations/{conv}/messages"), Some(&ned.token)).await.0, 404, "not a member yet");
    let (st, _) = http.get(&format!("/api/groups/{gid}/applications"), Some(&mia.token)).await;
    assert_eq!(st, 403, "members do not see applications");
    let (_, apps) = http.get(&format!("/api/groups/{gid}/applications"), Some(&adam.token)).await;
    assert_eq!(apps["applications"][0]["message"], "let me in");
    let (st, _) = http.post(&format!("/api/groups/{gid}/applications/{}/approve", ned.id), Some(&adam.token), json!({})).await;
    assert_eq!(st, 200);

    // Mute: an admin mutes a member, who then cannot send.
    let (st, _) = http.post(&format!("/api/groups/{gid}/members/{}/mute", mia.id), Some(&adam.token), json!({"minutes": 10})).await;
    assert_eq!(st, 200);
    assert_eq!(mia_ws.send_text("m1", &conv, "can I talk?").await["code"], "forbidden");
    assert_eq!(http.post(&format!("/api/groups/{gid}/members/{}/mute", owner.id), Some(&adam.token), json!({"minutes": 10})).await.0, 403);
    http.post(&format!("/api/groups/{gid}/members/{}/mute", mia.id), Some(&adam.token), json!({})).await;
    assert_eq!(mia_ws.send_text("m2", &conv, "thanks").await["type"], "ack");

    // Kick: zoe is removed and loses access at once.
    let (st, _) = http.delete(&format!("/api/groups/{gid}/members/{}", zoe.id), Some(&adam.token)).await;
    assert_eq!(st, 204);
    assert_eq!(http.get(&format!("/api/conversations/{conv}/messages"), Some(&zoe.token)).await.0, 404);
    let mut zoe_ws = s.ws(&zoe).await;
    assert_eq!(zoe_ws.send_text("z1", &conv, "hey").await["code"], "not_found");

    let (_, members) = http.get(&format!("/api/groups/{gid}/members"), Some(&mia.token)).await;
    let roles: Vec<(&str, &str)> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["user"]["username"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    assert_eq!(roles, vec![("olga", "owner"), ("adam", "admin"), ("mia", "member"), ("ned", "member")]);

    // The owner cannot leave before transferring; after transferring, they can.
    assert_eq!(http.post(&format!("/api/groups/{gid}/leave"), Some(&owner.token), json!({})).await.0, 409);
    let (st, g) = http.post(&format!("/api/groups/{gid}/transfer"), Some(&owner.token), json!({"user": adam.id})).await;
    assert_eq!((st, g["my_role"].as_str()), (200, Some("admin")));
    assert_eq!(http.post(&format!("/api/groups/{gid}/leave"), Some(&owner.token), json!({})).await.0, 204);
    assert_eq!(owner_ws.next_of("group_gone").await["reason"], "left");

    // Dissolving: only the (new) owner; afterwards history stays readable but nobody writes.
    assert_eq!(http.delete(&format!("/api/groups/{gid}"), Some(&mia.token)).await.0, 403);
    assert_eq!(http.delete(&format!("/api/groups/{gid}"), Some(&adam.token)).await.0, 204);
    assert_eq!(mia_ws.next_of("group_gone").await["reason"], "dissolved");
    assert_eq!(mia_ws.send_text("m3", &conv, "hello?").await["code"], "forbidden");
    assert_eq!(http.get(&format!("/api/conversations/{conv}/messages"), Some(&mia.token)).await.0, 200);
    s.stop().await;
}

#[tokio::test]
async fn group_limits_hold() {
    let s = TestServer::start_with(|c| {
        c.groups.max_members = 3;
        c.groups.max_groups_per_user = 2;
    })
    .await;
    let (a, b, c, d) = (s.register("aaa").await, s.register("bbb").await, s.register("ccc").await, s.register("ddd").await);
    let gid = s.group(&a, "small", &[]).await;
    let http = s.http();
    for u in [&b, &c] {
        assert_eq!(http.post(&format!("/api/groups/{gid}/join"), Some(&u.token), json!({})).await.0, 200);
    }
    let (st, body) = http.post(&format!("/api/groups/{gid}/join"), Some(&d.token), json!({})).await;
    assert_eq!((st, body["error"]["code"].as_str()), (409, Some("limit_reached")));
    s.group(&d, "one", &[]).await;
    s.group(&d, "two", &[]).await;
    let (st, _) = http.post("/api/groups", Some(&d.token), json!({"name": "three"})).await;
    assert_eq!(st, 409, "groups per user");
    s.stop().await;
}
