"""Scenario (issue 14, item 3): a new user's first session (create plus first query) with a
warm engine, then another new user's while the pool refills (a cold start), in the same run;
then the pool is full again. Prints both times."""

import time

import requests

# PySpark's Connect client loads lazily; load it now so that neither measured session pays for it.
import pyspark.sql.connect.session  # noqa: F401
import pyspark.sql.connect.dataframe  # noqa: F401

from sc_e2e import CONTROL_URL, REMOTE, control, finish, log, new_spark


def warm_backends():
    providers = control("GET", "/control/backends", expect=200).json()["providers"]
    return providers[0].get("warm_backends")


def wait_warm(n, timeout=240):
    deadline = time.time() + timeout
    while warm_backends() != n:
        assert time.time() < deadline, f"the warm pool never held {n}: {warm_backends()}"
        time.sleep(0.2)


def first_session(user):
    """Creates a control session for `user` and runs its first query; returns the seconds."""
    started = time.time()
    res = requests.post(
        CONTROL_URL + "/control/sessions",
        headers={"Accept": "application/json", "x-spark-connect-user-id": user},
        timeout=300,
    )
    assert res.status_code == 200, res.text
    created = time.time() - started
    sid = res.json()["id"]
    spark = new_spark(f"{REMOTE}/;x-spark-connect-session-id={sid};session_id={sid};user_id={user}")
    assert spark.range(1000).selectExpr("sum(id)").collect()[0][0] == 499500
    took = time.time() - started
    log(f"{user}: first session in {took:.3f} s (created in {created:.3f} s) on {res.json()['backend']}")
    return took, spark, res.json()["backend"]


wait_warm(1)
warm, warm_spark, warm_backend = first_session("new-user-warm")
# The pool is refilling now: the next new user finds it empty and waits for a cold engine.
assert warm_backends() == 0
cold, cold_spark, cold_backend = first_session("new-user-cold")
assert warm_backend != cold_backend
assert warm < cold, f"the warm start ({warm:.2f} s) was not faster than the cold one ({cold:.2f} s)"
# A second query on each, for comparison: both engines are in use now.
started = time.time()
assert warm_spark.range(10).count() == 10
again = time.time() - started
wait_warm(1)
warm_spark.stop()
cold_spark.stop()
finish(warm_s=warm, cold_s=cold, second_query_s=again)
