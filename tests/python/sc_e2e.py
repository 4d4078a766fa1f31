"""Helpers shared by the end-to-end PySpark scenarios in this folder.

The Rust harness (tests/src/lib.rs) runs each scenario with the proxy's coordinates in the
environment: SC_GRPC_PORT, SC_CONTROL_PORT, SC_CONTROL_URL, SC_REMOTE, and the direct Spark
servers in SC_TEST_SPARK_A / SC_TEST_SPARK_B. A scenario asserts what it checks, exits non-zero
on failure, and prints one `RESULT {json}` line that the Rust side may inspect further.
"""

import json
import os
import sys
import traceback
import uuid

import requests
from pyspark.sql import SparkSession
from pyspark.sql.connect.client.retries import DefaultPolicy

def _fail_fast(kind, value, tb):
    """A failed scenario exits at once: PySpark 4.2.1 can hang for good at interpreter shutdown
    when a process made more than one session (see `finish`)."""
    traceback.print_exception(kind, value, tb)
    sync = os.environ.get("SC_SYNC_DIR")
    if sync:
        with open(os.path.join(sync, "output"), "w", encoding="utf-8") as f:
            f.write("".join(traceback.format_exception(kind, value, tb)))
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(1)


sys.excepthook = _fail_fast

GRPC_PORT = int(os.environ.get("SC_GRPC_PORT", "0"))
CONTROL_PORT = int(os.environ.get("SC_CONTROL_PORT", "0"))
CONTROL_URL = os.environ.get("SC_CONTROL_URL", f"http://127.0.0.1:{CONTROL_PORT}")
REMOTE = os.environ.get("SC_REMOTE", f"sc://127.0.0.1:{GRPC_PORT}")
SPARK_A = os.environ.get("SC_TEST_SPARK_A", "")
SPARK_B = os.environ.get("SC_TEST_SPARK_B", "")

HTTP_TIMEOUT = 30


def log(*args):
    """Prints progress to stderr (shown by the harness when the scenario fails)."""
    print(*args, file=sys.stderr, flush=True)


def finish(**fields):
    """Prints the scenario's summary line for the Rust side and exits at once.

    Exiting with os._exit skips interpreter shutdown, where PySpark 4.2.1 can hang for good in
    SparkSession.__del__ -> grpc channel close when a process made more than one session (seen
    with direct connections too, without any proxy). Scenarios stop their sessions first.
    """
    print("RESULT " + json.dumps(fields, sort_keys=True), flush=True)
    sys.stderr.flush()
    os._exit(0)


# --- sessions -------------------------------------------------------------------------------


def proxy_remote(session_id=None):
    """The proxy's connection string, with the control-plane session header when given."""
    if session_id is None:
        return REMOTE
    return f"{REMOTE}/;x-spark-connect-session-id={session_id}"


def new_spark(remote, fail_fast=False):
    """A new PySpark session (not the cached default one) on `remote`.

    With fail_fast, PySpark's retry policy is shortened: by default PySpark retries UNAVAILABLE
    for about ten minutes before it reports the error.
    """
    spark = SparkSession.builder.remote(remote).create()
    if fail_fast:
        make_fail_fast(spark)
    return spark


def make_fail_fast(spark):
    """Limits PySpark's retries of retryable errors (UNAVAILABLE) to a second or so."""
    spark.client.set_retry_policies(
        [DefaultPolicy(max_retries=2, initial_backoff=50, max_backoff=200, jitter=0)]
    )


def backend_port(spark):
    """The gRPC port of the Spark Connect server that serves `spark`, asked from Spark itself."""
    return int(spark.conf.get("spark.connect.grpc.binding.port"))


def port_of(endpoint):
    """The port of an endpoint such as `http://127.0.0.1:15102` or `127.0.0.1:15102`."""
    return int(endpoint.rstrip("/").rsplit(":", 1)[1])


def leave_views(sessions):
    """Gives each session of `sessions` (name -> SparkSession) a temporary view `before_<name>`
    of range(5), range(7), ... (in name order) and returns the backend port each is on: server-side
    state to find again after a proxy restart with `check_views`."""
    for i, (name, spark) in enumerate(sorted(sessions.items())):
        spark.range(5 + 2 * i).createOrReplaceTempView(f"before_{name}")
    return {name: backend_port(spark) for name, spark in sessions.items()}


def check_views(sessions, ports):
    """Asserts that the sessions still have the views `leave_views` made, on the same backends."""
    for i, (name, spark) in enumerate(sorted(sessions.items())):
        assert spark.table(f"before_{name}").count() == 5 + 2 * i, name
    after = {name: backend_port(spark) for name, spark in sessions.items()}
    assert after == ports, f"sessions moved: {ports} -> {after}"


# --- control plane --------------------------------------------------------------------------


def control(method, path, accept_json=True, expect=None):
    """Calls the control plane; returns the response (status checked when `expect` is given)."""
    headers = {"Accept": "application/json"} if accept_json else {}
    res = requests.request(method, CONTROL_URL + path, headers=headers, timeout=HTTP_TIMEOUT)
    if expect is not None:
        assert res.status_code == expect, f"{method} {path}: HTTP {res.status_code}: {res.text}"
    return res


def create_session():
    """POST /control/sessions asking for JSON; returns the session object."""
    body = control("POST", "/control/sessions", expect=200).json()
    for key in ("id", "backend", "endpoint"):
        assert key in body, f"POST /control/sessions JSON lacks {key!r}: {body}"
    return body


def list_sessions():
    body = control("GET", "/control/sessions", expect=200).json()
    assert isinstance(body.get("sessions"), list), f"GET /control/sessions: {body}"
    return body["sessions"]


def get_session(session_id):
    """(status, json) of GET /control/sessions/{id}."""
    res = control("GET", f"/control/sessions/{session_id}")
    return res.status_code, res.json()


def bound_entries(session_id):
    """Entries of GET /control/sessions of kind `bound` that mention `session_id`."""
    return [
        s
        for s in list_sessions()
        if s.get("kind") == "bound" and session_id in json.dumps(s)
    ]


def new_uuid():
    return str(uuid.uuid4())


# --- assertions -----------------------------------------------------------------------------


def expect_error(action, *needles):
    """Runs `action`, asserts it raises, and that the error's text contains every needle.

    Returns the text. The text is the PySpark exception's message, which for a gRPC error
    without Spark error details includes the status code and the server's message.
    """
    try:
        value = action()
    except Exception as e:  # noqa: BLE001 - any PySpark error is what we look at
        text = f"{type(e).__name__}: {e}"
        missing = [n for n in needles if n not in text]
        assert not missing, f"error lacks {missing!r}: {text}"
        return text
    raise AssertionError(f"expected an error mentioning {needles!r}, got {value!r}")


# --- steps shared with the Rust side ----------------------------------------------------------

SYNC_DIR = os.environ.get("SC_SYNC_DIR", "")


def signal_step(name):
    """Tells the Rust side that this scenario reached step `name`."""
    with open(os.path.join(SYNC_DIR, name), "w", encoding="utf-8") as f:
        f.write("1")


def wait_step(name, timeout=180):
    """Waits until the Rust side says step `name` is done (it creates the file); returns its
    text."""
    import time

    path = os.path.join(SYNC_DIR, name)
    deadline = time.time() + timeout
    while not os.path.exists(path):
        assert time.time() < deadline, f"the Rust side never reached step {name!r}"
        time.sleep(0.05)
    time.sleep(0.05)
    with open(path, encoding="utf-8") as f:
        return f.read()
