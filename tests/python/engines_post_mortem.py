"""Scenario (issue 14, item 6): engines that die, seen by PySpark. A user's engine is SIGKILLed
(by the Rust side), then the next engine is driven out of memory (a small driver heap and a
large collect): each time the session turns dead with the reason in its JSON and in PySpark's
error (non-retryable FAILED_PRECONDITION), and the next session gets a new engine, until the
crash loop (2 failures, as configured) stops relaunching and says so."""

import time

from sc_e2e import REMOTE, expect_error, finish, get_session, log, new_spark, new_uuid, signal_step, wait_step


def session():
    sid = new_uuid()
    return sid, new_spark(f"{REMOTE}/;user_id=alice;session_id={sid}")


def backend_of(sid):
    status, info = get_session(sid)
    assert status == 200, info
    return info["backend"]


def dead_info(sid):
    status, info = get_session(sid)
    assert status == 200 and info["state"] == "dead", info
    return info["error"]


# 1. SIGKILL.
sid1, s1 = session()
assert s1.range(10).count() == 10
first = backend_of(sid1)
signal_step(f"kill:{first}")
wait_step("killed:1")
text = expect_error(lambda: s1.range(3).count(), "FAILED_PRECONDITION", first, "killed by signal 9 (SIGKILL)")
log("after SIGKILL:", text[:400])
killed_error = dead_info(sid1)
assert "SIGKILL" in killed_error, killed_error

# 2. Out of memory: a new engine for the next session; a collect larger than its heap.
sid2, s2 = session()
assert s2.range(10).count() == 10
second = backend_of(sid2)
assert second != first, (first, second)
started = time.time()
oom_text = expect_error(
    lambda: s2.range(0, 60_000_000, 1, 4).selectExpr("id", "uuid() AS u", "uuid() AS v").collect(),
    "OutOfMemoryError",
)
log(f"out of memory after {time.time() - started:.1f} s:", oom_text[:400])
assert "FAILED_PRECONDITION" in oom_text and second in oom_text, oom_text
oom_error = dead_info(sid2)
assert "OutOfMemoryError" in oom_error, oom_error

# 3. A crash loop: no third engine, and PySpark is told so at once (not retried).
started = time.time()
loop_text = expect_error(lambda: session()[1].range(3).count(), "FAILED_PRECONDITION", "crash loop", "failed 2 times")
loop_delay = time.time() - started
log(f"crash loop refusal after {loop_delay:.2f} s:", loop_text[:400])
assert loop_delay < 10, loop_delay

finish(killed=killed_error, oom=oom_error, crash_loop=loop_text[:600], engines=[first, second])
