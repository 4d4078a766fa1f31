"""Real PySpark over TLS with `token=`: a good static token and a good JWT are accepted; a bad,
an expired and a missing one are rejected with UNAUTHENTICATED and a clear message.

Environment: SC_GRPC_PORT (the proxy's TLS port), GRPC_DEFAULT_SSL_ROOTS_FILE_PATH (the test CA),
ALICE_TOKEN, JWT_SECRET.
"""

import base64
import hashlib
import hmac
import json
import os
import time

from sc_e2e import expect_error, finish, log, make_fail_fast
from pyspark.sql import SparkSession

PORT = os.environ["SC_GRPC_PORT"]


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(claims):
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims).encode())
    signing_input = f"{header}.{payload}".encode()
    sig = hmac.new(os.environ["JWT_SECRET"].encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(sig)}"


def remote(token):
    # A host other than "localhost" makes PySpark use TLS for `token=` (for "localhost" it sends
    # the token over plaintext local credentials).
    if token is None:
        return f"sc://127.0.0.1:{PORT}/;use_ssl=true"
    return f"sc://127.0.0.1:{PORT}/;token={token}"


def count_with(token):
    spark = SparkSession.builder.remote(remote(token)).create()
    make_fail_fast(spark)
    return spark.range(7).count()


now = int(time.time())
assert count_with(os.environ["ALICE_TOKEN"]) == 7
log("static token accepted over TLS")
good_jwt = jwt({"sub": "carol", "iss": "sc-e2e", "aud": "spark", "exp": now + 600})
assert count_with(good_jwt) == 7
log("JWT accepted over TLS")

bad = expect_error(lambda: count_with("not-a-valid-token"), "UNAUTHENTICATED", "is not valid")
assert "not-a-valid-token" not in bad, f"the proxy echoed the token: {bad}"
expired = expect_error(
    lambda: count_with(jwt({"sub": "carol", "iss": "sc-e2e", "aud": "spark", "exp": now - 3600})),
    "UNAUTHENTICATED",
    "expired",
)
wrong_aud = expect_error(
    lambda: count_with(jwt({"sub": "carol", "iss": "sc-e2e", "aud": "web", "exp": now + 600})),
    "UNAUTHENTICATED",
    "audience",
)
missing = expect_error(lambda: count_with(None), "UNAUTHENTICATED", "no credentials", "token=")
finish(bad=bad[:300], expired=expired[:300], missing=missing[:300], wrong_aud=wrong_aud[:300])
