//! libFuzzer driver of `dataflow_fuzz_targets::packed`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dataflow_fuzz_targets::packed(data));
