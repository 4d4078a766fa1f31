"""Scenario: two proxy replicas share one Redis: a session created through replica A is used
through replica B; racing first bindings agree; after A is killed, B carries on."""

import os
import threading

from sc_e2e import (
    REMOTE,
    backend_port,
    create_session,
    finish,
    log,
    new_spark,
    new_uuid,
    proxy_remote,
    signal_step,
    wait_step,
)

REMOTE_B = os.environ["SC_REMOTE_B"]

# A control-plane session created through A, used through B.
created = create_session()
via_b = new_spark(f"{REMOTE_B}/;x-spark-connect-session-id={created['id']}")
assert via_b.range(3).count() == 3
via_a = new_spark(proxy_remote(created["id"]))
assert backend_port(via_a) == backend_port(via_b)

# A header-less session bound through A, continued through B with the same session id.
shared_id = new_uuid()
on_a = new_spark(f"{REMOTE}/;session_id={shared_id};user_id=carol")
on_a.range(4).createOrReplaceTempView("shared_view")
on_b = new_spark(f"{REMOTE_B}/;session_id={shared_id};user_id=carol")
assert on_b.table("shared_view").count() == 4

# Racing first bindings: the same new session id through A and B at once.
races = []
for _ in range(6):
    sid = new_uuid()
    ports = {}

    def connect(name, remote, sid=sid, ports=ports):
        spark = new_spark(f"{remote}/;session_id={sid};user_id=dave")
        ports[name] = backend_port(spark)

    threads = [
        threading.Thread(target=connect, args=("a", REMOTE)),
        threading.Thread(target=connect, args=("b", REMOTE_B)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log(sid, ports)
    assert len(ports) == 2 and ports["a"] == ports["b"], f"replicas disagree on {sid}: {ports}"
    races.append(ports["a"])

signal_step("ready")
wait_step("a_killed")
# Replica A is gone; B serves both sessions on.
assert on_b.table("shared_view").count() == 4
assert via_b.range(10).count() == 10
finish(control_id=created["id"], shared_id=shared_id, races=races)
