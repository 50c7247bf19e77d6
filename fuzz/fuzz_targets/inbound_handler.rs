//! `cargo fuzz run inbound_handler --sanitizer none`: see `props::check_inbound_handler` for the properties.
#![no_main]

#[path = "../../tests/fuzz_props/mod.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::check_inbound_handler(data));
