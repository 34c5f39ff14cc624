//! Fuzz target `client_frame`: the properties are in `fuzz/src/lib.rs` (`chinwag_fuzz::client_frame`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chinwag_fuzz::client_frame(data));
