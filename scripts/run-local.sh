#!/usr/bin/env bash
# Starts the proxy in front of a local Spark Connect server, ready for PySpark:
#
#   scripts/run-local.sh                 # then, in Python:
#   requests.post("http://localhost:8081/control/sessions") ...
#   SparkSession.builder.remote("sc://localhost:8080").getOrCreate()
#
# It installs PySpark into $REPO/.venv if needed, starts (or reuses) a Spark Connect server
# named `local` on 127.0.0.1:15002, writes a proxy config to $REPO/.local/run-local/proxy.yaml
# and runs the proxy in the foreground (gRPC on 8080, control plane on 8081). Stop the proxy
# with Ctrl-C; stop the Spark server with `scripts/spark-server.sh stop local`.
# Arguments are passed on to the proxy (e.g. `--log-level debug`).
#
# Environment: SC_SPARK_PORT (15002), SC_PROXY_PORT (8080), SC_CONTROL_PORT (8081),
# SC_LISTEN_HOST (127.0.0.1).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

SPARK_PORT="${SC_SPARK_PORT:-15002}"
PROXY_PORT="${SC_PROXY_PORT:-8080}"
CONTROL_PORT="${SC_CONTROL_PORT:-8081}"
LISTEN_HOST="${SC_LISTEN_HOST:-127.0.0.1}"

bash scripts/setup-venv.sh
bash scripts/spark-server.sh start local "$SPARK_PORT"

CONFIG_DIR="$LOCAL_DIR/run-local"
CONFIG="$CONFIG_DIR/proxy.yaml"
mkdir -p "$CONFIG_DIR"
cat >"$CONFIG" <<YAML
# Written by scripts/run-local.sh; edit the script, not this file.
backend_provider:
  name: local spark
  type: PREDEFINED
  spec:
    endpoints:
      - url: 127.0.0.1:$SPARK_PORT
load_policy:
  type: ROUND_ROBIN
server:
  listen_addr: $LISTEN_HOST:$PROXY_PORT
control:
  listen_addr: $LISTEN_HOST:$CONTROL_PORT
log_level: info
YAML

log "Spark Connect server: 127.0.0.1:$SPARK_PORT (log: $LOCAL_DIR/spark/local/server.log)"
log "proxy config: $CONFIG"
log "connect with: SparkSession.builder.remote(\"sc://localhost:$PROXY_PORT\").getOrCreate()"
log "control plane: http://localhost:$CONTROL_PORT/control/sessions"
exec cargo run --release -p spark-connect-proxy -- --config-file "$CONFIG" "$@"
