//! The fuzz targets' properties (`fuzz/src/lib.rs`), checked in `cargo test` without libFuzzer:
//! each target's committed seed corpus (`fuzz/corpus/<target>/`) and a fixed number of
//! mutations of it go through the same functions the fuzz targets call. `scripts/fuzz` runs the
//! real fuzzers; this keeps the properties from rotting between those runs.

// fuzz/ is its own crate, linted on its own terms.
#[allow(clippy::doc_markdown)]
#[path = "../fuzz/src/lib.rs"]
mod checks;

use std::path::Path;

/// xorshift64*: a fixed, dependency-free sequence, so a failure here reproduces every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut files: Vec<_> =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).map(|e| e.unwrap().path()).collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(seeds.len() >= 8, "{target}: the seed corpus is missing");
    seeds
}

/// A libFuzzer-style mutation: flip, overwrite, insert or delete bytes, or splice two seeds.
fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut v = seeds[rng.below(seeds.len())].clone();
    for _ in 0..=rng.below(4) {
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = [0, 0xff, b'"', b'{', b'}', b':', b'0', b'\\'][rng.below(8)];
            }
            2 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
            3 if !v.is_empty() => {
                let i = rng.below(v.len());
                let n = rng.below(v.len() - i + 1);
                v.drain(i..i + n);
            }
            4 => {
                let other = &seeds[rng.below(seeds.len())];
                let (cut, from) = (rng.below(v.len() + 1), rng.below(other.len() + 1));
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            _ => {
                let n = rng.below(16);
                v.extend((0..n).map(|_| rng.next() as u8));
            }
        }
    }
    v
}

fn run(target: &str, check: fn(&[u8]), mutations: usize) {
    let seeds = corpus(target);
    for s in &seeds {
        check(s);
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ target.len() as u64);
    for _ in 0..mutations {
        let input = mutate(&mut rng, &seeds);
        // Name the input if a property breaks, so it can be added to the corpus and debugged.
        let r = std::panic::catch_unwind(|| check(&input));
        assert!(r.is_ok(), "{target}: property broken by input {input:?} ({:?})", String::from_utf8_lossy(&input));
    }
}

#[test]
fn client_frames_decode_or_refuse_without_panicking() {
    run("client_frame", checks::client_frame, 20_000);
}

#[test]
fn the_call_machine_keeps_its_invariants_under_any_event_order() {
    run("call_signal", checks::call_signal, 5_000);
}

#[test]
fn keys_round_trip_and_keep_their_order() {
    run("keys", checks::keys, 20_000);
}

#[test]
fn turn_datagrams_decode_without_panicking_and_both_decoders_agree() {
    run("turn_message", checks::turn_message, 20_000);
}
