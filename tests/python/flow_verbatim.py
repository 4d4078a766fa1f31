"""Scenario: the control-plane flow exactly as the Go spark-connect-proxy documents it."""

import os
import uuid

import requests
from pyspark.sql import SparkSession

from sc_e2e import backend_port, get_session, port_of, finish

CONTROL = os.environ["SC_CONTROL_PORT"]
GRPC = os.environ["SC_GRPC_PORT"]

# --- the documented flow, verbatim but for the ports ---
res = requests.post(f"http://localhost:{CONTROL}/control/sessions")
id = res.text
spark = SparkSession.builder.remote(f"sc://localhost:{GRPC}/;x-spark-connect-session-id={id}").getOrCreate()
rows = spark.range(10).collect()
# --- end of the flow ---

assert res.status_code == 200, f"POST /control/sessions: HTTP {res.status_code}: {res.text}"
assert res.headers.get("content-type", "").startswith("text/plain"), res.headers
uuid.UUID(id)  # the body is nothing but the id
assert [row.id for row in rows] == list(range(10)), rows

status, body = get_session(id)
assert status == 200, f"GET /control/sessions/{id}: HTTP {status}: {body}"
assert body["id"] == id, body
assert body["backend"] in ("backend-0", "backend-1"), body
served_by = backend_port(spark)
assert port_of(body["endpoint"]) == served_by, (body, served_by)

spark.stop()
finish(session_id=id, backend=body["backend"], rows=len(rows), served_by=served_by)
