//! `cargo fuzz run verify_signature --sanitizer none`: see `props::check_verify_signature` for the properties.
#![no_main]

#[path = "../../tests/fuzz_props/mod.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::check_verify_signature(data));
