#!/usr/bin/env bash
# Runs every test of the workspace, the end-to-end ones included:
#   1. makes sure the Python virtualenv ($REPO/.venv) has PySpark (scripts/setup-venv.sh);
#   2. builds every test and the binaries they drive;
#   3. starts real Spark Connect servers from the pyspark wheel: two plain ones on
#      127.0.0.2:15102 (A) and 127.0.0.1:15103 (B), both cutting reattachable result streams
#      every 1 MiB so that ReattachExecute is ordinary traffic, a secured one on
#      127.0.0.1:15104 that demands a pre-shared token (spark.connect.authenticate.token, a
#      fresh random one per run, passed in the environment so it shows in no command line),
#      and A's twin on 127.0.0.3:15102: the DNS provider's test serves two servers that
#      differ only by address from DNS records (its dnsmasq is started by the test itself,
#      which also stops it; this script installs it);
#   4. starts a Redis server on 127.0.0.1:16379 (in memory only) for the proxy-replica tests,
#      and, when the engine tests run (the whole suite, or arguments naming `engines`), a Spark
#      standalone cluster (scripts/spark-cluster.sh: a master on 127.0.0.1:17077 and two
#      workers of 1 core and 1 GiB) for LAUNCH engines' executors;
#   5. runs `cargo test --workspace --no-fail-fast` (or `cargo test ARGS...` when given
#      arguments, e.g. `scripts/test.sh -p sc-e2e dead_backend`) with the servers' addresses
#      exported;
#   6. stops the servers, whatever happened. The exit code is cargo test's.
#
# The browser and API tests use Debian's chromium and a second virtualenv (.venv-web, with
# Playwright and schemathesis), both made ready by scripts/setup-web.sh.
#
# Environment: SC_TEST_PORT_A / SC_TEST_PORT_B / SC_TEST_PORT_SECURE (default 15102 / 15103 /
# 15104; A and its twin share SC_TEST_PORT_A), SC_TEST_REDIS_PORT (16379), RUST_TEST_THREADS
# (default 2, for two cores), SC_PROXY_BIN (a prebuilt proxy), SC_CUSTOM_PROXY_BIN (a prebuilt
# custom-spark-connect-proxy), SC_TEST_SPARK_CLUSTER (1: start the standalone cluster whatever
# the arguments; 0: never).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"
# PySpark would take this as its token (and then insist on TLS); the servers as theirs.
unset SPARK_CONNECT_AUTHENTICATE_TOKEN SPARK_REMOTE

PORT_A="${SC_TEST_PORT_A:-15102}"
PORT_B="${SC_TEST_PORT_B:-15103}"
PORT_SECURE="${SC_TEST_PORT_SECURE:-15104}"
SERVERS=(test-a test-b test-secure test-twin)
# A and its twin: one port, two loopback addresses.
ADDRESS_A=127.0.0.2
ADDRESS_TWIN=127.0.0.3
SPARK_CONF=(--conf spark.connect.execute.reattachable.senderMaxStreamSize=1m)

bash scripts/setup-venv.sh
# Chromium and the virtualenv with Playwright and schemathesis (the dashboard's and the
# control plane's end-to-end tests).
bash scripts/setup-web.sh
WEB_VENV="${SC_WEB_VENV:-$REPO/.venv-web}"
# Tools some tests drive: tmux (the CLI in a real terminal), curl (the control plane over TLS),
# redis-server (the store two proxy replicas share), dnsmasq (the DNS server of the DNS
# provider's tests; Debian installs it in /usr/sbin), chromium (the Spark UI through the proxy,
# driven by playwright from the virtualenv).
missing=()
for tool in tmux curl chromium; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
command -v redis-server >/dev/null || missing+=(redis-server)
dnsmasq_bin() { command -v dnsmasq || { [ -x /usr/sbin/dnsmasq ] && echo /usr/sbin/dnsmasq; }; }
dnsmasq_bin >/dev/null || missing+=(dnsmasq-base)
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
SC_TEST_DNSMASQ="$(dnsmasq_bin)" || die "dnsmasq is not installed (Debian package dnsmasq-base)"
export SC_TEST_DNSMASQ

# One build for every test target and the binaries they drive (both binaries have integration
# tests, so cargo builds them too). A separate `cargo build --bins` would resolve dependency
# features without the dev-dependencies and compile much of the tree a second time.
log "building the workspace's tests and binaries"
cargo test --workspace --no-run

REDIS_PORT="${SC_TEST_REDIS_PORT:-16379}"
REDIS_DIR="$LOCAL_DIR/redis"

# The standalone cluster costs three JVMs: only for the tests that use it.
case "${SC_TEST_SPARK_CLUSTER:-}" in
1) CLUSTER=1 ;;
0) CLUSTER=0 ;;
*)
    CLUSTER=0
    if [ $# -eq 0 ]; then
        CLUSTER=1
    else
        for arg in "$@"; do
            [[ "$arg" == *engines* ]] && CLUSTER=1
        done
    fi
    ;;
esac

stop_servers() {
    local name
    for name in "${SERVERS[@]}"; do
        bash scripts/spark-server.sh stop "$name" || true
    done
    if [ "$CLUSTER" = 1 ]; then
        bash scripts/spark-cluster.sh stop || true
    fi
    if [ -f "$REDIS_DIR/redis.pid" ]; then
        kill "$(cat "$REDIS_DIR/redis.pid")" 2>/dev/null || true
        rm -f "$REDIS_DIR/redis.pid"
    fi
}
# Servers left over from an interrupted run are replaced: each run starts fresh ones.
stop_servers
trap stop_servers EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

SECURE_TOKEN="$("$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(24))')"

# Start all at once: each takes a few seconds of mostly JVM start-up.
pids=()
# test-a gets a 3 GiB driver: sc-client's rows test makes a DataFrame of 300 MB of local rows,
# which Spark holds several times over while planning it (2 GiB runs out of heap).
SC_SPARK_DRIVER_MEMORY="${SC_SPARK_DRIVER_MEMORY:-3g}" \
    bash scripts/spark-server.sh start test-a "$ADDRESS_A:$PORT_A" "${SPARK_CONF[@]}" &
pids+=($!)
# The twin serves one test only: less memory.
SC_SPARK_DRIVER_MEMORY=1g bash scripts/spark-server.sh start test-twin "$ADDRESS_TWIN:$PORT_A" &
pids+=($!)
bash scripts/spark-server.sh start test-b "$PORT_B" "${SPARK_CONF[@]}" &
pids+=($!)
SC_SPARK_AUTH_TOKEN="$SECURE_TOKEN" \
    bash scripts/spark-server.sh start test-secure "$PORT_SECURE" &
pids+=($!)
if [ "$CLUSTER" = 1 ]; then
    bash scripts/spark-cluster.sh start &
    pids+=($!)
fi
failed=0
for pid in "${pids[@]}"; do
    wait "$pid" || failed=1
done
[ "$failed" -eq 0 ] || die "a Spark Connect server (or the standalone cluster) did not start (logs above)"
if [ "$CLUSTER" = 1 ]; then
    export SC_TEST_SPARK_MASTER="spark://127.0.0.1:${SC_CLUSTER_MASTER_PORT:-17077}"
    export SC_TEST_SPARK_MASTER_UI="http://127.0.0.1:${SC_CLUSTER_MASTER_UI_PORT:-18080}"
fi

# A Redis server for the replica tests: in memory only, on loopback, in the background.
mkdir -p "$REDIS_DIR"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize yes --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" \
    --dir "$REDIS_DIR" || die "redis-server did not start (log: $REDIS_DIR/redis.log)"
for _ in $(seq 1 50); do
    port_open "$REDIS_PORT" && break
    sleep 0.1
done
port_open "$REDIS_PORT" || die "redis-server is not listening on $REDIS_PORT"
export SC_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"

export SC_TEST_SPARK_A="$ADDRESS_A:$PORT_A"
export SC_TEST_SPARK_TWIN="$ADDRESS_TWIN:$PORT_A"
export SC_TEST_SPARK_B="127.0.0.1:$PORT_B"
export SC_TEST_SPARK_SECURE="127.0.0.1:$PORT_SECURE"
export SC_TEST_SPARK_SECURE_TOKEN="$SECURE_TOKEN"
export SC_TEST_PYTHON="$VENV/bin/python"
export SC_TEST_WEB_PYTHON="$WEB_VENV/bin/python"
export SC_TEST_SCHEMATHESIS="$WEB_VENV/bin/st"
SC_TEST_CHROMIUM="$(command -v chromium)"
export SC_TEST_CHROMIUM
# A prebuilt proxy (e.g. a release build) may be given in SC_PROXY_BIN.
export SC_PROXY_BIN="${SC_PROXY_BIN:-$REPO/target/debug/spark-connect-proxy}"
# The example binary built on sc_proxy::main (examples/custom-provider; built above, since its
# package has integration tests).
export SC_CUSTOM_PROXY_BIN="${SC_CUSTOM_PROXY_BIN:-$REPO/target/debug/custom-spark-connect-proxy}"
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-2}"

if [ $# -eq 0 ]; then
    set -- --workspace --no-fail-fast
fi
log "cargo test $*"
status=0
cargo test "$@" || status=$?
if [ "$*" = "--workspace --no-fail-fast" ]; then
    # The router's own suite once more through its tower service (RouterService, what an
    # embedder serves with tonic) instead of the HTTP/2 relay the proxy binary uses: both
    # transports keep the same behaviour.
    # The test executables the workspace build made are run again (`cargo test -p sc-router`
    # would resolve the features anew and rebuild about 90 crates).
    log "sc-router's tests again, SC_TEST_TRANSPORT=tower"
    mapfile -t router_tests < <(cargo test --workspace --no-run --message-format=json 2>/dev/null |
        python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and "/crates/sc-router#" in m["package_id"]:
        print(m["executable"])
')
    if [ "${#router_tests[@]}" -eq 0 ]; then
        log "found no sc-router test executables in the workspace build"
        status=1
    fi
    for test in "${router_tests[@]}"; do
        (cd crates/sc-router && SC_TEST_TRANSPORT=tower "$test" -q) || status=$?
    done
fi
if [ "$status" -ne 0 ]; then
    log "tests failed (exit $status); Spark server logs: $LOCAL_DIR/spark/test-*/server.log"
fi
exit "$status"
