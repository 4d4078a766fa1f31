"""Scenario: the custom proxy binary (custom-spark-connect-proxy, provider type ENV) with static
token authentication and TLS. Calls without a token are refused (401 on the control plane,
UNAUTHENTICATED on gRPC); a control-plane session and a header-less one work, on the ENV
provider's servers; the proxy is then killed with SIGKILL and restarted, and the same
SparkSession objects carry on, on the same servers, with their temporary views.

Environment: SC_GRPC_PORT (the proxy's TLS port), SC_CONTROL_URL, GRPC_DEFAULT_SSL_ROOTS_FILE_PATH
(the test CA), TOKEN (alice's token), SC_SYNC_DIR (steps shared with the Rust side).
"""

import os

import requests
from pyspark.sql import SparkSession

from sc_e2e import (
    SPARK_A,
    SPARK_B,
    check_views,
    expect_error,
    finish,
    leave_views,
    log,
    make_fail_fast,
    port_of,
    signal_step,
    wait_step,
)

PORT = os.environ["SC_GRPC_PORT"]
CONTROL = os.environ["SC_CONTROL_URL"]
TOKEN = os.environ["TOKEN"]
BEARER = {"authorization": f"Bearer {TOKEN}"}


def spark_at(params):
    # A host other than "localhost" makes PySpark use TLS for `token=`.
    return SparkSession.builder.remote(f"sc://127.0.0.1:{PORT}/;{params}").create()


def count_without_token():
    spark = spark_at("use_ssl=true")
    make_fail_fast(spark)
    return spark.range(3).count()


# Without a token: refused on both ports.
res = requests.post(f"{CONTROL}/control/sessions", timeout=30)
assert res.status_code == 401, f"POST /control/sessions without a token: {res.status_code} {res.text}"
assert res.json()["code"] == "UNAUTHENTICATED", res.text
missing = expect_error(count_without_token, "UNAUTHENTICATED", "no credentials")
log("calls without a token are refused")

# A control-plane session and a header-less one, both authenticated.
res = requests.post(
    f"{CONTROL}/control/sessions", headers={**BEARER, "accept": "application/json"}, timeout=30
)
assert res.status_code == 200, f"POST /control/sessions: {res.status_code} {res.text}"
created = res.json()
assert created["user_id"] == "alice", created
control = spark_at(f"token={TOKEN};x-spark-connect-session-id={created['id']}")
headerless = spark_at(f"token={TOKEN}")
sessions = {"control": control, "headerless": headerless}
ports = leave_views(sessions)
servers = {port_of(SPARK_A), port_of(SPARK_B)}
assert set(ports.values()) <= servers, f"sessions on {ports}, the ENV servers are {servers}"
log(f"sessions on {ports}")

signal_step("ready")
wait_step("restarted")

check_views(sessions, ports)
assert control.range(100).selectExpr("sum(id)").collect()[0][0] == 4950
assert headerless.range(10).selectExpr("sum(id)").collect()[0][0] == 45
headerless_id = headerless.client._session_id
control.stop()
headerless.stop()
finish(
    ports=ports,
    control_id=created["id"],
    headerless_id=headerless_id,
    missing=missing[:300],
)
