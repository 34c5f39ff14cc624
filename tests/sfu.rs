//! Group calls through the SFU, with participants that are not browsers
//! (`examples/load/sfu_bot.rs`, shared with the load tool's `sfu` scenario): each is a str0m
//! session on its own loopback UDP socket that sends synthetic Opus (with an audio level) and a
//! VP8 camera in three simulcast layers, and records every frame it receives. Each frame carries
//! its sender, layer and a counter, so the tests can tell who got what, at which layer, and
//! whether anything was lost.

mod common;

use std::time::Duration;

use common::{TestServer, User, Ws};
use serde_json::{Value, json};
use sfu_bot::{Media, Opts, summary};

#[path = "../examples/load/sfu_bot.rs"]
mod sfu_bot;

type Bot = sfu_bot::Bot<User>;

/// A participant with small frames, reaching the SFU over UDP (or ICE-TCP with `tcp`).
fn bot(user: &User, ws: Ws, call: &str, level: i8, tcp: bool) -> Bot {
    Bot::start(user.clone(), user.id, &user.name, ws.stream, call, Opts { level, tcp, media: Media::SMALL, rcvbuf: None })
}

async fn call_frame(ws: &mut Ws, ty: &str) -> Value {
    loop {
        let f = ws.next_json().await;
        if f["type"] == ty {
            return f;
        }
    }
}

/// `n` users, all in one group owned by the first; a video call started by the first and
/// answered by the rest; a bot for each. The loudest speaker is the second.
async fn call_of(s: &TestServer, n: usize) -> (String, u64, Vec<Bot>) {
    let mut users = Vec::new();
    for i in 0..n {
        users.push(s.register(&format!("p{i:02}")).await);
    }
    for u in &users[1..] {
        s.befriend(&users[0], u).await;
    }
    let others: Vec<&User> = users[1..].iter().collect();
    let g = s.group(&users[0], "team", &others).await;
    let mut wss = Vec::new();
    for u in &users {
        wss.push(s.ws(u).await);
    }
    wss[0].send_json(json!({"type":"call_invite","conv":format!("g:{g}"),"media":"video"})).await;
    let started = call_frame(&mut wss[0], "call_started").await;
    assert_eq!(started["sfu"], true, "group calls go through the SFU: {started}");
    let call = started["call"].as_str().unwrap().to_owned();
    for w in &mut wss[1..] {
        let ring = call_frame(w, "call_incoming").await;
        assert_eq!(ring["sfu"], true);
        w.send_json(json!({"type":"call_accept","call":call})).await;
        assert_eq!(call_frame(w, "call_accepted").await["sfu"], true);
    }
    let mut bots = Vec::new();
    for (i, (u, w)) in users.iter().zip(wss).enumerate() {
        bots.push(bot(u, w, &call, if i == 1 { -5 } else { -110 }, false));
    }
    (call, g, bots)
}

fn others(bots: &[Bot], me: usize) -> impl Iterator<Item = &Bot> {
    bots.iter().enumerate().filter(move |(i, _)| *i != me).map(|(_, b)| b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_people_each_get_every_voice_and_camera_and_nothing_is_lost() {
    let s = TestServer::start().await;
    let (_, _, bots) = call_of(&s, 16).await;
    for (i, b) in bots.iter().enumerate() {
        let ids: Vec<u64> = others(&bots, i).map(|o| o.user.id).collect();
        b.wait("every other's audio and camera, 10 frames each", |seen| {
            ids.iter().all(|u| seen.count_from(*u, "audio") >= 10 && seen.count_from(*u, "camera") >= 10)
        })
        .await;
    }
    // Without a view, cameras come at the low layer.
    let b0 = &bots[0];
    assert!(b0.seen(|s| s.layers_from(bots[3].user.id, "camera").iter().all(|l| *l == b'q')), "{}", b0.seen(summary));
    // Loss on loopback: every receiver got an unbroken run of each sender's audio frames.
    for b in &bots {
        b.seen(|s| {
            for ((from, source), frames) in &s.got {
                if source == "audio" {
                    let ns: Vec<u32> = frames.iter().map(|(_, n)| *n).collect();
                    assert!(ns.windows(2).all(|w| w[1] == w[0] + 1), "{} lost audio of {from}: {ns:?}", b.user.name);
                }
            }
        });
    }
    // The loud one speaks.
    let loud = bots[1].user.id;
    bots[0].wait("the loudest first among the speakers", |s| s.speakers.last().is_some_and(|l| l.first() == Some(&loud))).await;
    // The metrics count the sessions and the forwarding.
    let metrics = reqwest::get(s.url("/metrics")).await.unwrap().text().await.unwrap();
    let gauge = |name: &str| -> u64 {
        metrics.lines().find_map(|l| l.strip_prefix(&format!("chinwag_{name} "))).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
    };
    assert_eq!(gauge("sfu_participants"), 16, "{metrics}");
    assert!(gauge("sfu_frames_forwarded") > 16 * 15 * 20);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_gets_the_layer_it_asks_for_and_nothing_of_what_it_hides() {
    // Exact layers: the synthetic streams are too small for the bandwidth estimate to mean
    // anything (the rule itself is unit-tested in calls::sfu::layers).
    let s = TestServer::start_with(|c| c.calls.sfu_adapt_to_bandwidth = false).await;
    let (call, _, bots) = call_of(&s, 3).await;
    let (a, b, c) = (&bots[0], bots[1].user.id, bots[2].user.id);
    a.wait("both cameras", |s| s.count_from(b, "camera") > 5 && s.count_from(c, "camera") > 5).await;
    a.send(json!({"type":"call_sfu_view","call":call,"videos":[{"user":b,"source":"camera","layer":"high"}]})).await;
    a.wait("b's camera at the high layer", |s| s.layers_from(b, "camera").ends_with(b"ffffff")).await;
    let hidden = a.seen(|s| s.count_from(c, "camera"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(a.seen(|s| s.count_from(c, "camera")) <= hidden + 1, "c's camera is paused while a hides it");
    a.send(json!({"type":"call_sfu_view","call":call,"videos":[{"user":b,"source":"camera","layer":"medium"},{"user":c,"source":"camera","layer":"low"}]})).await;
    a.wait("b's at medium, c's again at low", |s| {
        s.layers_from(b, "camera").ends_with(b"hhhhh") && s.layers_from(c, "camera").ends_with(b"qqqqq")
    })
    .await;
    // Between the two views c's camera was paused: a gap of about a second in its counters.
    a.seen(|s| {
        let ns: Vec<u32> = s.got[&(c, "camera".to_owned())].iter().map(|(_, n)| *n).collect();
        assert!(ns.windows(2).any(|w| w[1] >= w[0] + 8), "paused while hidden: {ns:?}");
    });
    // Audio flows whatever the view.
    let before = a.seen(|s| s.count_from(c, "audio"));
    a.wait("c's audio goes on", |s| s.count_from(c, "audio") > before + 10).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_who_leaves_or_is_removed_is_cut_off_and_can_come_back_only_while_a_member() {
    let s = TestServer::start().await;
    let (call, g, bots) = call_of(&s, 4).await;
    let owner = &bots[0];
    let (b, c) = (&bots[1], &bots[2]);
    for bot in &bots {
        bot.wait("connected", |s| s.connected).await;
    }
    owner.wait("c's camera", |s| s.count_from(c.user.id, "camera") > 5).await;
    // c hangs up: the others stop getting c's tracks.
    c.send(json!({"type":"call_hangup","call":call})).await;
    owner.wait("c left", |s| s.frames.iter().any(|f| f["type"] == "call_left" && f["user"] == c.user.id)).await;
    owner.wait("c's tracks are gone from the list", |s| s.tracks.values().all(|(u, _)| *u != c.user.id)).await;
    let n = owner.seen(|s| s.count_from(c.user.id, "audio"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(owner.seen(|s| s.count_from(c.user.id, "audio")) <= n + 2, "nothing of c after leaving");
    // c comes back: a new session.
    c.task.abort();
    let mut ws = s.ws(&c.user).await;
    ws.send_json(json!({"type":"call_join","call":call})).await;
    assert_eq!(call_frame(&mut ws, "call_accepted").await["sfu"], true);
    let c2 = bot(&c.user, ws, &call, -110, false);
    c2.wait("b's camera again", |s| s.count_from(b.user.id, "camera") > 5).await;
    // b is the loud one: c, back, is told so at once, although the list did not change.
    c2.wait("who speaks, on arrival", |s| s.speakers.first().is_some_and(|l| l.first() == Some(&b.user.id))).await;
    owner.wait("c's audio again", |s| s.count_from(c.user.id, "audio") > n + 10).await;
    // The owner removes b from the group: b is out of the call at once.
    let (st, body) = s.http().delete(&format!("/api/groups/{g}/members/{}", b.user.id), Some(&owner.user.token)).await;
    assert!(st == 200 || st == 204, "{st} {body}");
    b.wait("b's call ended", |s| s.frames.iter().any(|f| f["type"] == "call_ended")).await;
    owner.wait("b left", |s| s.frames.iter().any(|f| f["type"] == "call_left" && f["user"] == b.user.id)).await;
    let n = owner.seen(|s| s.count_from(b.user.id, "audio"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(owner.seen(|s| s.count_from(b.user.id, "audio")) <= n + 2, "nothing of b after the removal");
    // And cannot come back.
    let mut ws = s.ws(&b.user).await;
    ws.send_json(json!({"type":"call_join","call":call})).await;
    let refused = call_frame(&mut ws, "error").await;
    assert_eq!(refused["code"], "not_found", "{refused}");
    // A stranger's offer for the call is refused too.
    ws.send_json(json!({"type":"call_sfu_offer","call":call,"sdp":"v=0","sources":{}})).await;
    assert_eq!(call_frame(&mut ws, "error").await["code"], "not_found");
    let _ = ws.stream.close(None).await;
    // Everyone hangs up: the call is recorded as answered, since media flowed through the SFU
    // (the server saw the sessions connect; these participants never send call_connected).
    let mut before_hangup = Vec::new();
    for bot in [owner, &bots[3]] {
        before_hangup.push(bot.seen(|s| s.frames.len()));
        bot.send(json!({"type":"call_hangup","call":call})).await;
    }
    c2.wait("the call ended, c being the last one in it", |s| s.frames.iter().any(|f| f["type"] == "call_ended")).await;
    // Nobody got an error while in the call. A frame a bot sends just after its hangup gets
    // "No such call.", and that answer may overtake the queued `call_ended`: for the two who
    // hung up, only what they had received before hanging up counts.
    for (bot, n) in [owner, &bots[3]].into_iter().zip(before_hangup) {
        bot.seen(|s| assert!(s.frames.iter().take(n).all(|f| f["type"] != "error"), "{}", summary(s)));
    }
    c2.seen(|s| assert!(s.frames.iter().take_while(|f| f["type"] != "call_ended").all(|f| f["type"] != "error"), "{}", summary(s)));
    owner
        .wait("the call record", |s| {
            s.frames.iter().any(|f| {
                f["type"] == "message" && f["message"]["content"]["kind"] == "call" && f["message"]["content"]["outcome"] == "answered"
            })
        })
        .await;
    s.stop().await;
}

/// Ann and Bob in a two-member group, in a call of `media` that Bob has answered: their
/// sockets and the call's id.
async fn pair_call(s: &TestServer, media: &str) -> (User, User, Ws, Ws, String) {
    let a = s.register("ann").await;
    let b = s.register("bob").await;
    s.befriend(&a, &b).await;
    let g = s.group(&a, "pair", &[&b]).await;
    let (mut wa, mut wb) = (s.ws(&a).await, s.ws(&b).await);
    wa.send_json(json!({"type":"call_invite","conv":format!("g:{g}"),"media":media})).await;
    let call = call_frame(&mut wa, "call_started").await["call"].as_str().unwrap().to_owned();
    call_frame(&mut wb, "call_incoming").await;
    wb.send_json(json!({"type":"call_accept","call":call})).await;
    call_frame(&mut wb, "call_accepted").await;
    (a, b, wa, wb, call)
}

#[tokio::test]
async fn mesh_frames_are_refused_in_an_sfu_call_and_bad_offers_get_clear_errors() {
    let s = TestServer::start().await;
    let (a, _b, _wa, mut wb, call) = pair_call(&s, "audio").await;
    wb.send_json(json!({"type":"call_offer","call":call,"to":a.id,"sdp":"v=0"})).await;
    assert_eq!(call_frame(&mut wb, "error").await["code"], "invalid");
    wb.send_json(json!({"type":"call_sfu_offer","call":call,"sdp":"not sdp","sources":{}})).await;
    assert_eq!(call_frame(&mut wb, "error").await["code"], "invalid");
    wb.send_json(json!({"type":"call_sfu_offer","call":call,"sdp":"v=0","sources":{"0":"camera","1":"camera"}})).await;
    assert_eq!(call_frame(&mut wb, "error").await["code"], "invalid");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_whose_network_blocks_udp_gets_through_over_tcp_on_the_media_port() {
    let s = TestServer::start().await;
    let (a, b, wa, wb, call) = pair_call(&s, "video").await;
    let udp = bot(&a, wa, &call, -20, false);
    let tcp = bot(&b, wb, &call, -20, true);
    tcp.wait("ann's audio and camera over TCP", |s| s.count_from(a.id, "audio") > 20 && s.count_from(a.id, "camera") > 5).await;
    udp.wait("bob's audio and camera, sent over TCP", |s| s.count_from(b.id, "audio") > 20 && s.count_from(b.id, "camera") > 5).await;
    tcp.seen(|s| assert!(s.udp_in == 0 && s.tcp_in > 50, "bob used TCP only: {} over UDP, {} over TCP", s.udp_in, s.tcp_in));
    s.stop().await;
}
