#!/usr/bin/env bash
# Starts and stops a Spark standalone cluster from the pyspark wheel in $REPO/.venv: a master
# and two workers, every address on loopback (SPARK_LOCAL_IP=127.0.0.1). LAUNCH engines run
# their executors there with `master: spark://127.0.0.1:17077`.
#
#   scripts/spark-cluster.sh start     # waits until both workers are registered
#   scripts/spark-cluster.sh stop
#   scripts/spark-cluster.sh status
#
# The wheel has bin/spark-class but no sbin/start-*.sh, so the daemons run directly, each in
# its own process group, with logs, pids and work dirs under $REPO/.local/spark-cluster/.
# Environment: SC_CLUSTER_MASTER_PORT (17077), SC_CLUSTER_MASTER_UI_PORT (18080),
# SC_CLUSTER_WORKER_UI_PORTS ("18081 18082"), SC_CLUSTER_WORKER_CORES (1),
# SC_CLUSTER_WORKER_MEMORY (1g), SC_CLUSTER_START_TIMEOUT (seconds, 120).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

MASTER_PORT="${SC_CLUSTER_MASTER_PORT:-17077}"
MASTER_UI_PORT="${SC_CLUSTER_MASTER_UI_PORT:-18080}"
read -r -a WORKER_UI_PORTS <<<"${SC_CLUSTER_WORKER_UI_PORTS:-18081 18082}"
WORKER_CORES="${SC_CLUSTER_WORKER_CORES:-1}"
WORKER_MEMORY="${SC_CLUSTER_WORKER_MEMORY:-1g}"
DIR="$LOCAL_DIR/spark-cluster"
MASTER_URL="spark://127.0.0.1:$MASTER_PORT"

usage() {
    echo "usage: $0 start | stop | status" >&2
    exit 2
}

# Prints the pid of daemon NAME (master, worker-1, ...) if it is alive.
alive_pid() {
    local pid_file="$DIR/$1.pid" pid
    [ -f "$pid_file" ] || return 1
    pid="$(cat "$pid_file")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'org.apache.spark.deploy' || return 1
    echo "$pid"
}

daemons() {
    echo master
    local i
    for i in "${!WORKER_UI_PORTS[@]}"; do
        echo "worker-$((i + 1))"
    done
}

stop_daemon() {
    local name="$1" pid
    pid="$(alive_pid "$name")" || { rm -f "$DIR/$name.pid"; return 0; }
    log "stopping $name (pid $pid)"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$DIR/$name.pid"
}

cmd_stop() {
    local name
    # Workers first: they would try to reconnect to a master that is gone.
    for name in $(daemons | tac); do
        stop_daemon "$name"
    done
}

cmd_status() {
    local name pid up=0
    for name in $(daemons); do
        if pid="$(alive_pid "$name")"; then
            echo "$name running (pid $pid)"
        else
            echo "$name stopped"
            up=1
        fi
    done
    return "$up"
}

# Starts one daemon in its own process group; $! is the JVM (spark-class execs java).
spawn() {
    local name="$1"
    shift
    local log_file="$DIR/$name.log"
    : >"$log_file"
    (
        cd "$DIR"
        export SPARK_HOME="$SPARK_HOME_DIR" SPARK_LOCAL_IP=127.0.0.1 JAVA_HOME
        export SPARK_LOG_DIR="$DIR" SPARK_WORKER_DIR="$DIR/$name-work"
        exec setsid "$SPARK_HOME_DIR/bin/spark-class" "$@"
    ) </dev/null >>"$log_file" 2>&1 &
    echo "$!" >"$DIR/$name.pid"
}

cmd_start() {
    if cmd_status >/dev/null 2>&1; then
        log "Spark standalone cluster already running at $MASTER_URL"
        return 0
    fi
    cmd_stop
    [ -x "$VENV/bin/python" ] || die "no virtualenv at $VENV; run scripts/setup-venv.sh first"
    ensure_java
    SPARK_HOME_DIR="$("$VENV/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
    [ -x "$SPARK_HOME_DIR/bin/spark-class" ] || die "no bin/spark-class in $SPARK_HOME_DIR"
    local port
    for port in "$MASTER_PORT" "$MASTER_UI_PORT" "${WORKER_UI_PORTS[@]}"; do
        port_open "$port" && die "127.0.0.1:$port is already in use; cannot start the Spark standalone cluster"
    done
    mkdir -p "$DIR"
    log "starting the Spark standalone master at $MASTER_URL (UI http://127.0.0.1:$MASTER_UI_PORT, logs in $DIR)"
    spawn master org.apache.spark.deploy.master.Master \
        --host 127.0.0.1 --port "$MASTER_PORT" --webui-port "$MASTER_UI_PORT"
    local timeout="${SC_CLUSTER_START_TIMEOUT:-120}" waited=0
    until port_open "$MASTER_PORT"; do
        alive_pid master >/dev/null || { tail -n 30 "$DIR/master.log" >&2; die "the master exited at start"; }
        [ "$waited" -lt "$timeout" ] || { cmd_stop; die "the master did not listen within ${timeout} s"; }
        sleep 1
        waited=$((waited + 1))
    done
    local i
    for i in "${!WORKER_UI_PORTS[@]}"; do
        spawn "worker-$((i + 1))" org.apache.spark.deploy.worker.Worker "$MASTER_URL" \
            --host 127.0.0.1 --cores "$WORKER_CORES" --memory "$WORKER_MEMORY" \
            --webui-port "${WORKER_UI_PORTS[$i]}"
    done
    local want="${#WORKER_UI_PORTS[@]}" alive
    while :; do
        alive="$("$VENV/bin/python" - "$MASTER_UI_PORT" <<'PY' 2>/dev/null || echo 0
import json, sys, urllib.request
state = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/json/", timeout=5))
print(sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE"))
PY
)"
        [ "$alive" -ge "$want" ] && break
        [ "$waited" -lt "$timeout" ] || { cmd_stop; die "only $alive of $want workers registered within ${timeout} s (logs in $DIR)"; }
        sleep 1
        waited=$((waited + 1))
    done
    log "Spark standalone cluster ready at $MASTER_URL with $want workers after ~${waited} s"
}

[ $# -eq 1 ] || usage
case "$1" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*) usage ;;
esac
