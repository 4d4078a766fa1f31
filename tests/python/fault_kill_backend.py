"""Scenario: a backend is killed mid-query. That session's client gets an error naming the
backend within a second (UNAVAILABLE for the broken stream, or FAILED_PRECONDITION once the
proxy has confirmed the backend gone: the session is then dead); the other backend's session is untouched; the backend turns unhealthy
and receives no new sessions until it is back; then the old session is reported dead (its
server restarted) and new sessions reach the backend again."""

import threading
import time

from sc_e2e import (
    control,
    create_session,
    expect_error,
    finish,
    get_session,
    log,
    new_spark,
    proxy_remote,
    signal_step,
    wait_step,
)


def health_of(backend_id):
    body = control("GET", "/control/backends", expect=200).json()
    return {b["id"]: b["health"] for b in body["backends"]}.get(backend_id)


def wait_health(backend_id, wanted, timeout):
    deadline = time.time() + timeout
    while health_of(backend_id) != wanted:
        assert time.time() < deadline, f"{backend_id} never became {wanted}: {health_of(backend_id)}"
        time.sleep(0.2)


wait_health("backend-0", "healthy", 60)
wait_health("backend-1", "healthy", 60)
sessions = {}
for _ in range(20):
    s = create_session()
    sessions.setdefault(s["backend"], s)
    if len(sessions) == 2:
        break
assert set(sessions) == {"backend-0", "backend-1"}, f"sessions landed on {sorted(sessions)} only"
victim = new_spark(proxy_remote(sessions["backend-1"]["id"]), fail_fast=True)
live = new_spark(proxy_remote(sessions["backend-0"]["id"]))
assert victim.range(3).count() == 3 and live.range(3).count() == 3

outcome = {}


def long_query():
    try:
        victim.range(0, 40_000_000_000).selectExpr("max(id % 7 + id % 13)").collect()
        outcome["error"] = None
    except Exception as e:  # noqa: BLE001
        outcome["error"] = f"{type(e).__name__}: {e}"
    outcome["at"] = time.time()


thread = threading.Thread(target=long_query)
thread.start()
time.sleep(3)
assert thread.is_alive(), f"the long query ended early: {outcome}"
signal_step("query_running")
killed_at = float(wait_step("killed"))
thread.join(timeout=30)
assert not thread.is_alive(), "the killed backend's client got no answer"
delay = outcome["at"] - killed_at
log("client saw", outcome["error"], "after", delay, "s")
assert outcome["error"] and "backend-1" in outcome["error"], outcome
assert "UNAVAILABLE" in outcome["error"] or "FAILED_PRECONDITION" in outcome["error"], outcome
assert delay < 1.0, f"the client learned of the dead backend after {delay:.2f} s"

# The other backend's session is untouched.
assert live.range(5).count() == 5
wait_health("backend-1", "unhealthy", 10)
placed = [create_session()["backend"] for _ in range(4)]
assert set(placed) == {"backend-0"}, f"sessions placed on an unhealthy backend: {placed}"
signal_step("checked")

wait_step("restarted")
wait_health("backend-1", "healthy", 60)
# The old session's state died with its server. Spark 4 itself notices from the server-side
# session id PySpark reports (INVALID_HANDLE.SESSION_CHANGED, upon which PySpark closes the
# client: NO_ACTIVE_SESSION); the proxy notices from the responses (for any client) and marks the
# session dead in its table, answering its later calls FAILED_PRECONDITION.
dead_text = expect_error(lambda: victim.range(2).count())
assert any(k in dead_text for k in ("SESSION_CHANGED", "NO_ACTIVE_SESSION", "restarted", "is gone")), dead_text
victim_id = sessions["backend-1"]["id"]
deadline = time.time() + 10
while get_session(victim_id)[1].get("state") != "dead":
    assert time.time() < deadline, f"the proxy did not mark the session dead: {get_session(victim_id)}"
    time.sleep(0.2)
log("session state:", get_session(victim_id)[1])
placed_after = [create_session()["backend"] for _ in range(4)]
assert "backend-1" in placed_after, f"the recovered backend gets no sessions: {placed_after}"
fresh = new_spark(proxy_remote(next(s for s in [create_session() for _ in range(4)] if s["backend"] == "backend-1")["id"]))
assert fresh.range(6).count() == 6
assert live.range(7).count() == 7
live.stop()
fresh.stop()
finish(kill_error=outcome["error"][:300], delay=delay, dead_error=dead_text[:300])
