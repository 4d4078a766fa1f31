#!/usr/bin/env bash
# Starts and stops local Spark Connect servers from the pyspark wheel in $REPO/.venv.
#
#   scripts/spark-server.sh start NAME [ADDRESS:]PORT [--conf k=v ...]   # waits until ready
#   scripts/spark-server.sh stop NAME
#   scripts/spark-server.sh status NAME
#
# ADDRESS is the loopback address the server's gRPC port binds (default 127.0.0.1); servers on
# different addresses (127.0.0.2, 127.0.0.3, ...) may share one port, e.g. for DNS records that
# differ only by address. Each server keeps its log, pid, scratch, warehouse and checkpoint
# directory (for DataFrame.checkpoint) under $REPO/.local/spark/NAME/. `start` on a server that
# is already up on the same address and port does nothing.
# Environment: SC_SPARK_START_TIMEOUT (seconds, default 120), SC_SPARK_DRIVER_MEMORY (default 2g),
# SC_SPARK_AUTH_TOKEN (the server demands this pre-shared token; written to its spark-defaults.conf).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
    echo "usage: $0 start NAME [ADDRESS:]PORT [--conf k=v ...] | stop NAME | status NAME" >&2
    exit 2
}

server_dir() { echo "$LOCAL_DIR/spark/$1"; }

# Prints the pid of server NAME if it is alive.
alive_pid() {
    local pid_file
    pid_file="$(server_dir "$1")/pid"
    [ -f "$pid_file" ] || return 1
    local pid
    pid="$(cat "$pid_file")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    # Guard against a recycled pid (e.g. a pid file left from before a reboot).
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q SparkConnectServer || return 1
    echo "$pid"
}

cmd_stop() {
    local name="$1" dir pid
    dir="$(server_dir "$name")"
    if ! pid="$(alive_pid "$name")"; then
        rm -f "$dir/pid"
        return 0
    fi
    log "stopping Spark Connect server $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "server $name did not stop in 20 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/pid"
}

cmd_status() {
    local name="$1" pid
    if pid="$(alive_pid "$name")"; then
        echo "$name running (pid $pid, on $(cat "$(server_dir "$name")/address" 2>/dev/null || echo 127.0.0.1):$(cat "$(server_dir "$name")/port" 2>/dev/null || echo '?'))"
    else
        echo "$name stopped"
        return 1
    fi
}

cmd_start() {
    local name="$1" port="$2" address=127.0.0.1
    shift 2
    if [[ "$port" == *:* ]]; then
        address="${port%:*}"
        port="${port##*:}"
    fi
    [[ "$port" =~ ^[0-9]+$ ]] || die "'$port' is not a port number (write PORT or ADDRESS:PORT)"
    [[ "$address" == 127.* ]] || die "'$address' is not a loopback address; test servers stay on 127.0.0.0/8"
    local dir
    dir="$(server_dir "$name")"
    mkdir -p "$dir"

    if pid="$(alive_pid "$name")"; then
        if [ "$(cat "$dir/port" 2>/dev/null)" = "$port" ] &&
            [ "$(cat "$dir/address" 2>/dev/null || echo 127.0.0.1)" = "$address" ] &&
            port_open "$port" "$address"; then
            log "Spark Connect server $name already running on $address:$port (pid $pid)"
            return 0
        fi
        cmd_stop "$name"
    fi
    if port_open "$port" "$address"; then
        die "$address:$port is already in use by another process; cannot start Spark Connect server $name"
    fi

    [ -x "$VENV/bin/python" ] || die "no virtualenv at $VENV; run scripts/setup-venv.sh first"
    ensure_java
    local spark_home
    spark_home="$("$VENV/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
    [ -x "$spark_home/bin/spark-submit" ] || die "no spark-submit in $spark_home"
    ls "$spark_home"/jars/spark-connect_*.jar >/dev/null 2>&1 ||
        die "the pyspark in $VENV has no Spark Connect server jar (need pyspark >= 4.0)"

    mkdir -p "$dir/tmp" "$dir/warehouse" "$dir/checkpoints" "$dir/conf" "$LOCAL_DIR/ivy"
    # SC_SPARK_AUTH_TOKEN: the server demands this pre-shared token. It goes into the server's
    # own spark-defaults.conf (readable by this user only), so it is part of Spark's
    # configuration, as an operator would set it, and never on a command line.
    rm -f "$dir/conf/spark-defaults.conf"
    if [ -n "${SC_SPARK_AUTH_TOKEN:-}" ]; then
        (
            umask 077
            printf 'spark.connect.authenticate.token %s\n' "$SC_SPARK_AUTH_TOKEN" \
                >"$dir/conf/spark-defaults.conf"
        )
    fi
    local log_file="$dir/server.log"
    : >"$log_file"
    echo "$port" >"$dir/port"
    echo "$address" >"$dir/address"

    log "starting Spark Connect server $name on $address:$port (log: $log_file)"
    # setsid: the server gets its own process group, so a Ctrl-C in the calling
    # terminal does not reach it and `stop` decides when it ends.
    # spark-submit execs spark-class, which execs java: $! ends up the JVM's pid.
    (
        cd "$dir"
        export SPARK_HOME="$spark_home"
        export SPARK_LOCAL_IP=127.0.0.1
        export SPARK_CONF_DIR="$dir/conf"
        export PYSPARK_PYTHON="$VENV/bin/python"
        export PYSPARK_DRIVER_PYTHON="$VENV/bin/python"
        export JAVA_HOME
        unset SC_SPARK_AUTH_TOKEN SPARK_CONNECT_AUTHENTICATE_TOKEN
        exec setsid "$spark_home/bin/spark-submit" \
            --class org.apache.spark.sql.connect.service.SparkConnectServer \
            --name "spark-connect-$name" \
            --master 'local[2]' \
            --driver-memory "${SC_SPARK_DRIVER_MEMORY:-2g}" \
            --conf spark.connect.grpc.binding.port="$port" \
            --conf spark.connect.grpc.binding.address="$address" \
            --conf spark.ui.enabled=false \
            --conf spark.ui.showConsoleProgress=false \
            --conf spark.local.dir="$dir/tmp" \
            --conf spark.jars.ivy="$LOCAL_DIR/ivy" \
            --conf spark.sql.warehouse.dir="$dir/warehouse" \
            --conf spark.checkpoint.dir="$dir/checkpoints" \
            --conf spark.sql.catalogImplementation=in-memory \
            --conf spark.sql.shuffle.partitions=4 \
            --conf "spark.driver.extraJavaOptions=-Djava.io.tmpdir=$dir/tmp" \
            "$@" \
            spark-internal
    ) </dev/null >>"$log_file" 2>&1 &
    local pid=$!
    echo "$pid" >"$dir/pid"

    local timeout="${SC_SPARK_START_TIMEOUT:-120}" waited=0
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "Spark Connect server $name exited during startup; last log lines:"
            tail -n 40 "$log_file" >&2
            rm -f "$dir/pid"
            exit 1
        fi
        if grep -q "Spark Connect server started" "$log_file" && port_open "$port" "$address"; then
            break
        fi
        if [ "$waited" -ge "$timeout" ]; then
            log "Spark Connect server $name not ready after ${timeout} s; last log lines:"
            tail -n 40 "$log_file" >&2
            cmd_stop "$name"
            exit 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    log "Spark Connect server $name ready on $address:$port after ~${waited} s (pid $pid)"
}

[ $# -ge 1 ] || usage
case "$1" in
start)
    [ $# -ge 3 ] || usage
    shift
    cmd_start "$@"
    ;;
stop)
    [ $# -eq 2 ] || usage
    cmd_stop "$2"
    ;;
status)
    [ $# -eq 2 ] || usage
    cmd_status "$2"
    ;;
*) usage ;;
esac
