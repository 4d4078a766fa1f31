"""Opens real PySpark sessions through the proxy, one header-less session per user, runs a
query in each and leaves them open (idle) for the dashboard to show.

Environment: SC_GRPC_PORT; DASH_USERS (comma-separated users); DASH_TOKENS (optional,
`user=token,...`: with authentication on, each user connects with its token).
Prints RESULT {"sessions": [{"user", "id", "port"}]}: `port` is the Spark server's own port.
"""

import os
import uuid

from sc_e2e import GRPC_PORT, backend_port, finish, log, new_spark

users = [u for u in os.environ["DASH_USERS"].split(",") if u]
tokens = dict(
    pair.split("=", 1) for pair in os.environ.get("DASH_TOKENS", "").split(",") if pair
)
sessions = []
for user in users:
    session_id = str(uuid.uuid4())
    remote = f"sc://localhost:{GRPC_PORT}/;session_id={session_id};user_id={user}"
    if user in tokens:
        remote += f";token={tokens[user]}"
    spark = new_spark(remote)
    rows = spark.range(100).filter("id % 2 = 0").count()
    assert rows == 50, rows
    port = backend_port(spark)
    log(f"{user}: session {session_id} on the Spark server at port {port}")
    sessions.append({"user": user, "id": session_id, "port": port})
# Left open: the proxy keeps them, idle, until they expire or are closed.
finish(sessions=sessions)
