//! `cargo fuzz run unseal --sanitizer none`: see `props::check_unseal` for the properties.
#![no_main]

#[path = "../../tests/fuzz_props/mod.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::check_unseal(data));
