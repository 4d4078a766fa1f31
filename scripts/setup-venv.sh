#!/usr/bin/env bash
# Creates (or refreshes) the Python virtualenv at $REPO/.venv with the packages in
# scripts/requirements.txt: PySpark (reference client and Spark Connect server),
# requests and pytest. Idempotent: a stamp keyed on the requirements file and the
# interpreter version makes a second run a no-op.
#
# Another virtualenv from another file: SC_VENV (its directory), SC_VENV_REQUIREMENTS (the
# file) and SC_VENV_CHECK (modules that must import afterwards), as scripts/setup-web.sh does.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

REQUIREMENTS="${SC_VENV_REQUIREMENTS:-$REPO/scripts/requirements.txt}"
# Modules that must import: quickly before deciding nothing is to do, fully after installing.
PRECHECK="${SC_VENV_CHECK:-pyspark, requests}"
CHECK="${SC_VENV_CHECK:-pyspark, pyspark.sql.connect.session, requests, pytest}"
STAMP="$VENV/.sc-requirements.sha256"

find_python() {
    local candidate
    for candidate in "${SC_PYTHON:-}" python3.11 python3 python; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null &&
            "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
            command -v "$candidate"
            return
        fi
    done
    apt_install python3 python3-venv python3-pip >&2
    command -v python3
}

PYTHON="$(find_python)"
want="$(
    {
        sha256sum "$REQUIREMENTS" | cut -d' ' -f1
        "$PYTHON" -c 'import sys; print(sys.version.split()[0])'
    } | sha256sum | cut -d' ' -f1
)"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] &&
    "$VENV/bin/python" -c "import $PRECHECK" 2>/dev/null; then
    log "virtualenv $VENV is up to date"
    exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtualenv $VENV with $PYTHON"
    if ! "$PYTHON" -m venv "$VENV"; then
        # Debian's python3 needs python3-venv for ensurepip.
        apt_install python3-venv
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV"
    fi
fi

log "installing $REQUIREMENTS into $VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS" </dev/null
"$VENV/bin/python" -c "import $CHECK" >&2
echo "$want" >"$STAMP"
log "virtualenv $VENV is ready"
