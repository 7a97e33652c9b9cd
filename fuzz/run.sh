#!/usr/bin/env bash
# fuzz/run.sh — build the libFuzzer targets with clang, replay the committed
# regression inputs, then fuzz every target for a bounded time.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#
#   SECONDS_PER_TARGET  default 20; TARGET: http_request http_response
#                       frame_decoder envelope client server (default: all)
#   BUILD_DIR           default <repo>/build-fuzz (configured on first use with
#                       CXX=clang++ meson setup ... -Dfuzz=true)
#   FUZZ_JOBS           ninja jobs for the build (default 1)
#   FUZZ_CI=1           reproducible bounded run, as CI does it: seed 1 and a
#                       fixed number of runs per target (about 10 s each on a
#                       2-core VM) instead of SECONDS; the same commit fuzzes
#                       the same inputs everywhere, so CI's verdict can be
#                       reproduced locally with the same command.
#
# Per target:
#   1. regressions/<target>/* are run once (the target with the files as
#      arguments); a failure is reported and the target is not fuzzed (the
#      bug is known and still there);
#   2. the target fuzzes a copy of corpus/<target>/ in a temporary directory
#      (the repository is never modified by fuzzing) for SECONDS with
#      -timeout=5 -rss_limit_mb=2048;
#   3. on a crash (or timeout / OOM / leak) the input is minimised
#      (-minimize_crash=1) and copied to regressions/<target>/ so it can be
#      committed as a regression input; the script then exits non-zero.
# The summary prints libFuzzer's final figures per target: runs, exec/s,
# cov (edges) and ft (features).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
secs=${1:-20}
[ $# -gt 0 ] && shift
all=(http_request http_response frame_decoder envelope client server)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")
build=${BUILD_DIR:-$root/build-fuzz}

if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
    echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
fi
for t in "${targets[@]}"; do
    [[ " ${all[*]} " == *" $t "* ]] || { echo "unknown target: $t (one of: ${all[*]})" >&2; exit 2; }
done

# ---- build --------------------------------------------------------------------
if [ ! -f "$build/build.ninja" ]; then
    (cd "$root" && CXX=${CXX:-clang++} meson setup "$build" -Dfuzz=true -Dtests=false -Dexamples=false -Dbench=false)
fi
exes=()
for t in "${targets[@]}"; do exes+=("fuzz/fuzz_$t"); done
ninja -C "$build" -j "${FUZZ_JOBS:-1}" "${exes[@]}"

work=$(mktemp -d "${TMPDIR:-/tmp}/tether-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Stateful targets run faster without the entropic schedule (its per-feature
# bookkeeping dominates with ~30k features) and want long inputs from the start.
extra_opts() {
    case "$1" in
        client|server) echo "-entropic=0 -len_control=0 -max_len=1024" ;;
        frame_decoder|envelope) echo "-max_len=4096" ;;
        *) echo "" ;;
    esac
}

# Runs per target for FUZZ_CI=1 (about 10 s each; the stateful targets are slower).
ci_runs() {
    case "$1" in
        http_request) echo 100000 ;;
        http_response) echo 40000 ;;
        frame_decoder) echo 30000 ;;
        envelope) echo 50000 ;;
        client) echo 12000 ;;
        server) echo 2500 ;;
    esac
}
budget() {
    if [ "${FUZZ_CI:-0}" = 1 ]; then echo "-seed=1 -runs=$(ci_runs "$1")"; else echo "-max_total_time=$secs"; fi
}

status=0
summary=()
for t in "${targets[@]}"; do
    exe="$build/fuzz/fuzz_$t"
    reg="$here/regressions/$t"
    tdir="$work/$t"
    mkdir -p "$tdir/corpus"

    # 1. regressions first
    if [ -d "$reg" ] && [ -n "$(ls -A "$reg" 2>/dev/null)" ]; then
        echo "== $t: replaying $(ls -A "$reg" | wc -l) regression input(s)"
        if ! "$exe" -rss_limit_mb=2048 -timeout=5 "$reg"/* >"$tdir/regressions.log" 2>&1; then
            echo "!! $t: a regression input still fails:" >&2
            grep -E "invariant failed|ERROR:|    at |^    [^#]|Running:" "$tdir/regressions.log" | head -20 >&2 || true
            summary+=("$t: REGRESSION FAILS (not fuzzed)")
            status=1
            continue
        fi
    fi

    # 2. fuzz a copy of the corpus
    cp "$here/corpus/$t/"* "$tdir/corpus/" 2>/dev/null || true
    echo "== $t: fuzzing ($(budget "$t"))"
    rc=0
    # shellcheck disable=SC2046
    "$exe" "$tdir/corpus" $(budget "$t") -timeout=5 -rss_limit_mb=2048 \
        -artifact_prefix="$tdir/" -print_final_stats=1 $(extra_opts "$t") >"$tdir/fuzz.log" 2>&1 || rc=$?
    done_line=$(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$tdir/fuzz.log" | tail -1 || true)
    runs=$(grep -E '^stat::number_of_executed_units' "$tdir/fuzz.log" | awk '{print $2}' || true)
    eps=$(grep -E '^stat::average_exec_per_sec' "$tdir/fuzz.log" | awk '{print $2}' || true)
    cov=$(sed -nE 's/.* cov: ([0-9]+) ft: ([0-9]+) corp: ([^ ]+).*/cov \1 ft \2 corp \3/p' <<<"$done_line")
    if [ "$rc" -eq 0 ]; then
        summary+=("$t: ok, runs ${runs:-?}, exec/s ${eps:-?}, ${cov:-?}")
        continue
    fi

    # 3. a finding: show it, minimise it, keep it
    status=1
    artifact=$(ls -t "$tdir"/crash-* "$tdir"/timeout-* "$tdir"/oom-* "$tdir"/leak-* 2>/dev/null | head -1 || true)
    echo "!! $t: libFuzzer exited with $rc" >&2
    grep -E "invariant failed|ERROR:|SUMMARY|    at |^    [^#]" "$tdir/fuzz.log" | head -20 >&2 || true
    if [ -z "$artifact" ]; then
        summary+=("$t: FAILED (exit $rc, no artifact; see the log above)")
        continue
    fi
    kind=$(basename "$artifact" | cut -d- -f1)
    min="$tdir/min-$(basename "$artifact")"
    if [ "$kind" = crash ]; then
        "$exe" -minimize_crash=1 -max_total_time=60 -timeout=5 -rss_limit_mb=2048 \
            -exact_artifact_path="$min" "$artifact" >"$tdir/minimize.log" 2>&1 || true
    fi
    [ -s "$min" ] || cp "$artifact" "$min"
    mkdir -p "$reg"
    dest="$reg/$kind-$(sha1sum "$min" | cut -c1-16)"
    cp "$min" "$dest"
    echo "!! $t: minimised input ($(wc -c <"$dest") bytes) saved as ${dest#$root/}" >&2
    echo "!! reproduce: $exe $dest   (FUZZ_TRACE=1 for client/server traces)" >&2
    summary+=("$t: FOUND $kind -> ${dest#$root/}; runs ${runs:-?}, exec/s ${eps:-?}, ${cov:-?}")
done

echo
if [ "${FUZZ_CI:-0}" = 1 ]; then echo "== summary (FUZZ_CI: seed 1, fixed runs)"; else echo "== summary (${secs}s per target)"; fi
for line in "${summary[@]}"; do echo "   $line"; done
exit $status
