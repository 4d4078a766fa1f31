"""Limits through the proxy with real PySpark: a user's second session is refused with
RESOURCE_EXHAUSTED naming the limit, another user is unaffected, and a released session frees
the slot. Environment: SC_GRPC_PORT, ALICE_TOKEN, BOB_TOKEN.
"""

import os

from sc_e2e import expect_error, finish, log, make_fail_fast
from pyspark.sql import SparkSession

PORT = os.environ["SC_GRPC_PORT"]


def session(token):
    spark = SparkSession.builder.remote(f"sc://localhost:{PORT}/;token={token}").create()
    make_fail_fast(spark)
    return spark


first = session(os.environ["ALICE_TOKEN"])
assert first.range(3).count() == 3
second = session(os.environ["ALICE_TOKEN"])
text = expect_error(lambda: second.range(3).count(), "RESOURCE_EXHAUSTED", "max_sessions_per_user")
assert session(os.environ["BOB_TOKEN"]).range(2).count() == 2
first.stop()
third = session(os.environ["ALICE_TOKEN"])
assert third.range(4).count() == 4
log("limit enforced and released")
finish(refused=text[:200])
