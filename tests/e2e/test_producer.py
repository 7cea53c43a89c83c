"""End-to-end tests of `junction produce` against `junction api` and the real Kafka
started by tools/services (127.0.0.1:9092). Each test writes to its own topics and reads
them back with kcat."""
import json
import os
import subprocess
import time
import uuid

import pytest

from conftest import BROKER, ROOT, request



def services(*args):
    subprocess.run([os.path.join(ROOT, "tools", "services"), *args], check=True,
                   stdout=subprocess.DEVNULL)


@pytest.fixture(scope="module", autouse=True)
def kafka_up():
    services("up")
    yield
    services("up")  # a test that stopped the broker must not leave it down


def read_topic(topic, limit=None):
    """Every (key, value) in the topic, decoded from JSON; at most `limit` of them. A topic
    that is still being written needs the limit: kcat's -e waits for every partition to be
    at its end at once, which a steady writer can postpone indefinitely."""
    count = ["-c", str(limit)] if limit else []
    p = subprocess.run(["kcat", "-b", BROKER, "-C", "-t", topic, "-e", "-q", *count,
                        "-f", "%k\t%s\n"], capture_output=True, text=True, timeout=60)
    if p.returncode != 0 and "Unknown topic" in p.stderr:
        return []
    assert p.returncode == 0, p.stderr
    out = []
    for line in p.stdout.splitlines():
        k, v = line.split("\t", 1)
        out.append((k, json.loads(v)))
    return out


def wait_until(fn, timeout, step=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()


@pytest.fixture
def pipeline(make_junction):
    """A `junction api` and a factory for a `junction produce` polling it."""
    api = make_junction()
    suffix = uuid.uuid4().hex[:8]
    topics = {"crm": f"customer_data_{suffix}", "inventory": f"inventory_data_{suffix}"}

    def produce(overrides=None, start=True):
        cfg = {
            "producer": {
                "poll_interval_ms": 100,
                "retry": {"base_ms": 50, "max_ms": 400},
                "crm": {"url": api.crm + "/customers", "topic": topics["crm"]},
                "inventory": {"url": api.inventory + "/products", "topic": topics["inventory"]},
            },
            "kafka": {"brokers": BROKER, "message_timeout_ms": 15000},
        }
        from conftest import deep_merge
        return make_junction(deep_merge(cfg, overrides or {}), command="produce", start=start)

    return api, topics, produce


def test_one_cycle_publishes_every_record_with_its_key_and_value(pipeline):
    api, topics, produce = pipeline
    p = produce()
    customers = {str(c["id"]): c for c in request(api.crm + "/customers").json()}
    products = {p_["id"]: p_ for p_ in request(api.inventory + "/products").json()}
    got = wait_until(lambda: len(read_topic(topics["crm"])) >= 1000, 30)
    assert got, p.logs()
    recs = read_topic(topics["crm"])
    assert len(recs) == 1000
    assert dict(recs) == customers
    inv = read_topic(topics["inventory"])
    assert len(inv) == 10 and dict(inv) == products
    assert "Published 1000 customer(s) to topic " + topics["crm"] in p.logs()
    assert "Published 10 product(s) to topic " + topics["inventory"] in p.logs()
    assert p.metric("junction_producer_records_total", source="crm", result="published") == 1000


def test_only_a_changed_record_is_published_again(pipeline):
    api, topics, produce = pipeline
    p = produce()
    assert wait_until(lambda: len(read_topic(topics["crm"])) >= 1000, 30), p.logs()
    # Several quiet cycles publish nothing.
    polls = p.metric("junction_producer_polls_total", source="crm")
    assert wait_until(lambda: p.metric("junction_producer_polls_total", source="crm") >= polls + 3,
                      10)
    assert len(read_topic(topics["crm"])) == 1000
    r = request(api.crm + "/customers/77", "PUT",
                '{"name":"Changed","email":"changed@example.com","productIds":["3"]}')
    assert r.status == 200
    assert wait_until(lambda: len(read_topic(topics["crm"])) == 1001, 15), p.logs()
    time.sleep(0.5)
    recs = read_topic(topics["crm"])
    assert len(recs) == 1001
    assert recs[-1][0] == "77" or ("77", r.json()) in recs
    assert ("77", r.json()) in recs


def test_publish_all_sends_every_record_every_cycle(pipeline):
    api, topics, produce = pipeline
    p = produce({"producer": {"publish_all": True}})
    assert wait_until(lambda: len(read_topic(topics["inventory"], limit=30)) >= 30, 30), p.logs()


def test_injected_api_failures_are_retried_then_succeed(pipeline):
    api, topics, produce = pipeline
    request(api.admin + "/api/faults/crm", "PUT", '{"fail_next":2,"error_status":503}')
    p = produce()
    assert wait_until(lambda: len(read_topic(topics["crm"])) >= 1000, 30), p.logs()
    assert p.metric("junction_producer_retries_total", source="crm") >= 2
    assert p.metric("junction_producer_failures_total", source="crm", reason="http_5xx") >= 2
    assert "try 2 of 4" in p.logs()


def test_malformed_and_non_array_bodies_publish_nothing_then_recover(pipeline):
    api, topics, produce = pipeline
    request(api.admin + "/api/faults/crm", "PUT", '{"malformed_rate":1}')
    p = produce()
    assert wait_until(lambda: (p.metric("junction_producer_failures_total", source="crm",
                                        reason="malformed_json") or 0) >= 3, 15), p.logs()
    assert read_topic(topics["crm"]) == []
    assert p.proc.poll() is None
    request(api.admin + "/api/faults/crm", "PUT", '{}')
    assert wait_until(lambda: len(read_topic(topics["crm"])) >= 1000, 30), p.logs()
    assert len(read_topic(topics["crm"])) == 1000


class StubAPI:
    """A tiny HTTP server answering every GET with a body the test sets."""

    def __init__(self):
        import http.server
        import threading
        stub = self
        self.body = b"[]"

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(stub.body)))
                self.end_headers()
                self.wfile.write(stub.body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/products"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def test_not_an_array_and_records_without_id_are_counted(make_junction):
    stub = StubAPI()
    try:
        stub.body = b'{"products": []}'
        topic = "inventory_data_" + uuid.uuid4().hex[:8]
        p = make_junction({"producer": {"poll_interval_ms": 100, "crm": {"enabled": False},
                                        "inventory": {"url": stub.url, "topic": topic}},
                           "kafka": {"brokers": BROKER}}, command="produce")
        assert wait_until(lambda: (p.metric("junction_producer_failures_total",
                                            source="inventory", reason="not_array") or 0) >= 2,
                          10), p.logs()
        assert "expected a JSON array" in p.logs()
        assert read_topic(topic) == []
        stub.body = b'[{"id":"1","name":"ok","stock":1},{"name":"no id"},5,{"id":"2","stock":2}]'
        assert wait_until(lambda: len(read_topic(topic)) == 2, 15), p.logs()
        assert sorted(k for k, _ in read_topic(topic)) == ["1", "2"]
        assert p.metric("junction_producer_records_total", source="inventory",
                        result="invalid") >= 2
        assert "has no id" in p.logs() and "is not an object" in p.logs()
        assert p.proc.poll() is None
    finally:
        stub.close()


def test_map_script_errors_skip_only_that_record(pipeline):
    api, topics, produce = pipeline
    p = produce(start=False)
    with open(os.path.join(p.scripts, "map_customers.lua"), "w") as f:
        f.write('''local M = {}
function M.map(c, ctx)
  if c.id == 13 then error("unlucky record") end
  if c.id == 14 then return {key = "", value = c} end
  return {key = tostring(c.id), value = c}
end
return M''')
    p.start()
    assert wait_until(lambda: len(read_topic(topics["crm"])) >= 998, 30), p.logs()
    keys = {k for k, _ in read_topic(topics["crm"])}
    assert "13" not in keys and "14" not in keys and len(keys) == 998
    assert p.metric("junction_producer_records_total", source="crm", result="map_error") >= 2
    assert "unlucky record" in p.logs()


def rename_customers(api, ids, prefix):
    """PATCHes each customer's name to "<prefix> <id>"; returns {key: the new record}."""
    changed = {}
    for i in ids:
        r = request(api.crm + f"/customers/{i}", "PATCH", json.dumps({"name": f"{prefix} {i}"}))
        changed[str(i)] = r.json()
    return changed


def all_published(topic, changed):
    """Whether the topic holds every (key, record) of changed."""
    records = read_topic(topic)
    return all((k, v) in records for k, v in changed.items())


def test_broker_down_at_start_and_restarted_mid_run_loses_nothing(pipeline):
    api, topics, produce = pipeline
    services("stop-kafka")
    try:
        p = produce()
        time.sleep(2)
        assert p.proc.poll() is None
    finally:
        services("start-kafka")
    assert wait_until(lambda: len(read_topic(topics["crm"])) >= 1000, 60), p.logs()
    # Mid-run: stop the broker, change records while it is down, start it again.
    services("stop-kafka")
    try:
        changed = rename_customers(api, range(1, 51), "Down")
        time.sleep(2)
        assert p.proc.poll() is None
    finally:
        services("start-kafka")
    assert wait_until(lambda: all_published(topics["crm"], changed), 90, step=1), p.logs()
    final = {}
    for k, v in read_topic(topics["crm"]):
        final[k] = v
    assert len(final) == 1000
    assert all(final[k] == v for k, v in changed.items())


def test_records_kafka_gave_up_on_are_published_again_though_the_api_is_unchanged(pipeline):
    # While the broker is down, later polls see the same response (same ETag) and skip the
    # changed records as still in flight. When librdkafka then gives up on them, the
    # producer must not answer the next poll's 304 with nothing: they go out once the
    # broker is back.
    api, topics, produce = pipeline
    p = produce({"kafka": {"message_timeout_ms": 2000}})
    assert wait_until(lambda: len(read_topic(topics["crm"])) >= 1000, 60), p.logs()
    services("stop-kafka")
    try:
        changed = rename_customers(api, range(1, 21), "Lost")
        assert wait_until(lambda: p.metric("junction_producer_delivery_errors_total",
                                           source="crm") >= 20, 30), p.logs()
        polls = p.metric("junction_producer_polls_total", source="crm")
        # Several more polls of the unchanged API while the broker is still down.
        assert wait_until(lambda: p.metric("junction_producer_polls_total", source="crm")
                          >= polls + 5, 10), p.logs()
        assert p.proc.poll() is None
    finally:
        services("start-kafka")
    assert wait_until(lambda: all_published(topics["crm"], changed), 90, step=1), p.logs()
