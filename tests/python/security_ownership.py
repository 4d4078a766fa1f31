"""User B cannot use user A's session by header, by body session id, or by operation id
(reattach, release, interrupt); a client that claims user_id=alice while authenticated as bob is
seen by Spark as bob.

Environment: SC_GRPC_PORT, SC_CONTROL_URL, ALICE_TOKEN, BOB_TOKEN, SPARK_SECURE (host:port of the
backend Spark server), SPARK_SECURE_TOKEN (its pre-shared token).
"""

import os
import uuid

import grpc
import requests

from sc_e2e import finish, log
from pyspark.sql import SparkSession
from pyspark.sql.connect.proto import base_pb2, base_pb2_grpc

PORT = os.environ["SC_GRPC_PORT"]
CONTROL = os.environ["SC_CONTROL_URL"]
ALICE, BOB = os.environ["ALICE_TOKEN"], os.environ["BOB_TOKEN"]


def stub():
    return base_pb2_grpc.SparkConnectServiceStub(grpc.insecure_channel(f"127.0.0.1:{PORT}"))


def md(token, session_header=None):
    pairs = [("authorization", f"Bearer {token}")]
    if session_header:
        pairs.append(("x-spark-connect-session-id", session_header))
    return pairs


def ctx(user):
    return base_pb2.UserContext(user_id=user, user_name=user)


def config_req(session_id, user):
    req = base_pb2.ConfigRequest(session_id=session_id, user_context=ctx(user))
    req.operation.get_all.SetInParent()
    return req


def denied(call):
    try:
        call()
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.PERMISSION_DENIED, f"{e.code()}: {e.details()}"
        assert "alice" not in e.details(), f"leaks the owner: {e.details()}"
        return e.details()
    raise AssertionError("the call was not refused")


s = stub()
# Alice: a control-plane session, a header-less session, and a reattachable operation.
control_id = requests.post(
    f"{CONTROL}/control/sessions", headers={"authorization": f"Bearer {ALICE}"}, timeout=30
).text
s.Config(config_req(str(uuid.uuid4()), "alice"), metadata=md(ALICE, control_id))
alice_session = str(uuid.uuid4())
s.Config(config_req(alice_session, "alice"), metadata=md(ALICE))
op = str(uuid.uuid4())
plan = base_pb2.Plan()
plan.root.range.end = 10
plan.root.range.step = 1
req = base_pb2.ExecutePlanRequest(
    session_id=alice_session, user_context=ctx("alice"), operation_id=op, plan=plan
)
req.request_options.add().reattach_options.reattachable = True
responses = list(s.ExecutePlan(req, metadata=md(ALICE)))
log(f"alice ran {op}: {len(responses)} responses")

bob_session = str(uuid.uuid4())
results = {}
results["header"] = denied(lambda: s.Config(config_req(str(uuid.uuid4()), "bob"), metadata=md(BOB, control_id)))
results["body"] = denied(lambda: s.Config(config_req(alice_session, "alice"), metadata=md(BOB)))
results["reattach"] = denied(
    lambda: list(
        s.ReattachExecute(
            base_pb2.ReattachExecuteRequest(session_id=bob_session, user_context=ctx("bob"), operation_id=op),
            metadata=md(BOB),
        )
    )
)
rel = base_pb2.ReleaseExecuteRequest(session_id=bob_session, user_context=ctx("bob"), operation_id=op)
rel.release_all.SetInParent()
results["release"] = denied(lambda: s.ReleaseExecute(rel, metadata=md(BOB)))
intr = base_pb2.InterruptRequest(
    session_id=bob_session,
    user_context=ctx("bob"),
    interrupt_type=base_pb2.InterruptRequest.INTERRUPT_TYPE_OPERATION_ID,
    operation_id=op,
)
results["interrupt"] = denied(lambda: s.Interrupt(intr, metadata=md(BOB)))
for path in (f"/control/sessions/{control_id}",):
    for method in ("GET", "DELETE"):
        r = requests.request(method, CONTROL + path, headers={"authorization": f"Bearer {BOB}"}, timeout=30)
        assert r.status_code == 403, f"{method} {path} as bob: {r.status_code} {r.text}"
        assert "alice" not in r.text and "backend" not in r.text, r.text
listed = requests.get(f"{CONTROL}/control/sessions", headers={"authorization": f"Bearer {BOB}"}, timeout=30).json()
assert all(x["id"] not in (control_id, alice_session) for x in listed["sessions"]), listed
log("bob was refused everywhere")

# Bob claims to be alice; Spark must key the session under bob.
impersonation = str(uuid.uuid4())
spark = SparkSession.builder.remote(
    f"sc://localhost:{PORT}/;token={BOB};user_id=alice;session_id={impersonation}"
).create()
spark.range(3).createOrReplaceTempView("made_by_bob")
assert spark.table("made_by_bob").count() == 3

secure = os.environ["SPARK_SECURE"]
secure_port = secure.rsplit(":", 1)[1]
backend_token = os.environ["SPARK_SECURE_TOKEN"]


def direct(user):
    # Straight to Spark (the backend's token, plaintext local credentials on localhost).
    return SparkSession.builder.remote(
        f"sc://localhost:{secure_port}/;token={backend_token};user_id={user};session_id={impersonation}"
    ).create()


as_bob = direct("bob").sql("show views").collect()
assert any(r.viewName == "made_by_bob" for r in as_bob), f"Spark did not key the session under bob: {as_bob}"
as_alice = direct("alice").sql("show views").collect()
assert not any(r.viewName == "made_by_bob" for r in as_alice), f"the view is in alice's session: {as_alice}"
log("Spark keyed the impersonation attempt under bob")
finish(control_id=control_id, denied=results)
