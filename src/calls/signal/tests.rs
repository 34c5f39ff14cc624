//! The call state machine's rules, each played through [`Registry`] with the time passed in.

use super::*;

const A: UserId = UserId(1);
const B: UserId = UserId(2);
const C: UserId = UserId(3);
const D: UserId = UserId(4);
const E: UserId = UserId(5);

fn reg() -> Registry {
    Registry::new(Settings {
        ring_timeout: Duration::from_secs(45),
        max_participants: 4,
        sfu_from: None,
        sfu_max_video: 16,
        sfu_max_audio: 50,
    })
}

fn dm() -> ConvId {
    ConvId::direct(A, B).unwrap()
}

fn ended(call: &str, reason: CallEndReason, duration_secs: Option<u64>) -> ServerFrame {
    ServerFrame::CallEnded { call: call.into(), reason, duration_secs }
}

fn logs(effects: &[Effect]) -> Vec<(CallOutcome, u64)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Log { outcome, duration_secs, .. } => Some((*outcome, *duration_secs)),
            _ => None,
        })
        .collect()
}

fn to_conn(effects: &[Effect], conn: u64) -> Vec<ServerFrame> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::ToConn { conn: c, frame, .. } if *c == conn => Some(frame.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_1to1_call_rings_is_answered_on_one_device_and_logs_its_duration() {
    let mut r = reg();
    let t0 = Instant::now();
    let fx = r.invite("c1".into(), A, 10, dm(), false, &[A, B], CallMedia::Video, t0).unwrap();
    assert_eq!(
        fx[0],
        Effect::ToConn {
            user: A,
            conn: 10,
            frame: ServerFrame::CallStarted { call: "c1".into(), conv: dm(), media: CallMedia::Video, sfu: false }
        }
    );
    assert!(matches!(&fx[1], Effect::Ring { users, caller: (A, 10), .. } if users == &vec![B]));
    assert_eq!(fx[2], Effect::Timer { call: "c1".into(), at: t0 + Duration::from_secs(45) });
    // Device 21 of B answers: device 22 stops with "taken elsewhere", A learns who answered.
    let fx = r.accept("c1", B, 21, false, t0).unwrap();
    assert_eq!(fx[0], Effect::ToUsers { users: vec![B], frame: ended("c1", CallEndReason::TakenElsewhere, None), skip: Some(21) });
    assert_eq!(to_conn(&fx, 10), vec![ServerFrame::CallAccepted { call: "c1".into(), user: B, participants: vec![A, B], sfu: false }]);
    assert_eq!(r.accept("c1", B, 22, false, t0), Err(Refusal::Conflict("You are already in this call.")), "the second device loses");
    // Signalling goes to the one device in the call, and only from a device in it.
    let fx = r.signal("c1", B, 21, A, Signal::Offer("v=0".into())).unwrap();
    assert_eq!(
        fx,
        vec![Effect::ToConn { user: A, conn: 10, frame: ServerFrame::CallOffer { call: "c1".into(), from: B, sdp: "v=0".into() } }]
    );
    assert_eq!(r.signal("c1", B, 22, A, Signal::Offer("x".into())), Err(NO_SUCH_CALL));
    assert_eq!(r.signal("c1", C, 30, A, Signal::Offer("x".into())), Err(NO_SUCH_CALL));
    assert!(r.signal("c1", A, 10, A, Signal::Answer("x".into())).is_err(), "not to oneself");
    // Media flows: the duration counts from here. Only a device in the call may say so.
    assert_eq!(r.media_connected("c1", B, 22, t0), Err(NO_SUCH_CALL));
    assert_eq!(r.media_connected("c1", B, 21, t0), Ok(vec![]));
    // The timer firing after an answer changes nothing.
    tokio::time::advance(Duration::from_secs(45)).await;
    assert!(r.timeout("c1", Instant::now()).is_empty());
    tokio::time::advance(Duration::from_secs(30)).await;
    let fx = r.hangup("c1", A, 10, Instant::now()).unwrap();
    assert_eq!(to_conn(&fx, 21), vec![ended("c1", CallEndReason::Hangup, Some(75))]);
    assert_eq!(to_conn(&fx, 10), vec![ended("c1", CallEndReason::Hangup, Some(75))]);
    assert_eq!(logs(&fx), vec![(CallOutcome::Answered, 75)]);
    assert!(r.is_empty());
    assert_eq!(r.hangup("c1", A, 10, Instant::now()), Err(NO_SUCH_CALL));
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_call_times_out_as_missed_at_the_deadline_and_not_before() {
    let mut r = reg();
    let t0 = Instant::now();
    r.invite("c1".into(), A, 10, dm(), false, &[A, B], CallMedia::Audio, t0).unwrap();
    tokio::time::advance(Duration::from_secs(44)).await;
    assert!(r.timeout("c1", Instant::now()).is_empty(), "a timer that fires early does nothing");
    tokio::time::advance(Duration::from_secs(1)).await;
    let fx = r.timeout("c1", Instant::now());
    assert_eq!(to_conn(&fx, 10), vec![ended("c1", CallEndReason::NoAnswer, None)]);
    assert!(fx.contains(&Effect::ToUsers { users: vec![B], frame: ended("c1", CallEndReason::NoAnswer, None), skip: None }));
    assert_eq!(logs(&fx), vec![(CallOutcome::Missed, 0)]);
    assert!(r.timeout("c1", Instant::now()).is_empty());
    assert_eq!(r.accept("c1", B, 21, false, Instant::now()), Err(NO_SUCH_CALL), "too late");
}

#[tokio::test(start_paused = true)]
async fn decline_cancel_and_busy_end_the_call_with_their_outcome() {
    let t0 = Instant::now();
    let mut r = reg();
    r.invite("c1".into(), A, 10, dm(), false, &[A, B], CallMedia::Audio, t0).unwrap();
    assert_eq!(r.reject("c1", A, t0), Err(NO_SUCH_CALL), "the caller cancels, not rejects");
    let fx = r.reject("c1", B, t0).unwrap();
    assert_eq!(to_conn(&fx, 10), vec![ended("c1", CallEndReason::Declined, None)]);
    assert!(fx.contains(&Effect::ToUsers { users: vec![B], frame: ended("c1", CallEndReason::Declined, None), skip: None }));
    assert_eq!(logs(&fx), vec![(CallOutcome::Declined, 0)]);

    r.invite("c2".into(), A, 10, dm(), false, &[A, B], CallMedia::Audio, t0).unwrap();
    assert_eq!(r.cancel("c2", B, 21, t0), Err(NO_SUCH_CALL), "only the caller cancels");
    assert_eq!(r.cancel("c2", A, 11, t0), Err(NO_SUCH_CALL), "from the calling device");
    let fx = r.cancel("c2", A, 10, t0).unwrap();
    assert!(fx.contains(&Effect::ToUsers { users: vec![B], frame: ended("c2", CallEndReason::Cancelled, None), skip: None }));
    assert_eq!(logs(&fx), vec![(CallOutcome::Cancelled, 0)]);

    // B is in a call with C: A's call to B is busy, and so is a call to C while C rings.
    let bc = ConvId::direct(B, C).unwrap();
    r.invite("c3".into(), B, 21, bc, false, &[B, C], CallMedia::Audio, t0).unwrap();
    let fx = r.invite("c4".into(), A, 10, dm(), false, &[A, B], CallMedia::Video, t0).unwrap();
    assert_eq!(to_conn(&fx, 10)[1], ended("c4", CallEndReason::Busy, None));
    assert_eq!(logs(&fx), vec![(CallOutcome::Busy, 0)]);
    let ac = ConvId::direct(A, C).unwrap();
    let fx = r.invite("c5".into(), A, 10, ac, false, &[A, C], CallMedia::Video, t0).unwrap();
    assert_eq!(logs(&fx), vec![(CallOutcome::Busy, 0)], "C is ringing for B's call");
    assert_eq!(
        r.invite("c6".into(), B, 21, dm(), false, &[A, B], CallMedia::Audio, t0),
        Err(Refusal::Conflict("You are already in a call; hang up first."))
    );
    assert_eq!(r.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_connection_ends_the_call() {
    let t0 = Instant::now();
    let mut r = reg();
    r.invite("c1".into(), A, 10, dm(), false, &[A, B], CallMedia::Audio, t0).unwrap();
    assert!(r.disconnected(B, 21, t0).is_empty(), "a ringing device going away changes nothing");
    // A device that connects while the call rings, rings too; the caller hears it ring.
    let fx = r.connected(B, 23);
    assert!(matches!(&to_conn(&fx, 23)[0], ServerFrame::CallIncoming { from: A, .. }));
    assert_eq!(to_conn(&fx, 10), vec![ServerFrame::CallRinging { call: "c1".into(), user: B }]);
    r.accept("c1", B, 23, false, t0).unwrap();
    r.media_connected("c1", A, 10, t0).unwrap();
    tokio::time::advance(Duration::from_secs(5)).await;
    let fx = r.disconnected(A, 10, Instant::now());
    assert_eq!(to_conn(&fx, 23), vec![ended("c1", CallEndReason::ConnectionLost, Some(5))]);
    assert_eq!(logs(&fx), vec![(CallOutcome::Answered, 5)]);
    // The caller dropping before an answer cancels.
    r.invite("c2".into(), A, 11, dm(), false, &[A, B], CallMedia::Audio, t0).unwrap();
    assert_eq!(logs(&r.disconnected(A, 11, Instant::now())), vec![(CallOutcome::Cancelled, 0)]);
}

#[tokio::test(start_paused = true)]
async fn a_group_call_is_a_mesh_of_at_most_four_with_joins_leaves_and_media_state() {
    let t0 = Instant::now();
    let mut r = reg();
    let g = ConvId::Group(9);
    let members = [A, B, C, D, E];
    let fx = r.invite("g1".into(), A, 10, g, true, &members, CallMedia::Video, t0).unwrap();
    assert!(matches!(&fx[1], Effect::Ring { users, .. } if users == &vec![B, C, D, E]));
    // B calls the group too: that joins the call going on (its id, its media), as an answer.
    let fx = r.invite("g2".into(), B, 20, g, true, &members, CallMedia::Audio, t0).unwrap();
    assert_eq!(to_conn(&fx, 20)[0], ServerFrame::CallStarted { call: "g1".into(), conv: g, media: CallMedia::Video, sfu: false });
    assert_eq!(to_conn(&fx, 20)[1], ServerFrame::CallAccepted { call: "g1".into(), user: B, participants: vec![A, B], sfu: false });
    assert_eq!(to_conn(&fx, 10), vec![ServerFrame::CallAccepted { call: "g1".into(), user: B, participants: vec![A, B], sfu: false }]);
    assert_eq!(r.len(), 1, "no second call");
    // C declines but may join later; the call goes on.
    let fx = r.reject("g1", C, t0).unwrap();
    assert_eq!(logs(&fx), vec![]);
    let fx = r.accept("g1", C, 30, true, t0).unwrap();
    assert_eq!(to_conn(&fx, 30), vec![ServerFrame::CallAccepted { call: "g1".into(), user: C, participants: vec![A, B, C], sfu: false }]);
    assert_eq!(to_conn(&fx, 10), to_conn(&fx, 30));
    r.accept("g1", D, 40, false, t0).unwrap();
    r.media_connected("g1", D, 40, t0).unwrap();
    assert_eq!(r.accept("g1", E, 50, false, t0), Err(Refusal::TooMany("This call is full.")));
    assert_eq!(r.invite("g3".into(), E, 50, g, true, &members, CallMedia::Audio, t0), Err(Refusal::TooMany("This call is full.")));
    assert_eq!(r.accept("g1", UserId(6), 60, false, t0), Err(NO_SUCH_CALL), "not rung, no right to join");
    // Mute goes to the three others.
    let fx = r.media_state("g1", B, 20, MediaState { muted: true, camera_off: false, screen_sharing: false }).unwrap();
    assert_eq!(fx.len(), 3);
    assert!(fx.iter().all(|e| matches!(e, Effect::ToConn { frame: ServerFrame::CallMediaState { user: B, muted: true, .. }, .. })));
    // The ring timer stops E's devices; four people go on talking.
    tokio::time::advance(Duration::from_secs(45)).await;
    let fx = r.timeout("g1", Instant::now());
    assert_eq!(fx, vec![Effect::ToUsers { users: vec![E], frame: ended("g1", CallEndReason::NoAnswer, None), skip: None }]);
    // Leaving tells the others; the last two leaving end and log the call.
    let fx = r.hangup("g1", A, 10, Instant::now()).unwrap();
    assert_eq!(to_conn(&fx, 20), vec![ServerFrame::CallLeft { call: "g1".into(), user: A }]);
    assert_eq!(to_conn(&fx, 10), vec![ended("g1", CallEndReason::Hangup, Some(45))]);
    r.hangup("g1", B, 20, Instant::now()).unwrap();
    tokio::time::advance(Duration::from_secs(15)).await;
    let fx = r.disconnected(C, 30, Instant::now());
    assert_eq!(to_conn(&fx, 40), vec![ended("g1", CallEndReason::Hangup, Some(60))]);
    assert_eq!(logs(&fx), vec![(CallOutcome::Answered, 60)]);
    assert!(r.is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_answered_call_whose_media_never_connected_is_recorded_as_failed() {
    let t0 = Instant::now();
    let mut r = reg();
    r.invite("c1".into(), A, 10, dm(), false, &[A, B], CallMedia::Video, t0).unwrap();
    assert_eq!(r.media_connected("c1", A, 10, t0), Ok(vec![]), "before an answer a report changes nothing");
    r.accept("c1", B, 21, false, t0).unwrap();
    tokio::time::advance(Duration::from_secs(46)).await;
    let fx = r.hangup("c1", A, 10, Instant::now()).unwrap();
    assert_eq!(to_conn(&fx, 21), vec![ended("c1", CallEndReason::Hangup, None)], "no duration: no call took place");
    assert_eq!(logs(&fx), vec![(CallOutcome::Failed, 0)]);
    // The same in a group: answered by two, media never flowed.
    let g = ConvId::Group(9);
    r.invite("g1".into(), A, 10, g, true, &[A, B, C], CallMedia::Audio, t0).unwrap();
    r.accept("g1", B, 21, false, t0).unwrap();
    r.reject("g1", C, t0).unwrap();
    let fx = r.disconnected(B, 21, Instant::now());
    assert_eq!(logs(&fx), vec![(CallOutcome::Failed, 0)]);
    // Media that connected late counts from then on.
    r.invite("c2".into(), A, 10, dm(), false, &[A, B], CallMedia::Audio, Instant::now()).unwrap();
    r.accept("c2", B, 21, false, Instant::now()).unwrap();
    tokio::time::advance(Duration::from_secs(10)).await;
    r.media_connected("c2", B, 21, Instant::now()).unwrap();
    tokio::time::advance(Duration::from_secs(3)).await;
    r.media_connected("c2", A, 10, Instant::now()).unwrap();
    tokio::time::advance(Duration::from_secs(4)).await;
    let fx = r.hangup("c2", B, 21, Instant::now()).unwrap();
    assert_eq!(logs(&fx), vec![(CallOutcome::Answered, 7)], "from the first report");
}

#[tokio::test(start_paused = true)]
async fn the_invariant_check_names_a_broken_state() {
    let t0 = Instant::now();
    let mut r = reg();
    r.invite("g1".into(), A, 10, ConvId::Group(9), true, &[A, B, C], CallMedia::Audio, t0).unwrap();
    r.accept("g1", B, 20, false, t0).unwrap();
    assert_eq!(r.check_invariants(), Ok(()));
    // What the machine must never reach: B in the call on a second device.
    r.calls.get_mut("g1").unwrap().participants.push(Participant { user: B, conn: 21 });
    assert!(r.check_invariants().unwrap_err().contains("more than one device"));
}

#[tokio::test(start_paused = true)]
async fn a_group_call_nobody_joins_is_missed_and_one_everyone_declines_is_declined() {
    let t0 = Instant::now();
    let mut r = reg();
    let g = ConvId::Group(9);
    r.invite("g1".into(), A, 10, g, true, &[A, B, C], CallMedia::Audio, t0).unwrap();
    tokio::time::advance(Duration::from_secs(45)).await;
    let fx = r.timeout("g1", Instant::now());
    assert_eq!(logs(&fx), vec![(CallOutcome::Missed, 0)]);
    r.invite("g2".into(), A, 10, g, true, &[A, B, C], CallMedia::Audio, t0).unwrap();
    assert!(logs(&r.reject("g2", B, t0).unwrap()).is_empty());
    assert_eq!(logs(&r.reject("g2", C, t0).unwrap()), vec![(CallOutcome::Declined, 0)]);
    // Busy members are not rung for a group call.
    let bc = ConvId::direct(B, C).unwrap();
    r.invite("c1".into(), B, 20, bc, false, &[B, C], CallMedia::Audio, t0).unwrap();
    let fx = r.invite("g3".into(), A, 10, g, true, &[A, B, C], CallMedia::Audio, t0).unwrap();
    assert!(matches!(&fx[1], Effect::Ring { users, .. } if users.is_empty()));
}
