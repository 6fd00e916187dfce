# Sourced by .ci/run (bash, from the repository root, after its log and run helpers), or run by
# hand: `.ci/fuzz.sh [SECONDS]` (each target, default 90).
#
# fuzz_decoder: coverage-guided fuzzing of the decoder with atheris (tests/fuzz/): each target
# (`stream`: Session.feed in random splits; `datagram`: decode_datagram with a clock) runs for
# IPFIX_FUZZ_SECONDS (90 s) on one core, seeded from the repository's captures, the bundled sample
# and encoder output (tests/fuzz/seeds.py). Any exception but DecodeError, a broken invariant, or
# one input running longer than IPFIX_FUZZ_TIMEOUT (10 s) fails it: the input is printed in hex
# with the command that replays it, to become a regression test in tests/.

fuzz_decoder() {
    local seconds="${IPFIX_FUZZ_SECONDS:-90}" timeout="${IPFIX_FUZZ_TIMEOUT:-10}"
    log "coverage-guided fuzzing (atheris): ${seconds} s per target"
    local work status=0 target dir artifact
    work="$(mktemp -d -t ipfix-fuzz.XXXXXX)"
    python3 -c 'import atheris' \
        || { echo "error: atheris is missing: pip install -e '.[fuzz]'" >&2; return 1; }
    run python3 tests/fuzz/seeds.py "$work/seeds" || return 1
    for target in stream datagram; do
        dir="$work/$target"
        mkdir -p "$dir/corpus" "$dir/artifacts"
        printf '+ fuzz %s (log: %s/log)\n' "$target" "$dir"
        if python3 tests/fuzz/fuzz_session.py "$target" -max_total_time="$seconds" \
                -timeout="$timeout" -max_len=16384 -rss_limit_mb=2048 -print_final_stats=1 \
                -artifact_prefix="$dir/artifacts/" "$dir/corpus" "$work/seeds" >"$dir/log" 2>&1
        then
            grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec)' \
                "$dir/log" || true
        else
            status=1
            echo "error: fuzz target '$target' failed; the end of its log:" >&2
            grep -v -E '^#[0-9]+[[:space:]]' "$dir/log" | tail -n 60 >&2  # not the progress
        fi
        for artifact in "$dir"/artifacts/*; do
            [ -e "$artifact" ] || continue
            status=1
            echo "finding ($(basename "$artifact")), input in hex:" >&2
            python3 -c 'import sys; print(open(sys.argv[1], "rb").read().hex())' "$artifact" >&2
            echo "replay: python3 tests/fuzz/targets.py $target \$HEX" >&2
        done
    done
    if [ "$status" = 0 ]; then
        rm -rf "$work"
    else
        echo "the fuzzers' logs, corpora and findings are kept in $work" >&2
    fi
    return "$status"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -uo pipefail
    cd "$(dirname "$0")/.."
    log() { printf '\n==> %s\n' "$*"; }
    run() { printf '+ %s\n' "$*"; "$@"; }
    IPFIX_FUZZ_SECONDS="${1:-${IPFIX_FUZZ_SECONDS:-90}}" fuzz_decoder
fi
