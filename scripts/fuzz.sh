#!/usr/bin/env bash
# Fuzzes sluice with cargo-fuzz (libFuzzer), one target after another, one job.
#
#   scripts/fuzz.sh                    # every target, 600 s each
#   scripts/fuzz.sh 60 sql_parse       # one target for a minute
#   scripts/fuzz.sh 3600 decode sql_plan
#   FUZZ_ARGS="-fork=1 -ignore_timeouts=1" scripts/fuzz.sh 600 sql_parse
#
# Targets (fuzz/src/lib.rs says exactly what each checks):
#   sql_parse  the dialect parser on any text: no panic, error positions inside the text
#   sql_plan   any request to a real engine (manual clock), as POST /sql: no panic, no hang
#   decode     record framing and decoding (LINES, CSV, JSON): no panic, bad records
#              counted, streaming and all-or-nothing decoding agree
#
# Needs the nightly toolchain; installs cargo-fuzz from crates.io if missing.
# Builds go to fuzz/target (cargo-fuzz's default; CARGO_TARGET_DIR moves them). The
# first build compiles DataFusion with AddressSanitizer (76 minutes on 2 busy
# cores), so builds and runs are niced (FUZZ_NICE, default 10) to leave the machine usable.
# Corpora grow in fuzz/corpus/<target>/, logs go to fuzz/logs/, and crashing or
# hanging inputs to fuzz/artifacts/<target>/ (all ignored by git). Copy a crash to
# fuzz/regressions/<target>/ to replay it in `cargo test --test integration
# fuzz_regressions` from then on.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-600}"
shift || true
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(sql_parse sql_plan decode)
niceness="${FUZZ_NICE:-10}"

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
cargo +nightly fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked

# Seeds: the example queries and every SQL block of the SQL reference for the SQL
# targets, the hand-written records in fuzz/seeds/ for the others.
seed() {
    local target="$1" dir="fuzz/corpus/$1"
    mkdir -p "$dir"
    case "$target" in
        sql_parse | sql_plan)
            for file in queries/*.sql; do
                cp "$file" "$dir/seed-$(basename "$file" .sql)"
            done
            awk -v dir="$dir" '
                /^```sql/ { n++; out = sprintf("%s/seed-doc-%03d", dir, n); printf "" > out; inside = 1; next }
                /^```/    { if (inside) close(out); inside = 0; next }
                inside    { print >> out }
            ' docs/sql.md
            ;;
        *)
            if [ -d "fuzz/seeds/$target" ]; then cp fuzz/seeds/"$target"/* "$dir/"; fi
            ;;
    esac
}

dict_of() {
    case "$1" in
        sql_parse | sql_plan) echo fuzz/dict/sql.dict ;;
        decode) echo fuzz/dict/decode.dict ;;
    esac
}

mkdir -p fuzz/logs
failed=()
for target in "${targets[@]}"; do
    seed "$target"
    args=(-max_total_time="$seconds" -timeout=20 -print_final_stats=1)
    # sql_plan: the engine keeps state and librdkafka threads across inputs,
    # which libFuzzer's per-input leak check cannot tell from leaks, and
    # librdkafka leaks a queue handle per client (reported at exit).
    asan="${ASAN_OPTIONS:-}"
    if [ "$target" = sql_plan ]; then
        args+=(-detect_leaks=0)
        asan="${asan:+$asan:}detect_leaks=0"
    fi
    # More libFuzzer flags, e.g. FUZZ_ARGS="-fork=1 -ignore_timeouts=1" to keep
    # going past a known hang.
    read -r -a extra <<<"${FUZZ_ARGS:-}"
    args+=("${extra[@]}")
    dict="$(dict_of "$target")"
    [ -z "$dict" ] || args+=(-dict="$dict")
    log="fuzz/logs/$target-$(date -u +%Y%m%dT%H%M%SZ).log"
    echo "== build $target"
    nice -n "$niceness" cargo +nightly fuzz build "$target"
    echo "== run $target for ${seconds}s (full log: $log)"
    set +e
    ASAN_OPTIONS="$asan" nice -n "$niceness" cargo +nightly fuzz run "$target" -- "${args[@]}" 2>&1 | tee "$log" |
        grep -E '^#[0-9]+[[:space:]]+(INITED|DONE|pulse)|ERROR|panicked at|SUMMARY|Test unit written|^stat::'
    status="${PIPESTATUS[0]}"
    set -e
    if [ "$status" -ne 0 ]; then
        failed+=("$target")
        echo "!! $target failed: the input is in fuzz/artifacts/$target/, the trace in $log"
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "Crashes or hangs in: ${failed[*]}. Replay one with"
    echo "  cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>"
    exit 1
fi
echo "No crashes. Findings would be in fuzz/artifacts/<target>/."
