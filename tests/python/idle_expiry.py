"""Scenario: an idle session expires (and its client is told why); a busy one does not."""

import threading
import time

from pyspark.sql.functions import udf

from sc_e2e import REMOTE, expect_error, finish, log, new_spark

IDLE_TIMEOUT = float(__import__("os").environ["SC_IDLE_TIMEOUT_S"])

idle = new_spark(REMOTE)
idle_id = idle.client._session_id
assert idle.range(3).count() == 3

busy = new_spark(REMOTE)
busy_id = busy.client._session_id


@udf("long")
def slow(x):
    import time as t

    t.sleep(IDLE_TIMEOUT * 2.5)
    return x


result = {}


def run_busy():
    started = time.time()
    result["rows"] = busy.range(1).select(slow("id")).collect()[0][0]
    result["seconds"] = time.time() - started


thread = threading.Thread(target=run_busy)
thread.start()
time.sleep(IDLE_TIMEOUT * 1.5 + 1)
text = expect_error(lambda: idle.range(3).count(), "closed by the proxy", "idle timeout")
log(text)
thread.join()
assert result.get("rows") == 0, f"the busy query finished: {result}"
assert result["seconds"] > IDLE_TIMEOUT * 2, result
# Still usable right after its long query.
assert busy.range(4).count() == 4
busy.stop()
finish(idle_id=idle_id, busy_id=busy_id, busy_seconds=result["seconds"], error=text[:300])
