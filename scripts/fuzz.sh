#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time:
#   scripts/fuzz.sh [SECONDS]        (SECONDS per target, default 24)
#
# Installs the nightly toolchain and cargo-fuzz when they are missing. Each target starts from
# the seeds checked in under fuzz/seeds/<target>/ and from the corpus it grew in earlier runs,
# kept in .local/fuzz/corpus/<target>/ (not in git). Every target runs, then the script fails if
# any of them crashed; crashing inputs are written to .local/fuzz/artifacts/<target>/ and the
# command that replays one is printed.
#
# Environment: FUZZ_TARGETS (space-separated subset), CARGO_TARGET_DIR (build directory).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

budget="${1:-24}"
[[ "$budget" =~ ^[0-9]+$ ]] && [ "$budget" -gt 0 ] || die "usage: scripts/fuzz.sh [SECONDS]"
read -r -a targets <<<"${FUZZ_TARGETS:-wire_request_fields wire_with_user config_yaml router_read_request router_redact_config}"

if ! cargo +nightly --version >/dev/null 2>&1; then
    command -v rustup >/dev/null || die "the nightly toolchain is missing and rustup is not installed"
    log "installing the nightly toolchain"
    rustup toolchain install nightly --profile minimal </dev/null
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked </dev/null
fi

fuzz=(cargo +nightly fuzz)
log "building the fuzz targets"
"${fuzz[@]}" build --fuzz-dir fuzz

failed=()
for target in "${targets[@]}"; do
    corpus="$LOCAL_DIR/fuzz/corpus/$target"
    artifacts="$LOCAL_DIR/fuzz/artifacts/$target"
    logfile="$LOCAL_DIR/fuzz/$target.log"
    started="$LOCAL_DIR/fuzz/.$target.started"
    mkdir -p "$corpus" "$artifacts"
    touch "$started"
    extra=()
    if [ -f "fuzz/dicts/$target.dict" ]; then
        extra+=("-dict=fuzz/dicts/$target.dict")
    fi
    log "fuzzing $target for ${budget}s (log: $logfile)"
    status=0
    "${fuzz[@]}" run --fuzz-dir fuzz "$target" "$corpus" "fuzz/seeds/$target" -- \
        -max_total_time="$budget" -timeout=25 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "${extra[@]}" >"$logfile" 2>&1 || status=$?
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$logfile" | tail -n 1)"
    if [ "$status" -ne 0 ]; then
        tail -n 60 "$logfile" >&2
        crash="$(find "$artifacts" -type f -newer "$started" | head -n 1)"
        log "FAILED: $target exited $status after ${runs:-?} runs; input: ${crash:-see the log}"
        log "replay: cargo +nightly fuzz run --fuzz-dir fuzz $target ${crash:-<input>}"
        failed+=("$target")
    else
        log "ok: $target, ${runs:-?} runs in ${budget}s, corpus $(find "$corpus" -type f | wc -l) inputs"
    fi
done

if [ "${#failed[@]}" -ne 0 ]; then
    die "fuzz targets failed: ${failed[*]}"
fi
log "every fuzz target ran ${budget}s without a crash"
