#!/usr/bin/env bash
# Runs the benchmark suite (see docs/benchmarks.md): installs Debian's nginx if it is missing,
# builds the release proxy and sc-bench, and runs `sc-bench run`, which measures direct
# connections, the proxy and nginx side by side and prints a Markdown report.
#
#   bench/run.sh [--quick | --smoke] [--with-spark] [sc-bench run options, e.g. --out FILE]
#
#   --quick        smaller sizes, about a minute and a half
#   --smoke        a tiny run for CI (well under a minute); exits non-zero when a call fails
#   --with-spark   also measure against a local Spark Connect server, started here with
#                  scripts/spark-server.sh on port $SC_BENCH_SPARK_PORT (default 15110) and
#                  stopped at the end (needs the virtualenv of scripts/setup-venv.sh)
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$REPO"

args=()
with_spark=0
for arg in "$@"; do
    case "$arg" in
    --with-spark) with_spark=1 ;;
    *) args+=("$arg") ;;
    esac
done

if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    apt_install nginx
fi

log "building the release proxy and sc-bench"
cargo build --release --quiet -p spark-connect-proxy -p sc-bench

if [ "$with_spark" = 1 ]; then
    port="${SC_BENCH_SPARK_PORT:-15110}"
    "$REPO/scripts/setup-venv.sh"
    trap '"$REPO/scripts/spark-server.sh" stop bench' EXIT
    "$REPO/scripts/spark-server.sh" start bench "$port"
    args+=(--spark "127.0.0.1:$port")
fi

"$REPO/target/release/sc-bench" run --proxy-bin "$REPO/target/release/spark-connect-proxy" "${args[@]}"
