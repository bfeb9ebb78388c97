#!/usr/bin/env bash
# Runs every fuzz target for a bounded time: SECONDS_EACH (default 20) each, one after another,
# on the seeds in fuzz/seeds/ and a corpus that grows in fuzz/corpus/ (not kept in git).
# A crash stops the run, leaves its input in fuzz/artifacts/TARGET/ and exits non-zero: make it
# a regression test (the input as a unit test's vector) before fixing it.
# Needs a nightly toolchain and cargo-fuzz (`.ci/run` installs both).
set -euo pipefail
cd "$(dirname "$0")"
seconds_each=${SECONDS_EACH:-20}
targets=${TARGETS:-$(cargo +nightly fuzz list)}
cargo +nightly fuzz build -O
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in $targets; do
    mkdir -p "corpus/$target"
    # -rss_limit_mb and -timeout: memory or time a single input may take before it counts as
    # a bug (unbounded allocation, a hang).
    if ! cargo +nightly fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds_each" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 \
        >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        echo "fuzz: $target failed; the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
    echo "fuzz: $target: ${runs:-?} runs in ${seconds_each}s, peak ${rss:-?} MB, no crash"
done
echo "fuzz: every target ran ${seconds_each}s without a crash"
