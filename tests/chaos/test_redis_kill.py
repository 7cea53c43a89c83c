"""kill -9 of Redis (appendonly yes, so it restarts with the marks written up to the last
second) while the consumers check and mark, and a restart 3 s later. The consumers pause
while it is gone (a check that cannot be made lets nothing through unchecked and skips
nothing) and carry on when it is back."""
import time

from conftest import log


def test_kill_9_of_redis_and_restart(chaos):
    c = chaos.start()
    c.wait_delivered(0.3)
    c.fault()
    c.redis.kill()
    log("killed redis")
    time.sleep(3)
    c.redis.start()
    c.heal()
    assert int(c.redis.cli("DBSIZE")) > 0, "the append-only file kept no mark"
    c.verify()
