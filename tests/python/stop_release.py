"""Scenario: spark.stop() releases the session, on the proxy and on the backend.

The proxy for this scenario has a single backend, so reconnecting with the same session id
reaches the same Spark server, which then reports the session closed.
"""

import time

from sc_e2e import REMOTE, bound_entries, expect_error, new_spark, finish

spark = new_spark(REMOTE)
assert spark.range(4).count() == 4
session_id = spark.session_id
assert bound_entries(session_id), f"{session_id} is not listed as bound"

spark.stop()
deadline = time.monotonic() + 10
while bound_entries(session_id) and time.monotonic() < deadline:
    time.sleep(0.1)
left = bound_entries(session_id)
assert not left, f"GET /control/sessions still lists the stopped session: {left}"

# The backend released it too: the same session id now gets Spark's own error.
again = new_spark(f"{REMOTE}/;session_id={session_id}", fail_fast=True)
text = expect_error(lambda: again.range(1).count(), "SESSION_CLOSED")
finish(session_id=session_id, error=text[:300])
