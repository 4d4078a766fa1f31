"""Scenario: a result of more than 200 MB streams through the proxy, every row arriving.

The test servers cut reattachable result streams every 1 MiB
(spark.connect.execute.reattachable.senderMaxStreamSize=1m), so PySpark has to send many
ReattachExecute calls through the proxy to read it all.
"""

import os
import time

import numpy as np
import pyarrow.compute as pc

from sc_e2e import REMOTE, log, new_spark, finish

ROWS = int(os.environ.get("SC_LARGE_ROWS", "2000000"))
WIDTH = 100

spark = new_spark(REMOTE)
started = time.monotonic()
table = spark.range(ROWS).selectExpr("id", f"repeat('x', {WIDTH}) AS s").toArrow()
seconds = time.monotonic() - started
log(f"{table.num_rows} rows, {table.nbytes} bytes in {seconds:.1f} s")

assert table.num_rows == ROWS, table.num_rows
assert table.nbytes >= 200_000_000 or ROWS < 2_000_000, table.nbytes
ids = table.column("id").to_numpy()
# Every id exactly once, in order, and every string intact.
assert np.array_equal(ids, np.arange(ROWS, dtype=ids.dtype)), "ids are not 0..N-1 in order"
assert pc.sum(table.column("id")).as_py() == ROWS * (ROWS - 1) // 2
assert pc.sum(pc.utf8_length(table.column("s"))).as_py() == ROWS * WIDTH
assert pc.all(pc.equal(table.column("s"), "x" * WIDTH)).as_py()

# The session is still usable after the long stream.
assert spark.range(7).count() == 7
spark.stop()
finish(rows=table.num_rows, nbytes=table.nbytes, seconds=round(seconds, 1))
