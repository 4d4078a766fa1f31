"""Scenario: the proxy is killed with SIGKILL and restarted; the same SparkSession objects carry
on, on the same backends, with their server-side state (temporary views) intact."""

from sc_e2e import (
    REMOTE,
    check_views,
    create_session,
    finish,
    leave_views,
    new_spark,
    proxy_remote,
    signal_step,
    wait_step,
)

created = create_session()
control = new_spark(proxy_remote(created["id"]))
headerless = new_spark(REMOTE)
sessions = {"control": control, "headerless": headerless}
ports = leave_views(sessions)

signal_step("ready")
wait_step("restarted")

check_views(sessions, ports)
assert control.range(100).selectExpr("sum(id)").collect()[0][0] == 4950
control.stop()
headerless.stop()
finish(ports=ports, control_id=created["id"], headerless_id=headerless.client._session_id)
