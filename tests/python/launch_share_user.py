"""Scenario: the LAUNCH provider starts real Spark Connect servers on demand, one per user."""

from sc_e2e import REMOTE, backend_port, finish, log, new_spark

alice_1 = new_spark(f"{REMOTE}/;user_id=alice")
log("alice's first session is up")
assert alice_1.range(10).count() == 10
alice_2 = new_spark(f"{REMOTE}/;user_id=alice")
bob = new_spark(f"{REMOTE}/;user_id=bob")
ports = {
    "alice_1": backend_port(alice_1),
    "alice_2": backend_port(alice_2),
    "bob": backend_port(bob),
}
log(ports)
assert ports["alice_1"] == ports["alice_2"], f"one user's sessions share one engine: {ports}"
assert ports["alice_1"] != ports["bob"], f"two users get two engines: {ports}"
assert bob.range(5).selectExpr("sum(id)").collect()[0][0] == 10
for spark in (alice_1, alice_2, bob):
    spark.stop()
finish(**ports)
