"""Scenario (issue 14, items 1 and 4): an engine whose executors run on a real Spark standalone
cluster, and its Spark UI in headless Chromium through the proxy.

Alice runs a job through the proxy: the master lists her engine as an application holding
cores, and the engine's executors (on the workers, not the driver) ran its tasks. Alice signs in
to the dashboard in Chromium and follows its "Spark UI" link (the tab carries her browser's UI
pass, a cookie, not her token); with that pass Chromium opens /control/backends/{id}/ui/jobs/: the Jobs page lists her completed
job (its description names her session), static assets load through the proxy path and the
Stages link leads to the Stages page under the same path. Bob (no session there) gets 403 for
the UI and the logs; Alice may read the logs."""

import json
import os
import time
import urllib.request

import requests
from playwright.sync_api import sync_playwright

from sc_e2e import CONTROL_URL, GRPC_PORT, finish, log, new_spark

ALICE = os.environ["SC_TOKEN_ALICE"]
BOB = os.environ["SC_TOKEN_BOB"]
MASTER_UI = os.environ["SC_TEST_SPARK_MASTER_UI"]
SHOTS = os.environ.get("SC_SCREENSHOT_DIR", "")


def as_user(token):
    return {"Authorization": f"Bearer {token}", "Accept": "application/json"}


res = requests.post(CONTROL_URL + "/control/sessions", headers=as_user(ALICE), timeout=300)
assert res.status_code == 200, res.text
session = res.json()
sid, backend = session["id"], session["backend"]
spark = new_spark(f"sc://localhost:{GRPC_PORT}/;token={ALICE};x-spark-connect-session-id={sid};session_id={sid}")
total = spark.range(0, 4_000_000, 1, 8).selectExpr("sum(id) AS s").collect()[0]["s"]
assert total == 4_000_000 * 3_999_999 // 2, total

# The master holds the engine as an application with cores.
state = json.load(urllib.request.urlopen(MASTER_UI + "/json/", timeout=10))
apps = [a for a in state["activeapps"] if a["name"] == f"spark-connect-{backend}"]
assert apps and apps[0]["cores"] > 0, state["activeapps"]
log("master:", [(a["name"], a["cores"], a["state"]) for a in state["activeapps"]])

# Its executors, as the engine's own UI reports them (through the proxy): tasks ran on the
# workers' executors, none on the driver.
ui = f"{CONTROL_URL}/control/backends/{backend}/ui"
apps_api = requests.get(f"{ui}/api/v1/applications", headers=as_user(ALICE), timeout=30)
assert apps_api.status_code == 200, apps_api.text
app_id = apps_api.json()[0]["id"]
executors = requests.get(f"{ui}/api/v1/applications/{app_id}/executors", headers=as_user(ALICE), timeout=30).json()
worked = [e for e in executors if e["id"] != "driver" and e["totalTasks"] > 0]
assert worked, executors
assert all(e["hostPort"].startswith("127.0.0.1:") for e in executors), executors
log("executors:", [(e["id"], e["hostPort"], e["totalTasks"]) for e in executors])

assets = []
with sync_playwright() as pw:
    browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
    # Alice signs in to the dashboard as a user would. It keeps her token in its own tab and
    # takes her browser's pass to the Spark UI pages: an HttpOnly, SameSite=Strict cookie that
    # holds no token. Its "Spark UI" link then opens her engine's UI in a new tab, which sends
    # the pass, not the token.
    alice = browser.new_context()
    board = alice.new_page()
    assert board.goto(f"{CONTROL_URL}/ui/").status == 200
    board.fill("#token", ALICE)
    board.press("#token", "Enter")
    deadline = time.time() + 30
    while not any(c["name"] == "sc_ui_pass" for c in alice.cookies()):
        assert time.time() < deadline, "no Spark UI pass after signing in to the dashboard"
        board.wait_for_timeout(100)
    cookie = next(c for c in alice.cookies() if c["name"] == "sc_ui_pass")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict", cookie
    assert ALICE not in cookie["value"] and cookie["path"] == "/control/backends/", cookie
    board.click("#tabs a[data-tab=backends]")
    link = board.locator(f"a[href='/control/backends/{backend}/ui/']")
    link.wait_for(timeout=30_000)
    with alice.expect_page() as opened:
        link.click()
    tab = opened.value
    tab.wait_for_load_state("networkidle")
    assert tab.url.startswith(f"{ui}/"), tab.url
    assert "Jobs" in tab.inner_text("body"), tab.inner_text("body")[:2000]
    log("dashboard link opened", tab.url)
    # No pass, no token: refused.
    stranger = browser.new_context()
    assert stranger.new_page().goto(f"{ui}/jobs/").status == 401
    page = alice.new_page()
    page.on("response", lambda r: assets.append((r.url, r.status)) if "/ui/static/" in r.url else None)
    answer = page.goto(f"{ui}/jobs/", wait_until="networkidle")
    assert answer.status == 200, answer.status
    text = page.inner_text("body")
    assert "Completed Jobs" in text, text[:2000]
    descriptions = page.locator("span.description-input").all_inner_texts()
    assert any(sid in d for d in descriptions), descriptions[:5]
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, "jobs.png"), full_page=True)
    # The UI's own navigation stays under the proxy path.
    page.click("a.nav-link:has-text('Stages')")
    page.wait_for_load_state("networkidle")
    assert page.url.startswith(f"{ui}/stages/"), page.url
    assert "Stages for All Jobs" in page.inner_text("body")
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, "stages.png"), full_page=True)
    bob = browser.new_context(extra_http_headers={"Authorization": f"Bearer {BOB}"})
    denied = bob.new_page().goto(f"{ui}/jobs/")
    assert denied.status == 403, denied.status
    browser.close()
assert len(assets) >= 3 and all(status in (200, 304) for _, status in assets), assets
log(f"{len(assets)} static assets through the proxy")

assert requests.get(f"{CONTROL_URL}/control/backends/{backend}/logs", headers=as_user(BOB), timeout=30).status_code == 403
logs = requests.get(f"{CONTROL_URL}/control/backends/{backend}/logs?lines=2000", headers=as_user(ALICE), timeout=30)
assert logs.status_code == 200 and "SparkConnect" in logs.text, logs.status_code

spark.stop()
finish(backend=backend, app=app_id, executors=len(worked), assets=len(assets))
