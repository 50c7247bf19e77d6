//! `cargo fuzz run url_rules --sanitizer none`: see `props::check_url_rules` for the properties.
#![no_main]

#[path = "../../tests/fuzz_props/mod.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::check_url_rules(data));
