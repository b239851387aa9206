//! libFuzzer driver of `dataflow_fuzz_targets::paths_and_conditions`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dataflow_fuzz_targets::paths_and_conditions(data));
