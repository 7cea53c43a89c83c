"""Two of the three nodes killed at once while the consumers deliver, and 1,000 customers
changed at the API meanwhile. Every partition is below min.insync.replicas, and with two
of the three controllers gone the quorum is lost too (no leader moves, no ISR change),
so no write can be acknowledged: production must stop (the producer's changes wait in
librdkafka, within message.timeout.ms) and resume when the nodes are back 20 s later,
losing nothing: every change reaches analytics."""
import time

from conftest import log, wait_until

CHANGED = 1000


def test_two_brokers_down_stop_production_and_lose_nothing(chaos, cluster):
    c = chaos.start()
    topics = [c.topics["customers"], c.topics["products"]]
    down = [n for n, _ in cluster.leaders(topics)[:2]]
    c.wait_delivered(0.2)
    first = wait_until(lambda: (lambda v: v if v >= c.n else 0)(c.published()), 60, 0.1)
    assert first, "the producer's first cycle was not acknowledged"
    c.fault()
    cluster.kill(*down)
    log(f"killed nodes {down}")
    c.change_customers(range(1, c.n + 1, c.n // CHANGED))
    log(f"changed {len(c.changes)} customers at the API")
    deadline = c.fault_at + 20
    # Nothing can be acknowledged now: the changes stay unpublished for the whole outage.
    while time.time() < deadline:
        now = c.published(fresh=True)
        assert now == first, f"{now - first} record(s) acknowledged with two of three nodes down"
        time.sleep(0.5)
    c.heal()
    cluster.start(*down)
    ok = wait_until(lambda: c.published() >= first + len(c.changes), 120, 0.5)
    assert ok, f"production did not resume: {c.published() - first} of {len(c.changes)} changes"
    log(f"production resumed {time.time() - c.healed_at:.1f} s after the nodes were started")
    c.verify()
    assert wait_until(lambda: cluster.healthy(topics), 90, 1), cluster.partitions(topics)
