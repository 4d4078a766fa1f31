"""Scenario: with backend-1 down (nothing listens at its address), its session gets a clear,
non-retryable error (FAILED_PRECONDITION: the session is dead, its backend is gone); backend-0's
keeps working."""

import os

from sc_e2e import create_session, expect_error, log, new_spark, proxy_remote, finish

DEAD = os.environ["SC_DEAD_ENDPOINT"]

sessions = {}
for _ in range(4):
    session = create_session()
    sessions.setdefault(session["backend"], session)
    if len(sessions) == 2:
        break
assert set(sessions) == {"backend-0", "backend-1"}, f"sessions landed on {sorted(sessions)} only"

live = new_spark(proxy_remote(sessions["backend-0"]["id"]))
dead = new_spark(proxy_remote(sessions["backend-1"]["id"]), fail_fast=True)

assert live.range(3).count() == 3
text = expect_error(lambda: dead.range(3).count(), "FAILED_PRECONDITION", "backend-1", DEAD, "is gone")
log(text)
assert live.range(5).count() == 5
# Again, interleaved: the failing backend does not disturb the live session.
expect_error(lambda: dead.conf.get("spark.app.name"), "FAILED_PRECONDITION", "backend-1")
assert live.range(6).selectExpr("sum(id)").collect()[0][0] == 15

live.stop()
finish(error=text[:500])
