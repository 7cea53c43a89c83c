"""A rolling restart of the three nodes, as an operator upgrades a cluster: SIGTERM (a
controlled shutdown: the node hands its leaderships over first), start it again, wait
until every partition has its whole ISR back, then the next node."""
import time

from conftest import log, wait_until


def test_rolling_restart_of_all_three_nodes(chaos, cluster):
    c = chaos.start()
    topics = [c.topics["customers"], c.topics["products"], c.topics["dead"]]
    c.wait_in_topic(0.4)
    c.fault()
    for node in (1, 2, 3):
        t = time.time()
        cluster.stop(node)
        cluster.start(node)
        ok = wait_until(lambda: cluster.healthy(topics), 120, 0.5)
        assert ok, f"the ISR did not recover after node {node}: {cluster.partitions(topics)}"
        log(f"node {node} restarted, ISR whole again after {time.time() - t:.1f} s; "
            f"{c.delivered()} delivered")
    c.heal()
    c.verify()
