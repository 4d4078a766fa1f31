"""Scenario: a deleted control-plane session and an unknown session id give clear errors."""

from sc_e2e import (
    control,
    create_session,
    expect_error,
    get_session,
    new_spark,
    new_uuid,
    proxy_remote,
    finish,
)

# A session that works, then is deleted through the control plane.
session = create_session()
spark = new_spark(proxy_remote(session["id"]), fail_fast=True)
assert spark.range(2).count() == 2
pyspark_session_id = spark.session_id

control("DELETE", f"/control/sessions/{session['id']}", expect=200)
status, body = get_session(session["id"])
assert status == 404, (status, body)
assert "error" in body, body

deleted_error = expect_error(lambda: spark.range(2).count(), "NOT_FOUND", "POST /control/sessions")

# DELETE released the session on its backend: asking that Spark server directly for the
# PySpark session now gets Spark's "session closed".
endpoint = session["endpoint"].split("://", 1)[-1].rstrip("/")
direct = new_spark(f"sc://{endpoint}/;session_id={pyspark_session_id}", fail_fast=True)
closed_error = expect_error(lambda: direct.range(1).count(), "SESSION_CLOSED")

# An id the proxy never issued.
bogus = new_uuid()
status, body = get_session(bogus)
assert status == 404 and "error" in body, (status, body)
stranger = new_spark(proxy_remote(bogus), fail_fast=True)
unknown_error = expect_error(
    lambda: stranger.range(1).collect(), "NOT_FOUND", "POST /control/sessions"
)

finish(deleted=deleted_error[:400], unknown=unknown_error[:400], closed=closed_error[:200])
