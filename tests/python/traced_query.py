"""One PySpark query whose calls carry a W3C `traceparent` (a connection-string parameter
becomes gRPC metadata on every call) and an `x-request-id`.

Environment: SC_GRPC_PORT, TRACEPARENT, REQUEST_ID.
Prints RESULT {"rows", "session_id"}.
"""

import os
import uuid

from sc_e2e import GRPC_PORT, finish, new_spark

session_id = str(uuid.uuid4())
spark = new_spark(
    f"sc://localhost:{GRPC_PORT}/;session_id={session_id};user_id=tracy"
    f";traceparent={os.environ['TRACEPARENT']};x-request-id={os.environ['REQUEST_ID']}"
)
rows = spark.sql("select id, id * 2 as twice from range(1000)").filter("id < 10").collect()
assert [r.twice for r in rows] == [2 * i for i in range(10)], rows
spark.stop()
finish(rows=len(rows), session_id=session_id)
