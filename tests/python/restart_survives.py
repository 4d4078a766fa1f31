"""Scenario: the proxy is killed with SIGKILL and restarted; the same SparkSession objects carry
on, on the same backends, with their server-side state (temporary views) intact."""

from sc_e2e import (
    REMOTE,
    backend_port,
    create_session,
    finish,
    new_spark,
    proxy_remote,
    signal_step,
    wait_step,
)

created = create_session()
control = new_spark(proxy_remote(created["id"]))
control.range(5).createOrReplaceTempView("before_control")
headerless = new_spark(REMOTE)
headerless.range(7).createOrReplaceTempView("before_headerless")
ports = {"control": backend_port(control), "headerless": backend_port(headerless)}

signal_step("ready")
wait_step("restarted")

assert control.table("before_control").count() == 5
assert headerless.table("before_headerless").count() == 7
after = {"control": backend_port(control), "headerless": backend_port(headerless)}
assert after == ports, f"sessions moved: {ports} -> {after}"
assert control.range(100).selectExpr("sum(id)").collect()[0][0] == 4950
control.stop()
headerless.stop()
finish(ports=ports, control_id=created["id"], headerless_id=headerless.client._session_id)
