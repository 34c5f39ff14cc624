//! The authorization matrix: every HTTP route and every WebSocket frame type, tried by an
//! anonymous caller, another user, a blocked user, a group member, a group admin, the group
//! owner, a removed member and a deactivated account, with the exact outcome for each.

mod common;

use common::{TestServer, User, Ws};
use serde_json::{Value, json};

const ACTORS: [&str; 8] = ["anonymous", "other", "blocked", "member", "admin", "owner", "removed", "deactivated"];

struct World {
    s: TestServer,
    users: Vec<Option<User>>,
    owner: User,
    admin: User,
    member: User,
    blocked: User,
    other: User,
    gid: u64,
    member_msg: u64,
    /// Another message of the member's, which the "delete for me" row hides (a hidden message
    /// is no longer its hider's to forward or save, so the rows must not share one).
    to_hide: u64,
}

async fn world() -> World {
    let s = TestServer::start().await;
    let owner = s.register("owner").await; // the first user also administers the server
    let other = s.register("other").await;
    let blocked = s.register("blocked").await;
    let member = s.register("member").await;
    let admin = s.register("admin").await;
    let removed = s.register("removed").await;
    let deactivated = s.register("deactivated").await;
    for u in [&admin, &member, &removed, &deactivated, &blocked] {
        s.befriend(&owner, u).await;
    }
    let http = s.http();
    let gid = s.group(&owner, "matrix", &[&admin, &member, &removed, &deactivated]).await;
    let ok = |r: (u16, Value)| assert!(r.0 < 300, "{r:?}");
    ok(http.patch(&format!("/api/groups/{gid}"), Some(&owner.token), json!({"notice": "the notice", "join_mode": "approval"})).await);
    ok(http.post(&format!("/api/groups/{gid}/admins/{}", admin.id), Some(&owner.token), json!({})).await);
    ok(http.delete(&format!("/api/groups/{gid}/members/{}", removed.id), Some(&owner.token)).await);
    ok(http.post(&format!("/api/contacts/{}/block", blocked.id), Some(&owner.token), json!({})).await);
    let mut ws = s.ws(&member).await;
    let member_msg = ws.send_text("m1", &format!("g:{gid}"), "hello group").await["message"]["seq"].as_u64().unwrap();
    let to_hide = ws.send_text("m2", &format!("g:{gid}"), "hide me").await["message"]["seq"].as_u64().unwrap();
    let mut ws = s.ws(&owner).await;
    assert_eq!(ws.send_text("o1", &owner.dm(&member), "hi member").await["type"], "ack");
    ok(http.post(&format!("/api/admin/users/{}/disable", deactivated.id), Some(&owner.token), json!({})).await);
    let users = vec![
        None,
        Some(other.clone()),
        Some(blocked.clone()),
        Some(member.clone()),
        Some(admin.clone()),
        Some(owner.clone()),
        Some(removed),
        Some(deactivated),
    ];
    World { s, users, owner, admin, member, blocked, other, gid, member_msg, to_hide }
}

/// `None` marks a cell that is not run because it would change the world for the next rows;
/// another test covers it.
type Row = (&'static str, reqwest::Method, String, Option<Value>, [Option<u16>; 8]);

#[tokio::test]
async fn every_route_and_frame_against_every_role() {
    use reqwest::Method as M;
    let w = world().await;
    let (g, o, m, a, x) = (w.gid, w.owner.id, w.member.id, w.admin.id, w.other.id);
    let gc = format!("g:{g}");
    let dm = w.owner.dm(&w.member);
    let s1 = w.member_msg;
    let s2 = w.to_hide;
    let all = |logged_in: u16| {
        [Some(401), Some(logged_in), Some(logged_in), Some(logged_in), Some(logged_in), Some(logged_in), Some(logged_in), Some(401)]
    };
    let members_only = |ok: u16| [Some(401), Some(404), Some(404), Some(ok), Some(ok), Some(ok), Some(404), Some(401)];
    let rows: Vec<Row> = vec![
        ("me", M::GET, "/api/me".into(), None, all(200)),
        ("profile", M::GET, format!("/api/users/{o}"), None, all(200)),
        (
            "presence",
            M::GET,
            format!("/api/users/{m}/presence"),
            None,
            [Some(401), Some(403), Some(403), Some(200), Some(200), Some(200), Some(403), Some(401)],
        ),
        ("user search", M::GET, "/api/users?q=owner".into(), None, all(200)),
        ("conversation list", M::GET, "/api/conversations".into(), None, all(200)),
        ("contacts", M::GET, "/api/contacts".into(), None, all(200)),
        ("push key", M::GET, "/api/push/vapid".into(), None, all(200)),
        ("push settings", M::GET, "/api/push/settings".into(), None, all(200)),
        ("push settings change", M::PUT, "/api/push/settings".into(), Some(json!({"preview":"sender","dnd":null})), all(200)),
        // A loopback endpoint is refused for everyone who gets that far (no push service is reached).
        (
            "push subscribe",
            M::POST,
            "/api/push/subscriptions".into(),
            Some(
                json!({"endpoint":"https://127.0.0.1/p","keys":{"p256dh":"BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4","auth":"BTBZMqHH6r4Tts7J_aSIgg"}}),
            ),
            all(400),
        ),
        ("push unsubscribe", M::DELETE, "/api/push/subscriptions".into(), Some(json!({"endpoint":"https://push.example.net/x"})), all(204)),
        ("requests", M::GET, "/api/contacts/requests".into(), None, all(200)),
        ("group conversation", M::GET, format!("/api/conversations/{gc}"), None, members_only(200)),
        ("conversation settings", M::PATCH, format!("/api/conversations/{gc}"), Some(json!({"pinned": false})), members_only(200)),
        ("group history", M::GET, format!("/api/conversations/{gc}/messages"), None, members_only(200)),
        ("read list", M::GET, format!("/api/conversations/{gc}/messages/{s1}/reads"), None, members_only(200)),
        (
            "edit",
            M::PATCH,
            format!("/api/conversations/{gc}/messages/{s1}"),
            Some(json!({"text": "hello group"})),
            [Some(401), Some(404), Some(404), Some(200), Some(403), Some(403), Some(404), Some(401)],
        ),
        (
            "react to a system message",
            M::POST,
            format!("/api/conversations/{gc}/messages/1/reactions"),
            Some(json!({"emoji": "👍", "on": true})),
            members_only(403),
        ),
        ("recall a system message", M::POST, format!("/api/conversations/{gc}/messages/1/recall"), None, members_only(403)),
        ("delete for me", M::POST, format!("/api/conversations/{gc}/messages/{s2}/hide"), None, members_only(204)),
        (
            "group invite link",
            M::GET,
            format!("/api/groups/{g}/invite-link"),
            None,
            [Some(401), Some(404), Some(404), Some(403), Some(200), Some(200), Some(404), Some(401)],
        ),
        (
            "remark",
            M::PUT,
            format!("/api/contacts/{m}/remark"),
            Some(json!({"remark": "M"})),
            [Some(401), Some(404), Some(404), Some(400), Some(404), Some(200), Some(404), Some(401)],
        ),
        ("search in group", M::GET, format!("/api/search?q=hello&conv={gc}"), None, members_only(200)),
        ("search everywhere", M::GET, "/api/search?q=hello".into(), None, all(200)),
        (
            "direct history",
            M::GET,
            format!("/api/conversations/{dm}/messages"),
            None,
            [Some(401), Some(404), Some(404), Some(200), Some(404), Some(200), Some(404), Some(401)],
        ),
        ("group info", M::GET, format!("/api/groups/{g}"), None, all(200)),
        ("my groups", M::GET, "/api/groups".into(), None, all(200)),
        (
            "edit group",
            M::PATCH,
            format!("/api/groups/{g}"),
            Some(json!({"notice": "the notice"})),
            [Some(401), Some(404), Some(404), Some(403), Some(200), Some(200), Some(404), Some(401)],
        ),
        (
            "dissolve",
            M::DELETE,
            format!("/api/groups/{g}"),
            None,
            [Some(401), Some(404), Some(404), Some(403), Some(403), None, Some(404), Some(401)],
        ),
        ("members", M::GET, format!("/api/groups/{g}/members"), None, members_only(200)),
        (
            "applications",
            M::GET,
            format!("/api/groups/{g}/applications"),
            None,
            [Some(401), Some(404), Some(404), Some(403), Some(200), Some(200), Some(404), Some(401)],
        ),
        (
            "approve nobody",
            M::POST,
            format!("/api/groups/{g}/applications/{x}/approve"),
            None,
            [Some(401), Some(404), Some(404), Some(403), Some(404), Some(404), Some(404), Some(401)],
        ),
        (
            "refuse nobody",
            M::POST,
            format!("/api/groups/{g}/applications/{x}/refuse"),
            None,
            [Some(401), Some(404), Some(404), Some(403), Some(404), Some(404), Some(404), Some(401)],
        ),
        // For "other", x is themself: not a contact check but a non-member acting, so 404.
        (
            "add a non-contact",
            M::POST,
            format!("/api/groups/{g}/members"),
            Some(json!({"users": [x]})),
            [Some(401), Some(404), Some(403), Some(403), Some(403), Some(403), Some(403), Some(401)],
        ),
        (
            "remove a non-member",
            M::DELETE,
            format!("/api/groups/{g}/members/{x}"),
            None,
            [Some(401), Some(404), Some(404), Some(403), Some(404), Some(404), Some(404), Some(401)],
        ),
        (
            "unmute the member",
            M::POST,
            format!("/api/groups/{g}/members/{m}/mute"),
            Some(json!({})),
            [Some(401), Some(404), Some(404), Some(403), Some(200), Some(200), Some(404), Some(401)],
        ),
        (
            "mute the owner",
            M::POST,
            format!("/api/groups/{g}/members/{o}/mute"),
            Some(json!({"minutes": 5})),
            [Some(401), Some(404), Some(404), Some(403), Some(403), Some(403), Some(404), Some(401)],
        ),
        (
            "appoint the admin again",
            M::POST,
            format!("/api/groups/{g}/admins/{a}"),
            None,
            [Some(401), Some(404), Some(404), Some(403), Some(403), Some(409), Some(404), Some(401)],
        ),
        (
            "demote a non-admin",
            M::DELETE,
            format!("/api/groups/{g}/admins/{m}"),
            None,
            [Some(401), Some(404), Some(404), Some(403), Some(403), Some(409), Some(404), Some(401)],
        ),
        (
            "transfer to the owner",
            M::POST,
            format!("/api/groups/{g}/transfer"),
            Some(json!({"user": o})),
            [Some(401), Some(404), Some(404), Some(403), Some(403), Some(404), Some(404), Some(401)],
        ),
        (
            "ask the owner to be a contact",
            M::POST,
            "/api/contacts/requests".into(),
            Some(json!({"user": o})),
            [Some(401), Some(200), Some(403), Some(409), Some(409), Some(400), Some(409), Some(401)],
        ),
        (
            "accept a request that is not there",
            M::POST,
            format!("/api/contacts/requests/{x}/accept"),
            None,
            [Some(401), Some(400), Some(404), Some(404), Some(404), Some(200), Some(404), Some(401)],
        ),
        (
            "enable an account",
            M::POST,
            format!("/api/admin/users/{x}/enable"),
            None,
            [Some(401), Some(403), Some(403), Some(403), Some(403), Some(200), Some(403), Some(401)],
        ),
        (
            "disable an account",
            M::POST,
            format!("/api/admin/users/{o}/disable"),
            None,
            [Some(401), Some(403), Some(403), Some(403), Some(403), Some(409), Some(403), Some(401)],
        ),
        ("favourites", M::GET, "/api/favorites".into(), None, all(200)),
        ("save a group message", M::POST, "/api/favorites".into(), Some(json!({"conv": gc, "seq": s1})), members_only(201)),
        ("remove a favourite that is not yours", M::DELETE, "/api/favorites/999999".into(), None, all(404)),
        (
            "forward within the group",
            M::POST,
            "/api/forward".into(),
            Some(json!({"client_id": "authz", "from": {"conv": gc, "seqs": [s1]}, "to": [gc], "mode": "card"})),
            members_only(200),
        ),
        (
            "forward from the owner-member chat",
            M::POST,
            "/api/forward".into(),
            Some(json!({"client_id": "authz-dm", "from": {"conv": dm, "seqs": [1]}, "to": [dm], "mode": "copies"})),
            [Some(401), Some(404), Some(404), Some(403), Some(404), Some(403), Some(404), Some(401)],
        ),
        // Last, since it files applications: outsiders apply, members are already in.
        (
            "join",
            M::POST,
            format!("/api/groups/{g}/join"),
            Some(json!({})),
            [Some(401), Some(200), Some(200), Some(409), Some(409), Some(409), Some(200), Some(401)],
        ),
    ];
    let http = w.s.http();
    let mut failures = Vec::new();
    for (name, method, path, body, want) in rows {
        for (i, user) in w.users.iter().enumerate() {
            let Some(want) = want[i] else { continue };
            let token = user.as_ref().map(|u| u.token.as_str());
            let (got, resp) = http.send(method.clone(), &path, token, body.clone().unwrap_or(json!({}))).await;
            if got != want {
                failures.push(format!("{name} as {}: want {want}, got {got} {resp}", ACTORS[i]));
            }
        }
    }

    // WebSocket frames. Anonymous and deactivated callers cannot even open the socket.
    for i in [0, 7] {
        let token = w.users[i].as_ref().map_or("nope", |u| u.token.as_str());
        match w.s.ws_with(token, None).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 401 => {}
            other => failures.push(format!("socket as {}: want 401, got {:?}", ACTORS[i], other.map(|_| "open"))),
        }
    }
    let ack = "ack";
    let nf = "not_found";
    let fb = "forbidden";
    let ok = "ok";
    let frames: Vec<(&str, Value, [&str; 8])> = vec![
        (
            "send to the group",
            json!({"type":"send","client_id":"CID","conv":gc,"content":{"kind":"text","text":"x"}}),
            ["", nf, nf, ack, ack, ack, nf, ""],
        ),
        (
            "send to owner-member chat",
            json!({"type":"send","client_id":"CID","conv":dm,"content":{"kind":"text","text":"x"}}),
            ["", nf, nf, ack, nf, ack, nf, ""],
        ),
        (
            "send across a block",
            json!({"type":"send","client_id":"CID","conv":w.owner.dm(&w.blocked),"content":{"kind":"text","text":"x"}}),
            ["", nf, fb, nf, nf, fb, nf, ""],
        ),
        ("read the group", json!({"type":"read","conv":gc,"seq":1}), ["", nf, nf, ok, ok, ok, nf, ""]),
        ("type in the group", json!({"type":"typing","conv":gc}), ["", nf, nf, ok, ok, ok, nf, ""]),
        ("sync the group", json!({"type":"sync","cursors":{}}), ["", "0", "0", "3+", "3+", "3+", "0", ""]),
        ("ping", json!({"type":"ping"}), ["", "pong", "pong", "pong", "pong", "pong", "pong", ""]),
    ];
    for i in 1..=6 {
        let user = w.users[i].as_ref().unwrap();
        let mut ws = w.s.ws(user).await;
        for (n, (name, frame, want)) in frames.iter().enumerate() {
            let cid = format!("authz-{i}-{n}");
            let frame = serde_json::from_str::<Value>(&frame.to_string().replace("CID", &cid)).unwrap();
            let got = outcome(&mut ws, &frame, &cid, &gc).await;
            let want = want[i];
            let pass = if let Some(min) = want.strip_suffix('+') {
                got.parse::<usize>().is_ok_and(|n| n >= min.parse().unwrap())
            } else {
                got == want
            };
            if !pass {
                failures.push(format!("frame {name} as {}: want {want}, got {got}", ACTORS[i]));
            }
        }
    }
    assert!(failures.is_empty(), "{} cells differ:\n{}", failures.len(), failures.join("\n"));
    w.s.stop().await;
}

/// What one frame led to: "ack", an error code, "ok" (no answer), "pong", or for a sync the
/// number of messages of the group conversation it returned.
async fn outcome(ws: &mut Ws, frame: &Value, cid: &str, group: &str) -> String {
    ws.send_json(frame.clone()).await;
    match frame["type"].as_str().unwrap() {
        "send" => {
            let v = ws.until_client_id(cid).await;
            if v["type"] == "ack" { "ack".into() } else { v["code"].as_str().unwrap().into() }
        }
        "sync" => {
            let frames = ws.until("synced").await;
            frames.iter().filter(|f| f["message"]["conv"] == group).count().to_string()
        }
        _ => {
            // The frame's answer, if any, comes before the pong of a ping sent after it.
            ws.send_json(json!({"type":"ping"})).await;
            let mut answer = None;
            loop {
                let v = ws.next_json().await;
                match v["type"].as_str() {
                    Some("error") => answer = Some(v["code"].as_str().unwrap().to_owned()),
                    Some("pong") if frame["type"] == "ping" && answer.is_none() => answer = Some("pong".into()),
                    Some("pong") => return answer.unwrap_or_else(|| "ok".into()),
                    _ => {}
                }
            }
        }
    }
}

#[tokio::test]
async fn disabling_an_account_closes_its_sockets_at_once() {
    let w = world().await;
    let mut ws = w.s.ws(&w.member).await;
    let (st, _) = w.s.http().post(&format!("/api/admin/users/{}/disable", w.member.id), Some(&w.owner.token), json!({})).await;
    assert_eq!(st, 200);
    assert_eq!(ws.until_end(std::time::Duration::from_secs(2)).await, common::Ended::Closed(Some(4001)));
    assert_eq!(w.s.http().get("/api/me", Some(&w.member.token)).await.0, 401);
    let (st, body) = w.s.http().post("/api/auth/login", None, json!({"username":"member","password":"member-password"})).await;
    assert_eq!((st, body["error"]["code"].as_str()), (403, Some("account_disabled")));
    let _ = (&w.admin, &w.other);
    w.s.stop().await;
}
