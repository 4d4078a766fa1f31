# Shared helpers for the scripts in this folder; source it, do not run it.
# shellcheck shell=bash

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SC_VENV:-$REPO/.venv}"
LOCAL_DIR="$REPO/.local"

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Runs `apt-get install` for the given Debian packages, refreshing the package
# lists first only when the install fails without it.
apt_install() {
    command -v apt-get >/dev/null || die "apt-get not found; install $* by hand"
    local sudo=()
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || die "need root (or sudo) to install $*"
        sudo=(sudo)
    fi
    log "installing Debian packages: $*"
    if ! DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends "$@" </dev/null; then
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update </dev/null
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends "$@" </dev/null
    fi
}

# Makes sure a Java 17+ runtime is present and JAVA_HOME points at it.
ensure_java() {
    if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then
        return
    fi
    if ! command -v java >/dev/null; then
        apt_install openjdk-17-jre-headless
    fi
    local java_bin
    java_bin="$(readlink -f "$(command -v java)")"
    JAVA_HOME="$(dirname "$(dirname "$java_bin")")"
    export JAVA_HOME
}

# Succeeds when something accepts TCP connections on HOST:PORT (HOST defaults to 127.0.0.1).
port_open() {
    (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null
}
