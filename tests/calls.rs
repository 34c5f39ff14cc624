//! Call signalling end to end over real WebSockets, and the ICE servers route.

mod common;

use common::{TestServer, User, Ws};
use serde_json::{Value, json};

/// Sends `call_invite` and returns the call id from `call_started`.
async fn invite(ws: &mut Ws, conv: &str, media: &str) -> String {
    ws.send_json(json!({"type":"call_invite","conv":conv,"media":media})).await;
    let started = ws.next_of("call_started").await;
    assert_eq!(started["conv"], conv);
    assert_eq!(started["media"], media);
    started["call"].as_str().unwrap().to_owned()
}

/// The next call frame of type `ty` for `call`, skipping everything else.
async fn call_frame(ws: &mut Ws, ty: &str, call: &str) -> Value {
    loop {
        let v = ws.next_of(ty).await;
        if v["call"] == call {
            return v;
        }
    }
}

/// The next call record with this outcome. Records of earlier calls are committed
/// asynchronously and may still arrive after the next call has begun, so they are skipped.
async fn call_record_with(ws: &mut Ws, outcome: &str) -> Value {
    loop {
        let rec = call_record(ws).await;
        if rec["content"]["outcome"] == outcome {
            return rec;
        }
    }
}

/// The next `message` frame carrying a call record.
async fn call_record(ws: &mut Ws) -> Value {
    loop {
        let v = ws.next_of("message").await;
        if v["message"]["content"]["kind"] == "call" {
            return v["message"].clone();
        }
    }
}

async fn pair(s: &TestServer) -> (User, User) {
    let (a, b) = (s.register("ann").await, s.register("bob").await);
    s.befriend(&a, &b).await;
    (a, b)
}

#[tokio::test]
async fn every_device_rings_the_first_answer_wins_and_hangup_records_the_duration() {
    let s = TestServer::start().await;
    let (a, b) = pair(&s).await;
    let mut a1 = s.ws(&a).await;
    let (mut b1, mut b2) = (s.ws(&b).await, s.ws(&b).await);
    let call = invite(&mut a1, &a.dm(&b), "video").await;
    for dev in [&mut b1, &mut b2] {
        let ring = call_frame(dev, "call_incoming", &call).await;
        assert_eq!(ring["from"], a.id);
        assert_eq!(ring["media"], "video");
        assert_eq!(ring["conv"], a.dm(&b));
    }
    assert_eq!(call_frame(&mut a1, "call_ringing", &call).await["user"], b.id);

    b2.send_json(json!({"type":"call_accept","call":call})).await;
    let stop = call_frame(&mut b1, "call_ended", &call).await;
    assert_eq!(stop["reason"], "taken_elsewhere");
    let acc = call_frame(&mut a1, "call_accepted", &call).await;
    assert_eq!(acc["user"], b.id);
    assert_eq!(acc["participants"], json!([a.id, b.id]));
    call_frame(&mut b2, "call_accepted", &call).await;
    // The losing device cannot answer any more.
    b1.send_json(json!({"type":"call_accept","call":call})).await;
    assert_eq!(b1.next_of("error").await["code"], "conflict");

    // Offer, answer and candidates go to the one device in the call, with the sender named.
    b2.send_json(json!({"type":"call_offer","call":call,"to":a.id,"sdp":"v=0 offer"})).await;
    let offer = call_frame(&mut a1, "call_offer", &call).await;
    assert_eq!((offer["from"].as_u64(), offer["sdp"].as_str()), (Some(b.id), Some("v=0 offer")));
    a1.send_json(json!({"type":"call_answer","call":call,"to":b.id,"sdp":"v=0 answer"})).await;
    assert_eq!(call_frame(&mut b2, "call_answer", &call).await["sdp"], "v=0 answer");
    let cand = json!({"candidate":"candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host","sdpMid":"0","sdpMLineIndex":0});
    a1.send_json(json!({"type":"call_candidate","call":call,"to":b.id,"candidate":cand})).await;
    assert_eq!(call_frame(&mut b2, "call_candidate", &call).await["candidate"], cand);
    // Renegotiation (camera on, screen share) is just another offer and answer.
    a1.send_json(json!({"type":"call_offer","call":call,"to":b.id,"sdp":"v=0 screen"})).await;
    assert_eq!(call_frame(&mut b2, "call_offer", &call).await["sdp"], "v=0 screen");
    a1.send_json(json!({"type":"call_media_state","call":call,"muted":true,"camera_off":true,"screen_sharing":false})).await;
    let st = call_frame(&mut b2, "call_media_state", &call).await;
    assert_eq!((st["user"].as_u64(), st["muted"].as_bool(), st["camera_off"].as_bool()), (Some(a.id), Some(true), Some(true)));
    b1.assert_none_of("call_offer").await;
    // A device outside the call cannot inject signalling.
    b1.send_json(json!({"type":"call_offer","call":call,"to":a.id,"sdp":"x"})).await;
    assert_eq!(b1.next_of("error").await["code"], "not_found");

    // Media flows (the device says so), and the duration counts from here.
    b2.send_json(json!({"type":"call_connected","call":call})).await;
    b2.send_json(json!({"type":"call_media_state","call":call,"muted":false,"camera_off":false})).await;
    call_frame(&mut a1, "call_media_state", &call).await;
    a1.send_json(json!({"type":"call_hangup","call":call})).await;
    let end = call_frame(&mut b2, "call_ended", &call).await;
    assert_eq!(end["reason"], "hangup");
    assert!(end["duration_secs"].is_u64(), "{end}");
    assert_eq!(call_frame(&mut a1, "call_ended", &call).await["reason"], "hangup");
    // The call is recorded in the conversation, for both sides, like a message.
    for ws in [&mut a1, &mut b1, &mut b2] {
        let rec = call_record(ws).await;
        assert_eq!(rec["sender"], a.id);
        assert_eq!(rec["content"]["media"], "video");
        assert_eq!(rec["content"]["outcome"], "answered");
        assert_eq!(rec["content"]["duration_secs"], end["duration_secs"]);
    }
    let (st, hist) = s.http().get(&format!("/api/conversations/{}/messages", a.dm(&b)), Some(&b.token)).await;
    assert_eq!(st, 200);
    let last = hist["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["content"]["kind"], "call");
    // A reconnecting device gets it through sync.
    let mut b3 = s.ws(&b).await;
    let synced = b3.sync(json!({})).await;
    assert!(synced.iter().any(|f| f["message"]["content"]["outcome"] == "answered"), "{synced:?}");
    s.stop().await;
}

#[tokio::test]
async fn an_answered_call_whose_media_never_connected_is_recorded_as_failed() {
    let s = TestServer::start().await;
    let (a, b) = pair(&s).await;
    let (mut a1, mut b1, mut b2) = (s.ws(&a).await, s.ws(&b).await, s.ws(&b).await);
    let call = invite(&mut a1, &a.dm(&b), "video").await;
    call_frame(&mut b1, "call_incoming", &call).await;
    b1.send_json(json!({"type":"call_accept","call":call})).await;
    call_frame(&mut a1, "call_accepted", &call).await;
    // Offers and answers go back and forth, but no device ever reports media flowing.
    b1.send_json(json!({"type":"call_offer","call":call,"to":a.id,"sdp":"v=0 offer"})).await;
    call_frame(&mut a1, "call_offer", &call).await;
    a1.send_json(json!({"type":"call_answer","call":call,"to":b.id,"sdp":"v=0 answer"})).await;
    call_frame(&mut b1, "call_answer", &call).await;
    // Only a device in the call may say media flows: B's other device is refused.
    b2.send_json(json!({"type":"call_connected","call":call})).await;
    assert_eq!(b2.next_of("error").await["code"], "not_found");
    b2.send_json(json!({"type":"call_connected","call":"no-such-call"})).await;
    assert_eq!(b2.next_of("error").await["code"], "not_found");
    // The caller gives up: the call ends without a duration, and both sides record it failed.
    a1.send_json(json!({"type":"call_hangup","call":call})).await;
    let end = call_frame(&mut b1, "call_ended", &call).await;
    assert_eq!(end["reason"], "hangup");
    assert!(end.get("duration_secs").is_none(), "no media, no duration: {end}");
    for ws in [&mut a1, &mut b1] {
        let rec = call_record(ws).await;
        assert_eq!(rec["content"], json!({"kind":"call","media":"video","outcome":"failed","duration_secs":0}));
    }
    s.stop().await;
}

#[tokio::test]
async fn declined_cancelled_and_busy_calls_end_with_their_reason_and_are_recorded() {
    let s = TestServer::start().await;
    let (a, b) = pair(&s).await;
    let c = s.register("cat").await;
    s.befriend(&b, &c).await;
    s.befriend(&a, &c).await;
    let (mut a1, mut b1, mut c1) = (s.ws(&a).await, s.ws(&b).await, s.ws(&c).await);

    let call = invite(&mut a1, &a.dm(&b), "audio").await;
    call_frame(&mut b1, "call_incoming", &call).await;
    b1.send_json(json!({"type":"call_reject","call":call})).await;
    assert_eq!(call_frame(&mut a1, "call_ended", &call).await["reason"], "declined");
    assert_eq!(call_record(&mut a1).await["content"], json!({"kind":"call","media":"audio","outcome":"declined","duration_secs":0}));

    let call = invite(&mut a1, &a.dm(&b), "audio").await;
    call_frame(&mut b1, "call_incoming", &call).await;
    a1.send_json(json!({"type":"call_cancel","call":call})).await;
    assert_eq!(call_frame(&mut b1, "call_ended", &call).await["reason"], "cancelled");
    assert_eq!(call_record_with(&mut b1, "cancelled").await["content"]["kind"], "call");

    // B and C are talking: A's call to B is busy at once.
    let bc = invite(&mut b1, &b.dm(&c), "audio").await;
    call_frame(&mut c1, "call_incoming", &bc).await;
    c1.send_json(json!({"type":"call_accept","call":bc})).await;
    call_frame(&mut b1, "call_accepted", &bc).await;
    b1.send_json(json!({"type":"call_connected","call":bc})).await;
    let call = invite(&mut a1, &a.dm(&b), "video").await;
    assert_eq!(call_frame(&mut a1, "call_ended", &call).await["reason"], "busy");
    assert_eq!(call_record_with(&mut a1, "busy").await["content"]["kind"], "call");
    // Nor can B start a second call while in one.
    b1.send_json(json!({"type":"call_invite","conv":a.dm(&b),"media":"audio"})).await;
    assert_eq!(b1.next_of("error").await["code"], "conflict");
    // When C's socket drops, B's call ends with connection_lost.
    drop(c1);
    let end = call_frame(&mut b1, "call_ended", &bc).await;
    assert_eq!(end["reason"], "connection_lost");
    assert_eq!(call_record_with(&mut b1, "answered").await["content"]["kind"], "call");
    s.stop().await;
}

#[tokio::test]
async fn an_unanswered_call_stops_ringing_at_the_timeout_and_is_missed() {
    let s = TestServer::start_with(|c| c.calls.ring_timeout_secs = 1).await;
    let (a, b) = pair(&s).await;
    let (mut a1, mut b1) = (s.ws(&a).await, s.ws(&b).await);
    let started = std::time::Instant::now();
    let call = invite(&mut a1, &a.dm(&b), "video").await;
    call_frame(&mut b1, "call_incoming", &call).await;
    assert_eq!(call_frame(&mut a1, "call_ended", &call).await["reason"], "no_answer");
    assert_eq!(call_frame(&mut b1, "call_ended", &call).await["reason"], "no_answer");
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    assert_eq!(call_record_with(&mut b1, "missed").await["content"]["kind"], "call");
    b1.send_json(json!({"type":"call_accept","call":call})).await;
    assert_eq!(b1.next_of("error").await["code"], "not_found");
    s.stop().await;
}

#[tokio::test]
async fn a_device_that_connects_while_a_call_rings_rings_too() {
    let s = TestServer::start().await;
    let (a, b) = pair(&s).await;
    let mut a1 = s.ws(&a).await;
    let call = invite(&mut a1, &a.dm(&b), "audio").await;
    let mut b1 = s.ws(&b).await;
    call_frame(&mut b1, "call_incoming", &call).await;
    assert_eq!(call_frame(&mut a1, "call_ringing", &call).await["user"], b.id);
    s.stop().await;
}

#[tokio::test]
async fn blocked_users_non_contacts_under_the_contacts_policy_and_outsiders_cannot_call() {
    let s = TestServer::start_with(|c| c.chat.direct_policy = chinwag::config::DirectPolicy::Contacts).await;
    let (a, b) = pair(&s).await;
    let stranger = s.register("zed").await;
    let (st, body) = s.http().post(&format!("/api/contacts/{}/block", a.id), Some(&b.token), json!({})).await;
    assert_eq!(st, 200, "{body}");
    let (mut a1, mut b1, mut z1) = (s.ws(&a).await, s.ws(&b).await, s.ws(&stranger).await);
    a1.send_json(json!({"type":"call_invite","conv":a.dm(&b),"media":"audio"})).await;
    assert_eq!(a1.next_of("error").await["code"], "forbidden");
    b1.send_json(json!({"type":"call_invite","conv":a.dm(&b),"media":"audio"})).await;
    assert_eq!(b1.next_of("error").await["code"], "forbidden", "the blocker cannot call either");
    z1.send_json(json!({"type":"call_invite","conv":stranger.dm(&a),"media":"video"})).await;
    assert_eq!(z1.next_of("error").await["code"], "forbidden");
    // Not a member of the group, not a party of the 1:1: no such conversation.
    let g = s.group(&a, "team", &[]).await;
    z1.send_json(json!({"type":"call_invite","conv":format!("g:{g}"),"media":"audio"})).await;
    assert_eq!(z1.next_of("error").await["code"], "not_found");
    z1.send_json(json!({"type":"call_invite","conv":a.dm(&b),"media":"audio"})).await;
    assert_eq!(z1.next_of("error").await["code"], "not_found");
    b1.assert_none_of("call_incoming").await;
    a1.assert_none_of("call_incoming").await;
    s.stop().await;
}

#[tokio::test]
async fn a_group_call_rings_members_and_people_join_leave_and_share_state() {
    // A mesh (with the SFU, see tests/sfu.rs).
    let s = TestServer::start_with(|c| c.calls.sfu = false).await;
    let names = ["gia", "hal", "ivy", "jon"];
    let mut users = Vec::new();
    for n in names {
        users.push(s.register(n).await);
    }
    for u in &users[1..] {
        s.befriend(&users[0], u).await;
    }
    let g = s.group(&users[0], "team", &[&users[1], &users[2], &users[3]]).await;
    let conv = format!("g:{g}");
    let mut ws = Vec::new();
    for u in &users {
        ws.push(s.ws(u).await);
    }
    let call = invite(&mut ws[0], &conv, "video").await;
    for w in &mut ws[1..] {
        assert_eq!(call_frame(w, "call_incoming", &call).await["from"], users[0].id);
    }
    ws[1].send_json(json!({"type":"call_accept","call":call})).await;
    assert_eq!(call_frame(&mut ws[0], "call_accepted", &call).await["participants"], json!([users[0].id, users[1].id]));
    ws[1].send_json(json!({"type":"call_connected","call":call})).await;
    assert_eq!(call_frame(&mut ws[1], "call_accepted", &call).await["user"], users[1].id);
    ws[2].send_json(json!({"type":"call_reject","call":call})).await;
    assert_eq!(call_frame(&mut ws[2], "call_ended", &call).await["reason"], "declined");
    // Declined, then changed their mind: join.
    ws[2].send_json(json!({"type":"call_join","call":call})).await;
    let joined = call_frame(&mut ws[1], "call_accepted", &call).await;
    assert_eq!(joined["user"], users[2].id);
    assert_eq!(joined["participants"], json!([users[0].id, users[1].id, users[2].id]));
    // The newcomer offers to each one already there.
    for to in [0, 1] {
        ws[2].send_json(json!({"type":"call_offer","call":call,"to":users[to].id,"sdp":format!("offer to {to}")})).await;
        assert_eq!(call_frame(&mut ws[to], "call_offer", &call).await["sdp"], format!("offer to {to}"));
    }
    ws[1].send_json(json!({"type":"call_media_state","call":call,"muted":true,"camera_off":false})).await;
    for to in [0, 2] {
        let m = call_frame(&mut ws[to], "call_media_state", &call).await;
        assert_eq!((m["user"].as_u64(), m["muted"].as_bool()), (Some(users[1].id), Some(true)));
    }
    ws[1].send_json(json!({"type":"call_hangup","call":call})).await;
    for to in [0, 2] {
        assert_eq!(call_frame(&mut ws[to], "call_left", &call).await["user"], users[1].id);
    }
    // Calling the group while its call goes on joins that call (one call per group), with its
    // id and media; the newcomer learns who shares a screen (the state of those still there).
    ws[0].send_json(json!({"type":"call_media_state","call":call,"muted":false,"camera_off":true,"screen_sharing":true})).await;
    call_frame(&mut ws[2], "call_media_state", &call).await;
    ws[3].send_json(json!({"type":"call_invite","conv":conv,"media":"audio"})).await;
    let started = ws[3].next_of("call_started").await;
    assert_eq!((started["call"].as_str(), started["media"].as_str()), (Some(call.as_str()), Some("video")));
    let state = call_frame(&mut ws[3], "call_media_state", &call).await;
    assert_eq!((state["user"].as_u64(), &state["screen_sharing"], &state["camera_off"]), (Some(users[0].id), &json!(true), &json!(true)));
    let joined = call_frame(&mut ws[0], "call_accepted", &call).await;
    assert_eq!((joined["user"].as_u64(), &joined["participants"]), (Some(users[3].id), &json!([users[0].id, users[2].id, users[3].id])));
    ws[0].send_json(json!({"type":"call_hangup","call":call})).await;
    ws[2].send_json(json!({"type":"call_hangup","call":call})).await;
    assert_eq!(call_frame(&mut ws[3], "call_ended", &call).await["reason"], "hangup", "jon, left alone, is hung up");
    let rec = call_record(&mut ws[3]).await;
    assert_eq!((rec["conv"].as_str(), rec["content"]["outcome"].as_str()), (Some(conv.as_str()), Some("answered")));
    s.stop().await;
}

#[tokio::test]
async fn ice_servers_need_a_login_give_expiring_turn_credentials_and_are_rate_limited() {
    let s = TestServer::start_with(|c| c.calls.ice_servers_per_10_min = 3).await;
    let a = s.register("ann").await;
    let http = s.http();
    let (st, _) = http.get("/api/calls/ice-servers", None).await;
    assert_eq!(st, 401);
    let (st, body) = http.get("/api/calls/ice-servers", Some(&a.token)).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["ttl_secs"], 86_400);
    let server = &body["ice_servers"][0];
    let urls: Vec<&str> = server["urls"].as_array().unwrap().iter().map(|u| u.as_str().unwrap()).collect();
    assert!(urls[0].starts_with("stun:127.0.0.1:"), "{urls:?}");
    assert!(urls[1].starts_with("turn:127.0.0.1:") && urls[1].ends_with("?transport=udp"), "{urls:?}");
    let username = server["username"].as_str().unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, a.id.to_string());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let expiry: u64 = expiry.parse().unwrap();
    assert!((now + 86_000..=now + 86_401).contains(&expiry), "{expiry} vs {now}");
    assert_eq!(server["credential"].as_str().unwrap().len(), 28, "base64 of a 20-byte HMAC-SHA1");
    for _ in 0..2 {
        assert_eq!(http.get("/api/calls/ice-servers", Some(&a.token)).await.0, 200);
    }
    let resp = http.client.get(s.url("/api/calls/ice-servers")).bearer_auth(&a.token).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().get("retry-after").is_some());
    // Another user has their own budget.
    let b = s.register("bob").await;
    assert_eq!(http.get("/api/calls/ice-servers", Some(&b.token)).await.0, 200);
    s.stop().await;
}

#[tokio::test]
async fn without_turn_the_route_answers_an_empty_list() {
    let s = TestServer::start_with(|c| c.turn.enabled = false).await;
    let a = s.register("ann").await;
    let (st, body) = s.http().get("/api/calls/ice-servers", Some(&a.token)).await;
    assert_eq!(st, 200);
    assert_eq!(body, json!({"ice_servers":[],"ttl_secs":0,"ice_transport_policy":"all"}));
    s.stop().await;
}
