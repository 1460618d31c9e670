#![no_main]
//! cargo-fuzz entry point; the target's logic and properties are in
//! `src/lib.rs` (`bop_fuzz::log_recovery`) so the stable corpus replay test runs
//! the very same code.

libfuzzer_sys::fuzz_target!(|data: &[u8]| bop_fuzz::log_recovery(data));
