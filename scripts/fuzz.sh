#!/usr/bin/env bash
# Runs each libFuzzer target for FUZZ_SECONDS and reports its executions; a
# finding fails with the target's log tail (the crashing input is under
# fuzz/artifacts/<target>/). Needs nightly Rust and cargo-fuzz (`make fuzz`
# installs them). Corpora are kept in fuzz/corpus/ (ignored by git).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-120}"
logs="../target/fuzz-logs"
mkdir -p "$logs"
for target in ${FUZZ_TARGETS:-spec json paths_and_conditions packed}; do
    log="$logs/$target.log"
    if ! cargo +nightly fuzz run "$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        echo "fuzz: $target found a problem:" >&2
        tail -n 40 "$log" >&2
        exit 1
    fi
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
    echo "fuzz: $target ran $runs inputs in ${seconds} s without a finding"
done
