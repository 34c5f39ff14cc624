//! Snapshot tests of the wire shapes: the documented examples of `docs/protocol.md`, both ways.

use super::*;
use crate::ids::UserId;

fn msg() -> Message {
    Message::new("d:3:7".parse().unwrap(), 42, UserId(3), "c9b1".into(), 1_795_766_400_000, Content::Text { text: "hi".into() })
}

/// These strings are the documented examples of docs/protocol.md; a change here is a
/// protocol change and must be made there too.
#[test]
fn server_frames_have_the_documented_shape() {
    let cases = [
        (
            ServerFrame::Hello { user: HelloUser { id: UserId(3), username: "ann".into(), nickname: "Ann".into() } },
            r#"{"type":"hello","user":{"id":3,"username":"ann","nickname":"Ann"}}"#,
        ),
        (
            ServerFrame::Message { message: msg() },
            r#"{"type":"message","message":{"conv":"d:3:7","seq":42,"sender":3,"client_id":"c9b1","ts":1795766400000,"content":{"kind":"text","text":"hi"}}}"#,
        ),
        (
            ServerFrame::Ack { client_id: "c9b1".into(), message: msg() },
            r#"{"type":"ack","client_id":"c9b1","message":{"conv":"d:3:7","seq":42,"sender":3,"client_id":"c9b1","ts":1795766400000,"content":{"kind":"text","text":"hi"}}}"#,
        ),
        (ServerFrame::Synced { reload: vec![], gaps: vec![] }, r#"{"type":"synced"}"#),
        (
            ServerFrame::Synced { reload: vec![], gaps: vec![SyncGap { conv: "d:3:7".parse().unwrap(), after: 41, before: 1042 }] },
            r#"{"type":"synced","gaps":[{"conv":"d:3:7","after":41,"before":1042}]}"#,
        ),
        (
            ServerFrame::error(Some("c9b1".into()), "forbidden", "You cannot write to this conversation."),
            r#"{"type":"error","client_id":"c9b1","code":"forbidden","message":"You cannot write to this conversation."}"#,
        ),
        (ServerFrame::Pong, r#"{"type":"pong"}"#),
        (ServerFrame::FavoriteRemoved { id: 12 }, r#"{"type":"favorite_removed","id":12}"#),
        (ServerFrame::Hidden { conv: "d:3:7".parse().unwrap(), seq: 42 }, r#"{"type":"hidden","conv":"d:3:7","seq":42}"#),
        (
            ServerFrame::Remark { user: UserId(7), remark: Some("Plumber Bob".into()) },
            r#"{"type":"remark","user":7,"remark":"Plumber Bob"}"#,
        ),
        (ServerFrame::Remark { user: UserId(7), remark: None }, r#"{"type":"remark","user":7,"remark":null}"#),
    ];
    for (frame, json) in cases {
        assert_eq!(frame.to_json(), json);
    }
}

#[test]
fn client_frames_parse_from_the_documented_examples() {
    let sync: ClientFrame = serde_json::from_str(r#"{"type":"sync","cursors":{"d:3:7":41,"g:12":0}}"#).unwrap();
    let ClientFrame::Sync { cursors } = sync else { panic!("not sync") };
    assert_eq!(cursors.get(&"d:3:7".parse().unwrap()).map(|c| c.parts()), Some((41, 0)));
    let sync: ClientFrame = serde_json::from_str(r#"{"type":"sync","cursors":{"g:12":{"seq":5,"rev":2}}}"#).unwrap();
    let ClientFrame::Sync { cursors } = sync else { panic!("not sync") };
    assert_eq!(cursors.get(&"g:12".parse().unwrap()).map(|c| c.parts()), Some((5, 2)));
    let send: ClientFrame =
        serde_json::from_str(r#"{"type":"send","client_id":"c9b1","conv":"d:3:7","content":{"kind":"text","text":"hi"}}"#).unwrap();
    assert!(matches!(send, ClientFrame::Send { .. }));
    assert_eq!(serde_json::from_str::<ClientFrame>(r#"{"type":"ping"}"#).unwrap(), ClientFrame::Ping);
}

#[test]
fn malformed_client_frames_are_errors_not_panics() {
    for bad in [
        "",
        "{",
        "[]",
        "null",
        r#"{"type":"nope"}"#,
        r#"{"type":"send"}"#,
        r#"{"type":"send","client_id":"x","conv":"d:2:1","content":{"kind":"text","text":"hi"}}"#,
        r#"{"type":"send","client_id":"x","conv":"d:1:2","content":{"kind":"text","text":"hi","admin":true}}"#,
        r#"{"type":"sync","cursors":{"bogus":1}}"#,
        r#"{"type":"sync","cursors":{"d:1:2":-1}}"#,
    ] {
        assert!(serde_json::from_str::<ClientFrame>(bad).is_err(), "{bad}");
    }
}

#[test]
fn content_validation() {
    assert!(Content::Text { text: "  ".into() }.validate_from_client().is_err());
    assert!(Content::Text { text: "x".repeat(MAX_TEXT_CHARS + 1) }.validate_from_client().is_err());
    assert!(Content::Text { text: "字".repeat(MAX_TEXT_CHARS) }.validate_from_client().is_ok());
    assert!(Content::System { event: SystemEvent::ContactAccepted }.validate_from_client().is_err());
    assert!(Content::Recalled {}.validate_from_client().is_err());
    // Media: clients send only the id; the server fills in the rest.
    let img: Content = serde_json::from_str(r#"{"kind":"image","file_id":"0123456789abcdef0123456789abcdef"}"#).unwrap();
    assert!(img.validate_from_client().is_ok());
    let bad: Content = serde_json::from_str(r#"{"kind":"sticker","file_id":"../../etc/passwd"}"#).unwrap();
    assert!(bad.validate_from_client().is_err());
    // Voice: a waveform of 16 to 64 levels from 0 to 31 and a duration; previews give its length.
    let voice = |ms: u64, wave: Vec<u8>| Content::Voice {
        file_id: "0123456789abcdef0123456789abcdef".into(),
        duration_ms: ms,
        waveform: wave,
        size: 0,
        mime: String::new(),
    };
    assert!(voice(7040, vec![3; 16]).validate_from_client().is_ok());
    assert!(voice(7040, vec![31; 64]).validate_from_client().is_ok());
    assert!(voice(7040, vec![3; 15]).validate_from_client().is_err());
    assert!(voice(7040, vec![3; 65]).validate_from_client().is_err());
    assert!(voice(7040, vec![32; 16]).validate_from_client().is_err());
    assert!(voice(0, vec![3; 16]).validate_from_client().is_err());
    assert_eq!(voice(7040, vec![3; 16]).preview(), "[Voice] 0:07");
    assert_eq!(voice(300, vec![3; 16]).preview(), "[Voice] 0:01");
    assert_eq!(voice(65_600, vec![3; 16]).preview(), "[Voice] 1:06");
}

/// The call frames of the Calls section of docs/protocol.md, both ways.
#[test]
fn call_frames_have_the_documented_shape() {
    let call = || "5f2a9c1e7b3d4a60".to_owned();
    let cand = || IceCandidate {
        candidate: "candidate:1 1 udp 2122260223 192.0.2.7 50000 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
        username_fragment: None,
    };
    let server = [
        (
            ServerFrame::CallStarted { call: call(), conv: "d:3:7".parse().unwrap(), media: CallMedia::Video, sfu: false },
            r#"{"type":"call_started","call":"5f2a9c1e7b3d4a60","conv":"d:3:7","media":"video"}"#,
        ),
        (
            ServerFrame::CallIncoming {
                call: call(),
                conv: "d:3:7".parse().unwrap(),
                from: UserId(3),
                media: CallMedia::Video,
                participants: vec![UserId(3)],
                sfu: false,
            },
            r#"{"type":"call_incoming","call":"5f2a9c1e7b3d4a60","conv":"d:3:7","from":3,"media":"video","participants":[3]}"#,
        ),
        (ServerFrame::CallRinging { call: call(), user: UserId(7) }, r#"{"type":"call_ringing","call":"5f2a9c1e7b3d4a60","user":7}"#),
        (
            ServerFrame::CallAccepted { call: call(), user: UserId(7), participants: vec![UserId(3), UserId(7)], sfu: false },
            r#"{"type":"call_accepted","call":"5f2a9c1e7b3d4a60","user":7,"participants":[3,7]}"#,
        ),
        (ServerFrame::CallLeft { call: call(), user: UserId(9) }, r#"{"type":"call_left","call":"5f2a9c1e7b3d4a60","user":9}"#),
        (
            ServerFrame::CallEnded { call: call(), reason: CallEndReason::Hangup, duration_secs: Some(65) },
            r#"{"type":"call_ended","call":"5f2a9c1e7b3d4a60","reason":"hangup","duration_secs":65}"#,
        ),
        (
            ServerFrame::CallEnded { call: call(), reason: CallEndReason::TakenElsewhere, duration_secs: None },
            r#"{"type":"call_ended","call":"5f2a9c1e7b3d4a60","reason":"taken_elsewhere"}"#,
        ),
        (
            ServerFrame::CallMediaState { call: call(), user: UserId(3), muted: true, camera_off: false, screen_sharing: false },
            r#"{"type":"call_media_state","call":"5f2a9c1e7b3d4a60","user":3,"muted":true,"camera_off":false,"screen_sharing":false}"#,
        ),
        (
            ServerFrame::CallOffer { call: call(), from: UserId(7), sdp: "v=0\r\n...".into() },
            r#"{"type":"call_offer","call":"5f2a9c1e7b3d4a60","from":7,"sdp":"v=0\r\n..."}"#,
        ),
        (
            ServerFrame::CallAnswer { call: call(), from: UserId(3), sdp: "v=0\r\n...".into() },
            r#"{"type":"call_answer","call":"5f2a9c1e7b3d4a60","from":3,"sdp":"v=0\r\n..."}"#,
        ),
        (
            ServerFrame::CallCandidate { call: call(), from: UserId(3), candidate: cand() },
            r#"{"type":"call_candidate","call":"5f2a9c1e7b3d4a60","from":3,"candidate":{"candidate":"candidate:1 1 udp 2122260223 192.0.2.7 50000 typ host","sdpMid":"0","sdpMLineIndex":0}}"#,
        ),
    ];
    for (frame, json) in server {
        assert_eq!(frame.to_json(), json);
    }
    let client = [
        (
            r#"{"type":"call_invite","conv":"d:3:7","media":"video"}"#,
            ClientFrame::CallInvite { conv: "d:3:7".parse().unwrap(), media: CallMedia::Video },
        ),
        (r#"{"type":"call_accept","call":"5f2a9c1e7b3d4a60"}"#, ClientFrame::CallAccept { call: call() }),
        (r#"{"type":"call_reject","call":"5f2a9c1e7b3d4a60"}"#, ClientFrame::CallReject { call: call() }),
        (r#"{"type":"call_cancel","call":"5f2a9c1e7b3d4a60"}"#, ClientFrame::CallCancel { call: call() }),
        (r#"{"type":"call_hangup","call":"5f2a9c1e7b3d4a60"}"#, ClientFrame::CallHangup { call: call() }),
        (r#"{"type":"call_join","call":"5f2a9c1e7b3d4a60"}"#, ClientFrame::CallJoin { call: call() }),
        (r#"{"type":"call_connected","call":"5f2a9c1e7b3d4a60"}"#, ClientFrame::CallConnected { call: call() }),
        (
            r#"{"type":"call_media_state","call":"5f2a9c1e7b3d4a60","muted":true,"camera_off":false,"screen_sharing":false}"#,
            ClientFrame::CallMediaState { call: call(), muted: true, camera_off: false, screen_sharing: false },
        ),
        (
            r#"{"type":"call_offer","call":"5f2a9c1e7b3d4a60","to":7,"sdp":"v=0\r\n..."}"#,
            ClientFrame::CallOffer { call: call(), to: UserId(7), sdp: "v=0\r\n...".into() },
        ),
        (
            r#"{"type":"call_answer","call":"5f2a9c1e7b3d4a60","to":3,"sdp":"v=0\r\n..."}"#,
            ClientFrame::CallAnswer { call: call(), to: UserId(3), sdp: "v=0\r\n...".into() },
        ),
        (
            r#"{"type":"call_candidate","call":"5f2a9c1e7b3d4a60","to":7,"candidate":{"candidate":"candidate:1 1 udp 2122260223 192.0.2.7 50000 typ host","sdpMid":"0","sdpMLineIndex":0}}"#,
            ClientFrame::CallCandidate { call: call(), to: UserId(7), candidate: cand() },
        ),
    ];
    for (json, frame) in client {
        assert_eq!(serde_json::from_str::<ClientFrame>(json).unwrap(), frame, "{json}");
    }
    let record = Content::Call { media: CallMedia::Video, outcome: CallOutcome::Answered, duration_secs: 65 };
    assert_eq!(serde_json::to_string(&record).unwrap(), r#"{"kind":"call","media":"video","outcome":"answered","duration_secs":65}"#);
    assert!(record.validate_from_client().is_err(), "only the server writes call records");
    for bad in [
        r#"{"type":"call_invite","conv":"d:3:7","media":"hologram"}"#,
        r#"{"type":"call_offer","call":"x","sdp":"v=0"}"#,
        r#"{"type":"call_candidate","call":"x","to":7,"candidate":{"candidate":"c","extra":1}}"#,
    ] {
        assert!(serde_json::from_str::<ClientFrame>(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_notice_change_carries_the_notice_and_old_events_still_read() {
    let new = SystemEvent::NoticeChanged { by: UserId(3), notice: "Meet at 8".into() };
    assert_eq!(serde_json::to_string(&new).unwrap(), r#"{"type":"notice_changed","by":3,"notice":"Meet at 8"}"#);
    let old: SystemEvent = serde_json::from_str(r#"{"type":"notice_changed","by":3}"#).unwrap();
    assert_eq!(old, SystemEvent::NoticeChanged { by: UserId(3), notice: String::new() });
}

#[test]
fn the_fan_outs_message_frame_is_the_message_variant() {
    let mut m = msg();
    m.mentions = vec![UserId(7)];
    assert_eq!(ServerFrame::message_json(&m), ServerFrame::Message { message: m.clone() }.to_json());
}
