"""The chaos suite's baseline: the same pipeline and checks with no fault, so the other
cases' figures (recover_s above all, whose floor is the prefetch order in which a member
works through its partitions) have something to be read against."""
from conftest import log


def test_no_fault(chaos):
    c = chaos.start()
    c.wait_in_topic(0.4)
    c.fault()  # nothing happens: recover_s is the noise floor
    log(f"no fault: {c.delivered()} delivered")
    c.verify()
