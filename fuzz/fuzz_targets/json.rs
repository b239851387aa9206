//! libFuzzer driver of `dataflow_fuzz_targets::json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dataflow_fuzz_targets::json(data));
