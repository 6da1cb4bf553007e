//! See `props::exec_format` in fuzz/props.rs (also run by tests/fuzz_properties.rs).
#![no_main]

#[path = "../props.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| props::exec_format(data));
