"""Drives the dashboard in headless Chromium (Debian's, over the DevTools protocol with
Playwright) against the running proxy; run with the web virtualenv (scripts/setup-web.sh).

Environment:
  SC_CONTROL_URL   the proxy's control plane
  SC_TEST_CHROMIUM the chromium binary
  DASH_MODE        `overview` (sessions, detail, backends, drain, proxy, API),
                   `after_drain` (the new sessions shown on the other backend; undrain), or
                   `auth` (sign-in, each user sees their own sessions, admins all)
  DASH_EXPECT      JSON: [{"id", "backend", "state", "user"}] sessions the page must show
  DASH_DRAIN       the backend to drain (overview) or undrain (after_drain)
  DASH_TOKENS      JSON {"alice": token, "root": token} (auth)
  DASH_SHOTS       folder for the screenshots
Prints RESULT {...} with what the page showed.
"""

import json
import os
import sys

import requests
from playwright.sync_api import expect, sync_playwright

CONTROL = os.environ["SC_CONTROL_URL"]
MODE = os.environ["DASH_MODE"]
EXPECT = json.loads(os.environ.get("DASH_EXPECT", "[]"))
SHOTS = os.environ["DASH_SHOTS"]
TIMEOUT = 20_000  # ms: the page refreshes every 2 s


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def shot(page, name):
    path = os.path.join(SHOTS, name + ".png")
    page.screenshot(path=path, full_page=False)
    return path


def session_row(page, session_id):
    return page.locator(f'#sessions-table tbody tr[data-id="{session_id}"]')


def shown_sessions(page):
    """(id, state, backend) of every session row on the page."""
    return page.eval_on_selector_all(
        "#sessions-table tbody tr",
        """rows => rows.map(r => ({
            id: r.dataset.id,
            state: r.querySelector('td.state').textContent.trim(),
            backend: r.querySelector('td.backend').textContent.trim(),
        }))""",
    )


def expect_sessions(page):
    for s in EXPECT:
        row = session_row(page, s["id"])
        expect(row).to_have_count(1, timeout=TIMEOUT)
        expect(row.locator("td.backend")).to_have_text(s["backend"], timeout=TIMEOUT)
        expect(row.locator("td.state")).to_have_text(s["state"], timeout=TIMEOUT)


def backend_state(backend):
    body = requests.get(CONTROL + "/control/backends", timeout=10).json()
    return next(b["state"] for b in body["backends"] if b["id"] == backend)


def no_horizontal_scroll(page):
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def overview(browser):
    result = {}
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(CONTROL + "/ui/")
    expect_sessions(page)
    result["shown"] = shown_sessions(page)
    # The detail view of the first session.
    first = EXPECT[0]["id"]
    session_row(page, first).click()
    detail = page.locator("#session-detail")
    expect(detail).to_be_visible()
    expect(detail).to_contain_text(first)
    expect(detail).to_contain_text("Operations in flight")
    result["detail"] = detail.inner_text()
    result["shots"] = [shot(page, "sessions-1366x768")]
    # Filters: by backend.
    page.select_option("#f-backend", EXPECT[0]["backend"])
    expect(page.locator("#sessions-table tbody tr")).to_have_count(
        sum(1 for s in EXPECT if s["backend"] == EXPECT[0]["backend"]), timeout=TIMEOUT
    )
    page.select_option("#f-backend", "")

    # Backends: drain one from the page.
    page.click('#tabs a[data-tab="backends"]')
    drain = os.environ["DASH_DRAIN"]
    row = page.locator(f'#backends-table tbody tr[data-id="{drain}"]')
    expect(row.locator("td.state")).to_have_text("active", timeout=TIMEOUT)
    row.locator('button[data-action="drain"]').click()
    expect(row.locator("td.state")).to_have_text("draining", timeout=TIMEOUT)
    expect(row.locator('button[data-action="undrain"]')).to_be_visible()
    result["drained_state"] = backend_state(drain)
    # The log tail: PREDEFINED backends keep none, and the page says so.
    row.locator('button[data-action="logs"]').click()
    expect(page.locator("#log-text")).to_contain_text("no logs", timeout=TIMEOUT)
    result["shots"].append(shot(page, "backends-1366x768"))

    # The proxy: facts and live charts of the calls the sessions made.
    page.click('#tabs a[data-tab="proxy"]')
    expect(page.locator("#proxy-info")).to_contain_text("ROUND_ROBIN")
    expect(page.locator("#calls-table")).to_contain_text("ExecutePlan", timeout=TIMEOUT)
    expect(page.locator("#legend-methods")).not_to_be_empty(timeout=TIMEOUT)
    page.wait_for_timeout(4500)  # two more samples, so the charts have lines
    result["shots"].append(shot(page, "proxy-1366x768"))

    # The API document, rendered.
    page.click('#tabs a[data-tab="api"]')
    ops = page.locator("#api-doc details.op")
    document = requests.get(CONTROL + "/control/openapi.json", timeout=30).json()
    documented = sum(
        1 for item in document["paths"].values() for method in item if method in ("get", "post", "delete", "put", "patch")
    )
    expect(ops).to_have_count(documented, timeout=TIMEOUT)
    ops.first.click()
    result["api_operations"] = ops.count()
    result["api_documented"] = documented
    result["shots"].append(shot(page, "api-1366x768"))

    # A phone: the same page, readable without sideways scrolling.
    phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    phone.goto(CONTROL + "/ui/#sessions")
    expect_sessions(phone)
    result["phone_fits"] = no_horizontal_scroll(phone)
    result["shots"].append(shot(phone, "sessions-phone"))
    phone.click('#tabs a[data-tab="backends"]')
    expect(phone.locator("#backends-table")).to_be_visible()
    result["phone_backends_fit"] = no_horizontal_scroll(phone)
    result["errors"] = errors
    return result


def after_drain(browser):
    result = {}
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.goto(CONTROL + "/ui/")
    expect_sessions(page)
    result["shown"] = shown_sessions(page)
    page.click('#tabs a[data-tab="backends"]')
    drained = os.environ["DASH_DRAIN"]
    row = page.locator(f'#backends-table tbody tr[data-id="{drained}"]')
    row.locator('button[data-action="undrain"]').click()
    expect(row.locator("td.state")).to_have_text("active", timeout=TIMEOUT)
    result["undrained_state"] = backend_state(drained)
    return result


def auth(browser):
    result = {}
    tokens = json.loads(os.environ["DASH_TOKENS"])
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    page.goto(CONTROL + "/ui/")
    expect(page.locator("#signin")).to_be_visible(timeout=TIMEOUT)
    result["rows_before_sign_in"] = page.locator("#sessions-table tbody tr").count()
    result["shots"] = [shot(page, "signin-1366x768")]
    # A wrong token is refused, and said so.
    page.fill("#token", "not-a-token")
    page.click("#signin-form button")
    expect(page.locator("#signin-error")).to_be_visible(timeout=TIMEOUT)
    # Alice sees her own sessions only, and no admin buttons.
    page.fill("#token", tokens["alice"])
    page.click("#signin-form button")
    expect(page.locator("#signin")).to_be_hidden(timeout=TIMEOUT)
    expect_sessions(page)
    page.wait_for_timeout(2500)  # one more refresh: nothing else appears
    result["alice_sees"] = shown_sessions(page)
    result["alice_who"] = page.locator("#who").inner_text()
    page.click('#tabs a[data-tab="backends"]')
    expect(page.locator("#backends-table tbody tr")).not_to_have_count(0, timeout=TIMEOUT)
    result["alice_drain_buttons"] = page.locator('#backends-table button[data-action="drain"]').count()
    # The token stays out of the page and the address, in this tab's storage only.
    result["token_in_page"] = tokens["alice"] in page.content()
    result["token_in_url"] = tokens["alice"] in page.url
    result["token_in_session_storage"] = page.evaluate(
        "Object.values(sessionStorage).includes(%s)" % json.dumps(tokens["alice"])
    )
    result["token_in_local_storage"] = page.evaluate("localStorage.length") > 0
    result["shots"].append(shot(page, "alice-backends-1366x768"))
    # Another tab (sessionStorage is per tab) must sign in again.
    other = context.new_page()
    other.goto(CONTROL + "/ui/")
    expect(other.locator("#signin")).to_be_visible(timeout=TIMEOUT)
    result["other_tab_signed_in"] = other.locator("#signin").is_hidden()
    # Signing out forgets the token.
    page.click("#signout")
    expect(page.locator("#signin")).to_be_visible(timeout=TIMEOUT)
    result["storage_after_sign_out"] = page.evaluate("sessionStorage.length")
    # An admin sees everyone's sessions and may drain.
    page.fill("#token", tokens["root"])
    page.click("#signin-form button")
    page.click('#tabs a[data-tab="sessions"]')
    expect(page.locator("#signin")).to_be_hidden(timeout=TIMEOUT)
    for s in json.loads(os.environ["DASH_ALL"]):
        expect(session_row(page, s["id"])).to_have_count(1, timeout=TIMEOUT)
    result["root_sees"] = shown_sessions(page)
    result["shots"].append(shot(page, "root-sessions-1366x768"))
    page.click('#tabs a[data-tab="backends"]')
    result["root_drain_buttons"] = page.locator('#backends-table button[data-action="drain"]').count()
    return result


with sync_playwright() as p:
    browser = p.chromium.launch(
        executable_path=os.environ["SC_TEST_CHROMIUM"], args=["--no-sandbox", "--disable-gpu"]
    )
    try:
        result = {"overview": overview, "after_drain": after_drain, "auth": auth}[MODE](browser)
    finally:
        browser.close()
print("RESULT " + json.dumps(result, sort_keys=True), flush=True)
