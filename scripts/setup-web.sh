#!/usr/bin/env bash
# Makes ready what the browser and API tests drive: Debian's chromium (Playwright uses it over
# the DevTools protocol; no browser is downloaded) and the virtualenv $REPO/.venv-web (or
# $SC_WEB_VENV) with scripts/requirements-web.txt (Playwright, schemathesis). Idempotent.
# Prints nothing on stdout; scripts/test.sh exports what the tests need from the paths below.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

if ! command -v chromium >/dev/null; then
    apt_install chromium fonts-dejavu-core
fi
SC_VENV="${SC_WEB_VENV:-$REPO/.venv-web}" \
    SC_VENV_REQUIREMENTS="$REPO/scripts/requirements-web.txt" \
    SC_VENV_CHECK="playwright.sync_api, schemathesis" \
    bash "$REPO/scripts/setup-venv.sh"
