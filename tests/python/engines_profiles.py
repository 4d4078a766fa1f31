"""Scenario (issue 14, item 2): engine profiles. Two profiles with different
spark.sql.shuffle.partitions, seen by PySpark, chosen through the control plane and, header-less,
through connection-string metadata (x-spark-connect-profile); a forbidden profile is refused
(403 / PERMISSION_DENIED) and an unknown one too (400 / INVALID_ARGUMENT), naming the profiles
there are."""

import os

import requests

from sc_e2e import CONTROL_URL, GRPC_PORT, expect_error, finish, log, new_spark, new_uuid

ALICE = os.environ["SC_TOKEN_ALICE"]


def post_session(token, body):
    return requests.post(
        CONTROL_URL + "/control/sessions",
        json=body,
        headers={"Accept": "application/json", "Authorization": f"Bearer {token}"},
        timeout=300,
    )


def get(path, token):
    res = requests.get(CONTROL_URL + path, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert res.status_code == 200, res.text
    return res.json()


def remote(extra=""):
    return f"sc://localhost:{GRPC_PORT}/;token={ALICE};user_id=alice;session_id={new_uuid()}{extra}"


partitions = lambda spark: spark.conf.get("spark.sql.shuffle.partitions")  # noqa: E731

# Through the control plane.
res = post_session(ALICE, {"profile": "wide"})
assert res.status_code == 200, res.text
wide_session = res.json()
assert wide_session["profile"] == "wide", wide_session
wide = new_spark(f"sc://localhost:{GRPC_PORT}/;token={ALICE};x-spark-connect-session-id={wide_session['id']};session_id={wide_session['id']}")
assert partitions(wide) == "7", partitions(wide)

# Header-less: the default profile, and the metadata choosing one.
default = new_spark(remote())
assert partitions(default) == "3", partitions(default)
wide_too = new_spark(remote(";x-spark-connect-profile=wide"))
assert partitions(wide_too) == "7", partitions(wide_too)
sessions = get("/control/sessions", ALICE)["sessions"]
by_profile = {}
for s in sessions:
    by_profile.setdefault(s.get("profile", "default"), set()).add(s["backend"])
log("backends by profile:", by_profile)
# One engine per (user, profile): both wide sessions share one, the default one is another.
assert len(by_profile["wide"]) == 1 and len(by_profile["default"]) == 1, by_profile
assert by_profile["wide"] != by_profile["default"], by_profile

# Forbidden: only admins may use `restricted`.
res = post_session(ALICE, {"profile": "restricted"})
assert res.status_code == 403, res.text
forbidden = res.json()["error"]
for needle in ("restricted", "admins", "default, wide"):
    assert needle in forbidden, forbidden
expect_error(lambda: new_spark(remote(";x-spark-connect-profile=restricted")).range(1).count(), "PERMISSION_DENIED", "restricted")

# Unknown.
res = post_session(ALICE, {"profile": "huge"})
assert res.status_code == 400, res.text
unknown = res.json()["error"]
assert "'huge'" in unknown and "default, restricted, wide" in unknown, unknown
expect_error(lambda: new_spark(remote(";x-spark-connect-profile=huge")).range(1).count(), "INVALID_ARGUMENT", "huge")

for spark in (wide, default, wide_too):
    spark.stop()
finish(forbidden=forbidden, unknown=unknown, by_profile={k: sorted(v) for k, v in by_profile.items()})
