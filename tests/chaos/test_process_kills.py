"""kill -9 of the producer in the middle of its first cycle (restarted at once: it has no
memory of what it published, so it publishes every record again and the consumers must
skip the copies), then kill -9 of the same consumer twice, each time replaced at once.
A repeat at analytics is possible only for what a killed consumer had delivered and not
yet marked."""
from conftest import log, wait_until


def test_kill_9_of_the_producer_mid_cycle_and_of_a_consumer_twice(chaos):
    c = chaos.start()
    at = c.wait_in_topic(0.05)
    c.kill(c.producer)
    assert at < c.n, "the producer had finished its cycle before the kill"
    log(f"killed the producer after {c.delivered()} delivered")
    c.start_producer()
    c.wait_delivered(0.25)
    for kill in (1, 2):
        c.fault()  # recover_s: from the last consumer kill
        c.replace_member(0)
        log(f"killed consumer 0 ({kill} of 2), started another")
        if kill == 1:
            # The second kill is of the replacement, once the group has settled again: it
            # has partitions and has restored their join state (/readyz).
            ok = wait_until(lambda: c.ready(c.members[0]) and c.assigned(c.members[0]), 120, 0.1)
            assert ok, c.members[0].logs()[-3000:]
    c.verify()
