"""Scenario (issue 14, item 5): six PySpark sessions over two Spark Connect servers, one of
which is then SIGKILLed. The sessions on the survivor see no failure; every session of the dead
server gets a clear, non-retryable error (FAILED_PRECONDITION naming the backend and what
happened) on its next call, without PySpark's retries (its default retry policy is kept: it
retries UNAVAILABLE for minutes), and the control plane shows them dead with the reason.

Prints the seconds from each dead session's next call to its error (`dead_delays`)."""

import time

from sc_e2e import expect_error, finish, get_session, log, new_spark, new_uuid, signal_step, wait_step, REMOTE

VICTIM = "backend-1"

sessions = []
for _ in range(6):
    sid = new_uuid()
    spark = new_spark(f"{REMOTE}/;session_id={sid}")
    assert spark.range(10).count() == 10
    status, info = get_session(sid)
    assert status == 200, info
    sessions.append((sid, spark, info["backend"]))
placed = sorted(b for _, _, b in sessions)
assert placed == ["backend-0"] * 3 + [VICTIM] * 3, placed

signal_step("ready")
killed_at = float(wait_step("killed"))
log("victim killed", time.time() - killed_at, "s ago")

dead_delays = []
survivor_queries = 0
# Interleaved, as users would: each session's next call after the kill.
for sid, spark, backend in sessions:
    started = time.time()
    if backend == VICTIM:
        text = expect_error(
            lambda: spark.range(100).selectExpr("sum(id)").collect(),
            "FAILED_PRECONDITION",
            VICTIM,
            "is dead",
            "is gone",
        )
        delay = time.time() - started
        dead_delays.append(delay)
        log(f"session {sid} on {backend}: error after {delay:.3f} s: {text[:300]}")
        status, info = get_session(sid)
        assert status == 200 and info["state"] == "dead", info
        assert VICTIM in info["error"] and "is gone" in info["error"], info
    else:
        assert spark.range(100).selectExpr("sum(id)").collect()[0][0] == 4950
        survivor_queries += 1
# Again: the survivors keep working, the dead stay dead (still at once).
for sid, spark, backend in sessions:
    if backend == VICTIM:
        started = time.time()
        expect_error(lambda: spark.range(3).count(), "FAILED_PRECONDITION", VICTIM)
        dead_delays.append(time.time() - started)
    else:
        assert spark.range(7).count() == 7
        survivor_queries += 1

worst = max(dead_delays)
assert worst < 3.0, f"a dead session's error took {worst:.2f} s (PySpark retried?)"
for sid, spark, backend in sessions:
    if backend != VICTIM:
        spark.stop()
finish(dead_delays=dead_delays, worst=worst, survivor_queries=survivor_queries, error=text[:600])
