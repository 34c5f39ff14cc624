//! Fuzz target `call_signal`: the properties are in `fuzz/src/lib.rs` (`chinwag_fuzz::call_signal`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chinwag_fuzz::call_signal(data));
