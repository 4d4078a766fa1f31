"""Scenario: under ROUND_ROBIN two sessions land on different backends, and each is served there.

Which Spark server serves a session is asked from Spark itself (its
`spark.connect.grpc.binding.port`), through the proxy, and compared with what the control
plane says.
"""

from sc_e2e import (
    SPARK_A,
    SPARK_B,
    backend_port,
    bound_entries,
    create_session,
    new_spark,
    port_of,
    proxy_remote,
    finish,
    REMOTE,
)

expected_ports = {port_of(SPARK_A), port_of(SPARK_B)}

# Two control-plane sessions.
first, second = create_session(), create_session()
assert first["backend"] != second["backend"], (first, second)
control_ports = []
for session in (first, second):
    assert session["id"] in session.get("connection_string", session["id"]), session
    spark = new_spark(proxy_remote(session["id"]))
    port = backend_port(spark)
    assert port == port_of(session["endpoint"]), (session, port)
    assert spark.range(100).selectExpr("sum(id)").collect()[0][0] == 4950
    control_ports.append(port)
    spark.stop()
assert set(control_ports) == expected_ports, control_ports

# Two header-less sessions: consecutive picks alternate whatever the counter's position.
one, two = new_spark(REMOTE), new_spark(REMOTE)
bound_ports = [backend_port(one), backend_port(two)]
assert set(bound_ports) == expected_ports, bound_ports
for spark, port in ((one, bound_ports[0]), (two, bound_ports[1])):
    entries = bound_entries(spark.session_id)
    assert len(entries) == 1, entries
    if "endpoint" in entries[0]:
        assert port_of(entries[0]["endpoint"]) == port, (entries, port)
    assert spark.range(3).count() == 3
for spark in (one, two):
    spark.stop()

finish(
    control={first["backend"]: control_ports[0], second["backend"]: control_ports[1]},
    bound=bound_ports,
)
