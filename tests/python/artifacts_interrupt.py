"""Scenario: addArtifacts (client streaming) and interruptAll from another thread, via the proxy."""

import os
import tempfile
import threading
import time

from pyspark.sql.functions import udf

from sc_e2e import REMOTE, expect_error, log, new_spark, finish

spark = new_spark(REMOTE)

# --- addArtifacts: a Python module the server side then imports inside a UDF ---
folder = tempfile.mkdtemp()
module = os.path.join(folder, "sc_e2e_artifact.py")
with open(module, "w") as f:
    f.write("def triple(x):\n    return 3 * x\n")
spark.addArtifacts(module, pyfile=True)


@udf("long")
def triple(x):
    import sc_e2e_artifact

    return sc_e2e_artifact.triple(x)


values = [row[0] for row in spark.range(5).select(triple("id")).orderBy("id").collect()]
assert values == [0, 3, 6, 9, 12], values

# --- interruptAll from another thread while a long query runs ---
interrupted = []


def interrupter():
    # Call until it hits the running operation: the first call may come before it starts.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(1)
        ids = spark.interruptAll()
        if ids:
            interrupted.extend(ids)
            return


thread = threading.Thread(target=interrupter, daemon=True)
thread.start()
started = time.monotonic()
# max() over 10**12 ids takes many minutes on two cores: it only ends by interruption.
text = expect_error(
    lambda: spark.range(10**12).selectExpr("max(id)").collect(), "OPERATION_CANCELED"
)
seconds = time.monotonic() - started
thread.join(timeout=30)
log(f"interrupted after {seconds:.1f} s: {text[:200]}")
assert interrupted, "interruptAll() never reported an interrupted operation"
assert seconds < 60, seconds

# The session goes on working.
assert spark.range(3).count() == 3
spark.stop()
finish(interrupted=interrupted, seconds=round(seconds, 1))
