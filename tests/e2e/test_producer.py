"""End-to-end tests of `junction produce` against `junction api` and the real Kafka
started by tools/services (127.0.0.1:9092). Each test writes to its own topics and reads
them back with kcat."""
import json
import os
import uuid

import pytest

from junction_test import BROKER, ROOT, FixtureServer, deep_merge, free_port, free_ports
from junction_test import only, producer_settled
from junction_test import read_topic as read_messages
from junction_test import request, secret, services, wait_until


@pytest.fixture(scope="module", autouse=True)
def kafka_up():
    services("up")
    yield
    services("up")  # a test that stopped the broker must not leave it down


def read_topic(topic, limit=None):
    """Every (key, value) in the topic, the value decoded from JSON; at most `limit`."""
    return [(k, json.loads(v)) for k, v in read_messages(topic, limit=limit)]


def polls_started(j, source):
    return j.status()["producer"][source]["polls"]


@pytest.fixture
def pipeline(make_junction):
    """A `junction api` and a factory for a `junction produce` polling it."""
    api = make_junction()
    suffix = uuid.uuid4().hex[:8]
    topics = {"crm": f"customer_data_{suffix}", "inventory": f"inventory_data_{suffix}"}

    def produce(overrides=None, start=True):
        cfg = {
            "producer": {"poll_interval_ms": 100, "retry": {"base_ms": 50, "max_ms": 400}},
            "sources": {
                "crm": {"url": api.crm + "/customers", "topic": topics["crm"]},
                "inventory": {"url": api.inventory + "/products", "topic": topics["inventory"]},
            },
            "kafka": {"brokers": BROKER, "message_timeout_ms": 15000},
        }
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
    # Exactly one more message, and no further one: the producer's counters stop at 1001
    # over two more cycles with nothing in flight.
    assert producer_settled(p, "crm", 1001), (p.status()["producer"], p.logs()[-3000:])
    recs = read_topic(topics["crm"])
    assert len(recs) == 1001
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
    """An API answering every request with a body the test sets."""

    def __init__(self):
        self.body = b"[]"
        self.server = FixtureServer(lambda method, path, headers: (200, self.body, ()))
        self.url = self.server.url + "/products"

    def close(self):
        self.server.close()


def test_not_an_array_and_records_without_id_are_counted(make_junction):
    stub = StubAPI()
    try:
        stub.body = b'{"products": []}'
        topic = "inventory_data_" + uuid.uuid4().hex[:8]
        p = make_junction({"producer": {"poll_interval_ms": 100},
                           "sources": {"crm": {"enabled": False},
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


def not_ready(p):
    r = request(p.admin + "/readyz")
    return r.status == 503 and b"no Kafka broker reachable" in r.body


def all_published(topic, changed):
    """Whether the topic holds every (key, record) of changed."""
    records = read_topic(topic)
    return all((k, v) in records for k, v in changed.items())


def test_broker_down_at_start_and_restarted_mid_run_loses_nothing(pipeline):
    api, topics, produce = pipeline
    services("stop-kafka")
    try:
        p = produce()
        # It keeps polling with its records waiting for Kafka, and knows Kafka is away.
        assert wait_until(lambda: polls_started(p, "crm") >= 3 and not_ready(p), 30), \
            (p.status()["producer"], p.logs()[-3000:])
        assert p.proc.poll() is None
    finally:
        services("start-kafka")
    assert wait_until(lambda: len(read_topic(topics["crm"])) >= 1000, 60), p.logs()
    # Mid-run: stop the broker, change records while it is down, start it again.
    services("stop-kafka")
    try:
        polls = polls_started(p, "crm")
        changed = rename_customers(api, range(1, 51), "Down")
        # A later poll found the 50 changes and queued them while no broker takes them.
        assert wait_until(lambda: polls_started(p, "crm") >= polls + 2 and not_ready(p) and
                          p.status()["producer"]["kafka"]["inflight"] >= 50, 30), \
            (p.status()["producer"], p.logs()[-3000:])
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


# ---- sources that page -------------------------------------------------------------------

class PagedAPI:
    """An API serving `count` records a page at a time, in one of the three styles the
    stock paging helpers read, optionally behind a bearer token:
      cursor  GET /orders?limit=L[&cursor=C] -> {"data":[...],"next_cursor":"..."|null}
      link    GET /orders?page=N&per_page=L  -> [...] plus Link: <next>; rel="next"
      offset  GET /orders?offset=O&limit=L   -> [...] (empty past the end)
    fail_pages: pages answered 503; bad_link_page: a page whose Link header is malformed."""

    def __init__(self, count, style, token=None):
        import base64
        import urllib.parse
        self.records = [{"id": i, "name": f"Order {i}", "total": i * 10} for i in range(1, count + 1)]
        self.style, self.token = style, token
        self.fail_pages, self.bad_link_page = set(), None
        self.requests = []

        def page_of(query):
            q = {k: v[0] for k, v in urllib.parse.parse_qs(query).items()}
            if style == "cursor":
                limit = int(q.get("limit", 100))
                off = int(base64.urlsafe_b64decode(q["cursor"]).decode()) if "cursor" in q else 0
            elif style == "link":
                limit = int(q.get("per_page", 100))
                off = (int(q.get("page", 1)) - 1) * limit
            else:
                limit, off = int(q.get("limit", 100)), int(q.get("offset", 0))
            return off, limit, off // limit + 1

        def answer(method, full_path, headers):
            path, _, query = full_path.partition("?")
            self.requests.append(full_path)
            if self.token and headers.get("Authorization") != "Bearer " + self.token:
                return 401, {"error": "Unauthorized"}, ()
            off, limit, page = page_of(query)
            if page in self.fail_pages:
                return 503, {"error": "Service Unavailable"}, ()
            recs = self.records[off:off + limit]
            more = off + limit < len(self.records)
            if style == "cursor":
                nxt = base64.urlsafe_b64encode(str(off + limit).encode()).decode() if more else None
                return 200, {"data": recs, "next_cursor": nxt}, ()
            links = []
            if style == "link" and more:
                url = f"{self.base}{path}?page={page + 1}&per_page={limit}"
                bad = page == self.bad_link_page
                links.append(("Link", f'{url}; rel="next"' if bad else f'<{url}>; rel="next"'))
            return 200, recs, links

        self.server = FixtureServer(answer)
        self.base = self.server.url
        self.url = self.base + "/orders"

    def close(self):
        self.server.close()


MAP_WITH = """local paging = require "stock.paging"
local M = {}
M.records, M.next = %s
function M.map(r, ctx) return { key = tostring(r.id), value = r } end
return M
"""


@pytest.fixture
def paged(make_junction, tmp_path):
    """Returns start(api, url, script_hooks=None, source={}, env={}) -> (junction, topic):
    a `junction produce` with one source, "orders", polling url. script_hooks is the
    right-hand side of `M.records, M.next = ...` (default: scripts/map_orders.lua, the
    cursor helper)."""
    made = []

    def start(url, hooks=None, source=None, env=None, check_start=True):
        topic = "order_data_" + uuid.uuid4().hex[:8]
        script = os.path.join(ROOT, "scripts", "map_orders.lua")
        if hooks:
            script = str(tmp_path / f"map_{len(made)}.lua")
            with open(script, "w") as f:
                f.write(MAP_WITH % hooks)
        src = {"url": url, "topic": topic, "script": script, "noun": "order(s)",
               "poll_interval_ms": 200, "retry": {"attempts": 3, "base_ms": 20, "max_ms": 100}}
        src.update(source or {})
        j = make_junction({"sources": only(orders=src),
                           "kafka": {"brokers": BROKER, "message_timeout_ms": 15000}},
                          env=env, command="produce", start=check_start)
        made.append(j)
        return j, topic

    return start


def status(j):
    return request(j.admin + "/api/status").json()["producer"]["orders"]


def polls(j, result=None):
    labels = {"source": "orders"}
    if result:
        labels["result"] = result
    return j.metric("junction_producer_polls_total", **labels) or 0


def test_cursor_pages_with_a_bearer_token_publish_every_record_once_then_only_changes(paged):
    token = "tok-" + uuid.uuid4().hex
    api = PagedAPI(5000, "cursor", token=token)
    try:
        j, topic = paged(api.url + "?limit=100", source={
            "headers": {"Authorization": {"env": "JN_E2E_ORDERS_TOKEN", "prefix": "Bearer "}}},
            env={"JN_E2E_ORDERS_TOKEN": token})
        assert wait_until(lambda: len(read_topic(topic)) >= 5000, 60), j.logs()[-3000:]
        assert "Published 5000 order(s) to topic " + topic in j.logs()
        # Further cycles, every page fetched again, publish nothing.
        n = polls(j, "ok")
        assert wait_until(lambda: polls(j, "ok") >= n + 3, 30), j.logs()[-3000:]
        recs = read_topic(topic)
        assert len(recs) == 5000 and len({k for k, _ in recs}) == 5000
        assert dict(recs) == {str(r["id"]): r for r in api.records}
        assert sum(1 for p in api.requests if "cursor=" in p) >= 4 * 49
        # One record on page 37 changes: exactly one more message.
        api.records[3650]["name"] = "Changed"
        assert wait_until(lambda: len(read_topic(topic)) == 5001, 30), j.logs()[-3000:]
        n = polls(j, "ok")
        assert wait_until(lambda: polls(j, "ok") >= n + 2, 30)
        recs = read_topic(topic)
        assert len(recs) == 5001 and ("3651", api.records[3650]) in recs
        assert [k for k, _ in recs].count("3651") == 2
        assert status(j)["last_error"] is None
        assert j.metric("junction_producer_failures_total", source="orders") is None
    finally:
        api.close()


def test_link_header_pages_publish_every_record(paged):
    api = PagedAPI(1000, "link")
    try:
        j, topic = paged(api.url + "?page=1&per_page=100", hooks="paging.link()")
        assert wait_until(lambda: len(read_topic(topic)) >= 1000, 60), j.logs()[-3000:]
        n = polls(j, "ok")
        assert wait_until(lambda: polls(j, "ok") >= n + 2, 30)
        recs = read_topic(topic)
        assert len(recs) == 1000 and dict(recs) == {str(r["id"]): r for r in api.records}
        assert "/orders?page=10&per_page=100" in api.requests
    finally:
        api.close()


def test_offset_pages_of_the_mock_api_publish_every_record_then_only_changes(pipeline, paged):
    api, _, _ = pipeline
    j, topic = paged(api.crm + "/customers?limit=100", hooks="paging.offset { limit = 100 }")
    assert wait_until(lambda: len(read_topic(topic)) >= 1000, 60), j.logs()[-3000:]
    customers = {str(c["id"]): c for c in request(api.crm + "/customers").json()}
    n = polls(j, "ok")
    assert wait_until(lambda: polls(j, "ok") >= n + 2, 30)
    recs = read_topic(topic)
    assert len(recs) == 1000 and dict(recs) == customers
    r = request(api.crm + "/customers/512", "PATCH", '{"name":"Paged"}')
    assert r.status == 200
    assert producer_settled(j, "orders", 1001), j.logs()[-3000:]
    recs = read_topic(topic)
    assert len(recs) == 1001 and ("512", r.json()) in recs
    assert [k for k, _ in recs].count("512") == 2


def test_a_wrong_token_is_unauthorized_once_per_cycle_and_publishes_nothing(paged):
    api = PagedAPI(300, "cursor", token="right-token")
    try:
        j, topic = paged(api.url + "?limit=100", source={
            "headers": {"Authorization": {"env": "JN_E2E_ORDERS_TOKEN", "prefix": "Bearer "}}},
            env={"JN_E2E_ORDERS_TOKEN": "wrong-token"})
        assert wait_until(lambda: polls(j, "failed") >= 4, 15), j.logs()[-3000:]
        failed = polls(j, "failed")
        unauthorized = j.metric("junction_producer_failures_total", source="orders",
                                reason="unauthorized")
        # Counted once per cycle, never retried (the counters are read one after the other).
        assert failed <= unauthorized <= failed + 1, (failed, unauthorized)
        assert j.metric("junction_producer_retries_total", source="orders") == 0
        assert status(j)["last_error"].startswith("unauthorized: HTTP 401")
        assert j.logs().count("(unauthorized)") == 1, j.logs()
        assert "wrong-token" not in j.logs() and "right-token" not in j.logs()
        assert read_topic(topic) == []
        # The right token: every record goes out and the error clears.
        api.token = "wrong-token"
        assert wait_until(lambda: len(read_topic(topic)) >= 300, 30), j.logs()[-3000:]
        assert wait_until(lambda: status(j)["last_error"] is None, 10)
    finally:
        api.close()


def test_a_page_failing_mid_cycle_loses_nothing_once_it_recovers(paged):
    api = PagedAPI(1000, "cursor")
    api.fail_pages = {6}
    try:
        j, topic = paged(api.url + "?limit=100")
        # Pages 1 to 5 are published; page 6 fails after its tries, every cycle.
        assert wait_until(lambda: len(read_topic(topic)) >= 500, 30), j.logs()[-3000:]
        assert wait_until(lambda: polls(j, "failed") >= 3, 30), j.logs()[-3000:]
        assert len(read_topic(topic)) == 500
        assert j.metric("junction_producer_failures_total", source="orders", reason="http_5xx") >= 9
        assert "source orders page 6: GET " in j.logs() and "failed after 3 tries" in j.logs()
        assert status(j)["last_error"].startswith("http_5xx")
        api.fail_pages = set()
        assert wait_until(lambda: len(read_topic(topic)) >= 1000, 30), j.logs()[-3000:]
        n = polls(j, "ok")
        assert wait_until(lambda: polls(j, "ok") >= n + 2, 30)
        recs = read_topic(topic)
        # Every record exactly once: the first five pages were not published again.
        assert len(recs) == 1000 and dict(recs) == {str(r["id"]): r for r in api.records}
    finally:
        api.close()


def test_next_repeating_a_page_or_passing_max_pages_is_a_clear_error(paged):
    api = PagedAPI(1000, "cursor")
    try:
        # A next() that returns the page it was given.
        j, topic = paged(api.url + "?limit=100",
                         hooks="paging.cursor(), function(response) return response.url end")
        assert wait_until(lambda: "next() returned the URL of page 1 again" in j.logs(), 15), \
            j.logs()[-3000:]
        assert "source orders page 1: next() returned the URL of page 1 again" in j.logs()
        assert wait_until(lambda: len(read_topic(topic)) >= 100, 15)
        assert j.metric("junction_producer_failures_total", source="orders", reason="page_loop") >= 1
        assert status(j)["last_error"].startswith("page_loop: next() returned the URL of page 1")
        # Three pages at most: the fourth is never asked for.
        j2, topic2 = paged(api.url + "?limit=100", source={"max_pages": 3})
        assert wait_until(lambda: "next() asks for page 4, past max_pages (3)" in j2.logs(), 15), \
            j2.logs()[-3000:]
        assert "source orders page 3: next() asks for page 4" in j2.logs()
        assert producer_settled(j2, "orders", 300), j2.logs()[-3000:]
        assert len(read_topic(topic2)) == 300
        # A next page on another host would take the source's credentials there.
        j3, _ = paged(api.url + "?limit=100",
                      hooks='paging.cursor(), function() return "http://127.0.0.2:9/orders" end')
        assert wait_until(lambda: "on another host than the source's url" in j3.logs(), 15), \
            j3.logs()[-3000:]
        assert j3.metric("junction_producer_failures_total", source="orders",
                         reason="bad_next_url") >= 1
    finally:
        api.close()
    # A hand-written next() may hand back JSON's null after the last page.
    api = PagedAPI(200, "cursor")
    try:
        j4, topic4 = paged(api.url + "?limit=100", hooks=(
            'paging.cursor(), function(r) local c = r.body.next_cursor\n'
            '  assert(c ~= nil, "null decodes to a value of its own")\n'
            '  if type(c) == "string" then return paging.set_query(r.url, "cursor", c) end\n'
            '  return c end'))
        assert wait_until(lambda: polls(j4, "ok") >= 2, 15), j4.logs()[-3000:]
        assert wait_until(lambda: len(read_topic(topic4)) >= 200, 15)
        assert j4.metric("junction_producer_failures_total", source="orders") is None
    finally:
        api.close()


def test_an_envelope_without_its_array_or_a_bad_link_header_publishes_nothing_of_that_page(paged):
    stub = StubAPI()
    api = PagedAPI(300, "link")
    api.bad_link_page = 2
    try:
        stub.body = b'{"items":[{"id":1}],"next_cursor":null}'
        j, topic = paged(stub.url)
        assert wait_until(lambda: "records() failed" in j.logs(), 15), j.logs()[-3000:]
        assert f"source orders page 1: GET {stub.url}: records() failed: the response has no " \
            '"data" array (records_error)' in j.logs()
        assert j.metric("junction_producer_failures_total", source="orders",
                        reason="records_error") >= 1
        assert producer_settled(j, "orders", 0), j.logs()[-3000:]
        assert read_topic(topic) == []
        stub.body = b'{"data":[{"id":1}],"next_cursor":null}'
        assert wait_until(lambda: len(read_topic(topic)) == 1, 15), j.logs()[-3000:]
        # An envelope with no records in it is a page like any other.
        stub.body = b'{"data":[],"next_cursor":null}'
        n = polls(j, "ok")
        assert wait_until(lambda: polls(j, "ok") >= n + 2, 15), j.logs()[-3000:]
        assert j.proc.poll() is None

        # Page 2's Link header does not parse: page 1 is published, page 2 is not.
        j2, topic2 = paged(api.url + "?page=1&per_page=100", hooks="paging.link()")
        assert wait_until(lambda: "Link header:" in j2.logs(), 15), j2.logs()[-3000:]
        assert "source orders page 2: GET " in j2.logs()
        assert 'next() failed: Link header: expected "<" starting a link' in j2.logs()
        assert producer_settled(j2, "orders", 100), j2.logs()[-3000:]
        assert sorted(int(k) for k, _ in read_topic(topic2)) == list(range(1, 101))
        api.bad_link_page = None
        assert wait_until(lambda: len(read_topic(topic2)) >= 300, 15), j2.logs()[-3000:]
        assert len(read_topic(topic2)) == 300
    finally:
        stub.close()
        api.close()


# ---- sources paging through the mock APIs of `junction api` ------------------------------

def orders_source(url, topic, **extra):
    src = {"url": url, "topic": topic, "script": os.path.join(ROOT, "scripts", "map_orders.lua"),
           "noun": "order(s)", "poll_interval_ms": 300,
           "headers": {"Authorization": {"env": "JN_E2E_ORDERS_TOKEN", "prefix": "Bearer "}}}
    src.update(extra)
    return src


def test_the_orders_example_api_is_polled_whole_then_only_changes(make_junction):
    """examples/orders.lua's orders API (50,000 orders, cursor pages of 1000 in an
    envelope, a bearer token) read by scripts/map_orders.lua: every order once, then one
    message for one changed order."""
    token = secret("orders-" + uuid.uuid4().hex)
    api = make_junction(start=False)
    (port,) = free_ports(1, (api.crm_port, api.inv_port, api.admin_port, api.analytics_port))
    api.env.update({"JUNCTION_CRM_LISTEN": f"127.0.0.1:{api.crm_port}",
                    "JUNCTION_INVENTORY_LISTEN": f"127.0.0.1:{api.inv_port}",
                    "ORDERS_API_LISTEN": f"127.0.0.1:{port}",
                    "JUNCTION_ADMIN_LISTEN": f"127.0.0.1:{api.admin_port}",
                    "ORDERS_API_TOKEN": token, "ANALYTICS_TOKEN": secret("unused-" + token)})
    api.config = os.path.join(ROOT, "examples", "orders.lua")
    api.start()
    orders = f"http://127.0.0.1:{port}/orders"
    topic = "order_data_" + uuid.uuid4().hex[:8]
    p = make_junction({"sources": only(orders=orders_source(orders + "?limit=1000", topic)),
                       "kafka": {"brokers": BROKER, "message_timeout_ms": 15000}},
                      env={"JN_E2E_ORDERS_TOKEN": token}, command="produce")
    assert wait_until(lambda: len(read_topic(topic)) >= 50000, 90, step=1), p.logs()[-3000:]
    assert "Published 50000 order(s) to topic " + topic in p.logs()
    n = polls_of(p, "ok")
    assert wait_until(lambda: polls_of(p, "ok") >= n + 2, 30), p.logs()[-3000:]
    assert len(read_topic(topic)) == 50000
    auth = {"Authorization": "Bearer " + token}
    was = request(orders + "/4321", headers=auth).json()["status"]
    status = "paid" if was != "paid" else "shipped"
    r = request(orders + "/4321", "PATCH", json.dumps({"status": status}), headers=auth)
    assert r.status == 200, r.body
    assert wait_until(lambda: len(read_topic(topic)) >= 50001, 30, step=1), p.logs()[-3000:]
    n = polls_of(p, "ok")
    assert wait_until(lambda: polls_of(p, "ok") >= n + 2, 30)
    recs = read_topic(topic)
    assert len(recs) == 50001 and ("4321", r.json()) in recs
    assert [k for k, _ in recs].count("4321") == 2
    assert p.metric("junction_producer_failures_total", source="orders") is None


def polls_of(j, result):
    return j.metric("junction_producer_polls_total", source="orders", result=result) or 0


@pytest.mark.parametrize("style,path,hooks", [
    ("cursor", "/customers?limit=100", "paging.cursor()"),
    ("link", "/customers?page=1&per_page=100", "paging.link()"),
    ("offset", "/customers?offset=0&limit=100", "paging.offset { limit = 100 }"),
])
def test_every_paging_style_of_the_mock_api(make_junction, tmp_path, style, path, hooks):
    """The mock API's three paging styles behind a bearer token, each read by its stock
    helper: 1000 customers over 10 pages once, then one message for one change; a wrong
    token publishes nothing."""
    token = secret("tok-" + uuid.uuid4().hex)
    api = make_junction(start=False)
    (port,) = free_ports(1, (api.crm_port, api.inv_port, api.admin_port, api.analytics_port))
    api = make_junction({"apis": only({"people": {
        "listen": f"127.0.0.1:{port}", "script": os.path.join(api.scripts, "crm.lua"),
        "resource": "customers", "count": 1000, "token": token,
        "paging": {"style": style, "page_size": 100}}})})
    base = f"http://127.0.0.1:{port}"
    script = tmp_path / f"map_{style}.lua"
    script.write_text(MAP_WITH % hooks)
    topic = f"people_{style}_" + uuid.uuid4().hex[:8]
    src = orders_source(base + path, topic, script=str(script), noun="customer(s)")
    p = make_junction({"sources": only(orders=src),
                       "kafka": {"brokers": BROKER, "message_timeout_ms": 15000}},
                      env={"JN_E2E_ORDERS_TOKEN": token}, command="produce")
    assert wait_until(lambda: len(read_topic(topic)) >= 1000, 60), p.logs()[-3000:]
    assert "Published 1000 customer(s) to topic " + topic in p.logs()
    n = polls_of(p, "ok")
    assert wait_until(lambda: polls_of(p, "ok") >= n + 2, 30), p.logs()[-3000:]
    auth = {"Authorization": "Bearer " + token}
    recs = read_topic(topic)
    assert len(recs) == 1000 and {k for k, _ in recs} == {str(i) for i in range(1, 1001)}
    for i in (1, 100, 101, 777, 1000):
        assert (str(i), request(f"{base}/customers/{i}", headers=auth).json()) in recs
    r = request(base + "/customers/512", "PATCH", '{"name":"Paged"}', headers=auth)
    assert r.status == 200, r.body
    assert wait_until(lambda: len(read_topic(topic)) >= 1001, 30), p.logs()[-3000:]
    n = polls_of(p, "ok")
    assert wait_until(lambda: polls_of(p, "ok") >= n + 2, 30)
    recs = read_topic(topic)
    assert len(recs) == 1001 and ("512", r.json()) in recs
    assert p.metric("junction_producer_failures_total", source="orders") is None
    if style != "cursor":
        return
    # The same API with a wrong token: unauthorized once per cycle, nothing published.
    wrong = "orders_wrong_" + uuid.uuid4().hex[:8]
    w = make_junction({"sources": only(
        orders=orders_source(base + path, wrong, script=str(script))),
                       "kafka": {"brokers": BROKER}},
                      env={"JN_E2E_ORDERS_TOKEN": secret("not-" + token)}, command="produce")
    assert wait_until(lambda: polls_of(w, "failed") >= 3, 15), w.logs()[-3000:]
    assert w.metric("junction_producer_failures_total", source="orders",
                    reason="unauthorized") >= 3
    assert w.metric("junction_producer_retries_total", source="orders") == 0
    assert read_topic(wrong) == []


def test_readyz_says_whether_the_producer_reaches_kafka(make_junction):
    """/readyz of `junction produce`: 200 once a broker answers, 503 with the reason while
    none does (it used to answer 200 whatever Kafka did)."""
    dead = make_junction({"kafka": {"brokers": f"127.0.0.1:{free_port()}"}}, command="produce")
    # Not ready from the start; still not once librdkafka tried the broker and said so.
    assert wait_until(lambda: "ALL_BROKERS_DOWN" in dead.logs(), 15), dead.logs()
    r = request(dead.admin + "/readyz")
    assert r.status == 503 and b"no Kafka broker reachable" in r.body, r.body
    live = make_junction({"kafka": {"brokers": BROKER}}, command="produce")
    assert wait_until(lambda: request(live.admin + "/readyz").status == 200, 15), \
        request(live.admin + "/readyz").body
