//! Fuzz target `turn_message`: the properties are in `fuzz/src/lib.rs` (`chinwag_fuzz::turn_message`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chinwag_fuzz::turn_message(data));
