#!/usr/bin/env bash
# Runs every fuzz target for N seconds (default 10) on stable Rust via
# RUSTC_BOOTSTRAP=1 and cargo-fuzz (libFuzzer + AddressSanitizer).
# Exits non-zero if any target crashes, leaks, times out, or allocates more
# than the malloc limit; the reproducer is left in fuzz/artifacts/<target>/.
#
#   fuzz/run-short.sh            # 10 s per target
#   fuzz/run-short.sh 60         # 60 s per target
#   TARGETS="log_recovery" fuzz/run-short.sh 600
#
# New inputs found during the run go to a scratch corpus (fuzz/corpus-work/,
# git-ignored), never into the committed seeds in fuzz/corpus/.
set -euo pipefail
cd "$(dirname "$0")"

secs="${1:-10}"
targets="${TARGETS:-log_record log_segment_header log_segment_index chunk_index chunk_roundtrip manifest_values vfs_params log_recovery}"
export RUSTC_BOOTSTRAP=1
# Extra cargo-fuzz flags, e.g. FUZZ_FLAGS="--sanitizer none".
read -r -a fuzz_flags <<< "${FUZZ_FLAGS:-}"

command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz missing: cargo install cargo-fuzz" >&2; exit 2; }
cargo fuzz build "${fuzz_flags[@]}"

failed=()
for t in $targets; do
    work="corpus-work/$t"
    mkdir -p "$work"
    max_len=4096
    [ "$t" = log_recovery ] && max_len=8192
    echo "=== $t: ${secs}s"
    set +e
    cargo fuzz run "${fuzz_flags[@]}" "$t" "$work" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
        -max_len="$max_len" -print_final_stats=1 > "corpus-work/$t.log" 2>&1
    rc=$?
    set -e
    grep -E "^(#[0-9]+ +DONE|Done |stat::number_of_executed_units|stat::average_exec_per_sec|==[0-9]+==|SUMMARY|thread '.*panicked)" "corpus-work/$t.log" || true
    if [ "$rc" -ne 0 ]; then
        echo "!!! $t FAILED (exit $rc; log: fuzz/corpus-work/$t.log, artifacts: fuzz/artifacts/$t/)"
        tail -n 30 "corpus-work/$t.log"
        failed+=("$t")
    fi
done

if [ "${#failed[@]}" -ne 0 ]; then
    echo "FAILED: ${failed[*]}"
    exit 1
fi
echo "all targets ran ${secs}s without a crash"
