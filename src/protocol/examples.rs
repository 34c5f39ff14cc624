//! The shared example frames (`tests/fixtures/frames.json`) against the Rust types: every example
//! parses and serializes back to the same JSON, and every kind of frame, content and system
//! event has one. The web client's tests check the same file against its TypeScript types
//! (`web/tests/frames.test.ts`), so the two cannot drift apart unnoticed.

use std::collections::BTreeSet;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{ClientFrame, Content, ServerFrame, SystemEvent};

fn examples() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/frames.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    serde_json::from_str(&text).expect("frames.json is JSON")
}

fn list<'a>(all: &'a Value, key: &str) -> &'a [Value] {
    all[key].as_array().unwrap_or_else(|| panic!("frames.json has no array {key:?}"))
}

/// The variant names serde knows for an enum tagged by `tag`, read from the error it gives for
/// an unknown one: the list follows the Rust enum, so a new variant shows up here by itself.
fn kinds<T: DeserializeOwned>(tag: &str) -> BTreeSet<String> {
    let probe = serde_json::json!({ tag: "\u{1}not a kind" });
    let err = serde_json::from_value::<T>(probe).err().expect("an unknown kind is refused").to_string();
    let (_, expected) = err.split_once("expected one of").unwrap_or_else(|| panic!("unexpected serde error: {err}"));
    expected.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// Parses every example as `T`, serializes it back, and lists the ones that changed on the way.
fn round_trip<T: DeserializeOwned + Serialize>(examples: &[Value]) -> Vec<String> {
    let mut wrong = Vec::new();
    for ex in examples {
        match serde_json::from_value::<T>(ex.clone()) {
            Err(e) => wrong.push(format!("  {ex}\n    does not parse: {e}")),
            Ok(v) => {
                let back = serde_json::to_value(&v).expect("serializes");
                if &back != ex {
                    wrong.push(format!("  {ex}\n    serializes back as {back}"));
                }
            }
        }
    }
    wrong
}

fn missing(tag: &str, expected: &BTreeSet<String>, examples: &[&Value]) -> Vec<String> {
    let seen: BTreeSet<&str> = examples.iter().filter_map(|e| e[tag].as_str()).collect();
    expected.iter().filter(|k| !seen.contains(k.as_str())).cloned().collect()
}

#[test]
fn every_example_parses_and_serializes_back_equal() {
    let all = examples();
    let mut wrong = round_trip::<ClientFrame>(list(&all, "client_frames"));
    wrong.extend(round_trip::<ServerFrame>(list(&all, "server_frames")));
    wrong.extend(round_trip::<Content>(list(&all, "contents")));
    assert!(wrong.is_empty(), "examples in tests/fixtures/frames.json that the Rust types do not keep as they are:\n{}", wrong.join("\n"));
}

#[test]
fn every_kind_has_an_example() {
    let all = examples();
    let client: Vec<&Value> = list(&all, "client_frames").iter().collect();
    let server: Vec<&Value> = list(&all, "server_frames").iter().collect();
    let contents: Vec<&Value> = list(&all, "contents").iter().collect();
    let events: Vec<&Value> = contents.iter().filter(|c| c["kind"] == "system").map(|c| &c["event"]).collect();
    let gaps = [
        ("client frame", missing("type", &kinds::<ClientFrame>("type"), &client)),
        ("server frame", missing("type", &kinds::<ServerFrame>("type"), &server)),
        ("content", missing("kind", &kinds::<Content>("kind"), &contents)),
        ("system event", missing("type", &kinds::<SystemEvent>("type"), &events)),
    ];
    for (what, kinds) in &gaps {
        assert!(kinds.is_empty(), "tests/fixtures/frames.json has no example of the {what} kinds {kinds:?}: add one");
    }
    // The probe itself works: it found the kinds everyone knows.
    assert!(kinds::<ClientFrame>("type").contains("send") && kinds::<ServerFrame>("type").contains("call_candidate"));
}
