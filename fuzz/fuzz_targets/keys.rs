//! Fuzz target `keys`: the properties are in `fuzz/src/lib.rs` (`chinwag_fuzz::keys`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chinwag_fuzz::keys(data));
