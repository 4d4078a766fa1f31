"""Scenario: backends discovered through DNS. Two Spark Connect servers share one port on two
loopback addresses (SC_DNS_FIRST, SC_DNS_SECOND); the Rust side rewrites the DNS records
(dnsmasq's hosts file) between the steps and stops the DNS server at the end. The proxy's load
policy is LEAST_SESSIONS, so where a new session goes is known. Which server serves a session is
asked from Spark itself (its `spark.connect.grpc.binding.address`)."""

import os

from sc_e2e import REMOTE, finish, log, new_spark, signal_step, wait_step

FIRST = os.environ["SC_DNS_FIRST"]
SECOND = os.environ["SC_DNS_SECOND"]


def address(spark):
    return spark.conf.get("spark.connect.grpc.binding.address")


def works(spark, where):
    assert address(spark) == where, f"served by {address(spark)}, expected {where}"
    assert spark.range(100).selectExpr("sum(id)").collect()[0][0] == 4950


# One record: the first session lands on the first server.
one = new_spark(REMOTE)
works(one, FIRST)
signal_step("one")

# The second record was added: a new session reaches the second server (the first holds one).
wait_step("two")
two = new_spark(REMOTE)
works(two, SECOND)
signal_step("placed")

# The first record was removed: its server drains. The session on it still works there; new
# sessions go to the second server only.
wait_step("first_removed")
works(one, FIRST)
three = new_spark(REMOTE)
works(three, SECOND)
signal_step("drained")

# The DNS server is down: the known backends keep serving and new sessions are still placed.
wait_step("dns_down")
works(one, FIRST)
works(two, SECOND)
four = new_spark(REMOTE)
works(four, SECOND)
log("every session served while DNS was down")
for spark in (one, two, three, four):
    spark.stop()
finish(first=FIRST, second=SECOND)
