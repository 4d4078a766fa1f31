#!/usr/bin/env bash
# Runs the proxy with its default backend provider, ready for PySpark:
#
#   scripts/run-local.sh                 # then, in Python:
#   requests.post("http://localhost:8081/control/sessions") ...
#   SparkSession.builder.remote("sc://localhost:8080").getOrCreate()
#
# It installs PySpark into $REPO/.venv if needed (the Spark Connect server comes with it), writes
# a proxy config to $REPO/.local/run-local/proxy.yaml and runs the proxy in the foreground (gRPC
# on 8080, control plane on 8081). The proxy's default provider, LAUNCH, starts a Spark Connect
# server from that pyspark when the first session of a user arrives (one engine per user; the
# first session waits for it, ~15 s) and stops it 10 minutes after that user's last session.
# Sessions are kept in $REPO/.local/sessions.redb, so a restarted proxy keeps them. Stop the
# proxy (and its engines) with Ctrl-C. Arguments are passed on to the proxy (`--log-level debug`).
#
# Environment: SC_PROXY_PORT (8080), SC_CONTROL_PORT (8081), SC_LISTEN_HOST (127.0.0.1).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

PROXY_PORT="${SC_PROXY_PORT:-8080}"
CONTROL_PORT="${SC_CONTROL_PORT:-8081}"
LISTEN_HOST="${SC_LISTEN_HOST:-127.0.0.1}"

bash scripts/setup-venv.sh
ensure_java

CONFIG_DIR="$LOCAL_DIR/run-local"
CONFIG="$CONFIG_DIR/proxy.yaml"
mkdir -p "$CONFIG_DIR"
cat >"$CONFIG" <<YAML
# Written by scripts/run-local.sh; edit the script, not this file.
# LAUNCH (the proxy's default provider) starts Spark Connect servers on demand, one per user,
# from the pyspark in $VENV; the policy is then ON_DEMAND.
backend_provider:
  name: local spark
  type: LAUNCH
  spec:
    python: $VENV/bin/python
    work_dir: $LOCAL_DIR/engines
server:
  listen_addr: $LISTEN_HOST:$PROXY_PORT
control:
  listen_addr: $LISTEN_HOST:$CONTROL_PORT
store:
  type: embedded
  path: $LOCAL_DIR/sessions.redb
log_level: info
YAML

log "proxy config: $CONFIG (engine logs: $LOCAL_DIR/engines/<engine>/server.log)"
log "connect with: SparkSession.builder.remote(\"sc://localhost:$PROXY_PORT\").getOrCreate()"
log "control plane: http://localhost:$CONTROL_PORT/control/sessions"
exec cargo run --release -p spark-connect-proxy -- --config-file "$CONFIG" "$@"
