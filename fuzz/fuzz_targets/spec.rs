//! libFuzzer driver of `dataflow_fuzz_targets::spec`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dataflow_fuzz_targets::spec(data));
