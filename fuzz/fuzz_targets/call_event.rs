//! `cargo fuzz run call_event --sanitizer none`: see `props::check_call_event` for the properties.
#![no_main]

#[path = "../../tests/fuzz_props/mod.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::check_call_event(data));
