"""The analytics receiver down for 20 s (stopped: connections refused), then up but
answering 500 to every batch for 10 s. The consumers keep their batches and retry them
with backoff; nothing is dead-lettered (5xx is transient) and nothing is lost."""
import time

from conftest import log


def test_analytics_down_for_20_s_then_5xx_for_10_s(chaos):
    c = chaos.start()
    c.wait_delivered(0.3)
    c.fault()
    c.stop_analytics()
    log("analytics stopped")
    time.sleep(20)
    c.start_analytics()
    c.analytics_faults({"error_rate": 1.0, "error_status": 500})
    log("analytics answers 500")
    time.sleep(10)
    c.analytics_faults({})
    c.heal()
    c.verify()
