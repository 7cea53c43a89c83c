"""kill -9 of the node leading most of the case's partitions while the producer is in its
first cycle and the consumers are delivering; the node is started again 10 s later.
Its partitions get new leaders once the controller fences it (broker.session.timeout.ms,
6 s in tools/services' cluster), the idempotent producer resends what was not
acknowledged to them, the group finds its coordinator again, and nothing is lost."""
import time

from conftest import log, wait_until


def test_kill_9_of_the_leader_of_most_partitions(chaos, cluster):
    c = chaos.start()
    topics = [c.topics["customers"], c.topics["products"]]
    c.wait_in_topic(0.4)
    node, led = cluster.leaders(topics)[0]
    c.fault()
    cluster.kill(node)
    log(f"killed node {node}, leader of {led} of {len(topics) * 6} partitions")
    time.sleep(10)
    c.heal()
    cluster.start(node)
    c.verify()
    assert wait_until(lambda: cluster.healthy(topics), 90, 1), cluster.partitions(topics)
