"""Scenario: a plain `sc://host:port` connection (no control-plane call) is bound on first sight."""

import os

from pyspark.sql import SparkSession

from sc_e2e import backend_port, bound_entries, port_of, finish

GRPC = os.environ["SC_GRPC_PORT"]

spark = SparkSession.builder.remote(f"sc://localhost:{GRPC}").getOrCreate()
assert spark.range(5).count() == 5
assert sorted(r.id for r in spark.range(5).filter("id % 2 = 0").collect()) == [0, 2, 4]

session_id = spark.session_id
entries = bound_entries(session_id)
assert len(entries) == 1, f"GET /control/sessions lists {len(entries)} bound entries for {session_id}: {entries}"
entry = entries[0]
served_by = backend_port(spark)
assert entry.get("backend") in ("backend-0", "backend-1"), entry
if "endpoint" in entry:
    assert port_of(entry["endpoint"]) == served_by, (entry, served_by)

spark.stop()
finish(session_id=session_id, backend=entry["backend"], served_by=served_by)
