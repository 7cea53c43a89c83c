"""End-to-end tests of `junction consume` with the real Kafka and Redis from
tools/services, fed by `junction api` + `junction produce`, delivering to
`junction analytics`. Each test uses its own topics and consumer group, and starts from
an empty Redis."""
import json
import os
import random
import signal
import subprocess
import time
import uuid

import pytest

from junction_test import BROKER, ROOT, committed_total, consumer_settled, deep_merge
from junction_test import group_committed, read_topic, redis_cli, request, services, wait_until


@pytest.fixture(scope="module", autouse=True)
def services_up():
    services("up")
    yield
    services("up")


def stats(analytics):
    return request(analytics.analytics + "/analytics/stats").json()


def read_topic_with_headers(topic):
    return read_topic(topic, fmt="%h\t%s\n")


def published(producer, source):
    return producer.status()["producer"][source]["published"]


def settled(p, consumers, customers):
    """Whether the group of consumers settled everything p's producer published: the
    customers (the stream) committed (None: settled before, see consumer_settled), every
    product (the table) read by each member."""
    return consumer_settled(consumers, customers,
                            {"products": published(p.producer, "inventory")},
                            group=(p.topics["group"], p.topics["customers"]))


@pytest.fixture
def pipeline(make_junction):
    """api + produce + analytics, and a factory for consumers, on fresh topics."""
    redis_cli("FLUSHALL")
    tag = uuid.uuid4().hex[:8]
    topics = {"customers": f"customer_data_{tag}", "products": f"inventory_data_{tag}",
              "dead": f"dead_letter_{tag}", "group": f"group_{tag}"}

    class P:
        pass

    p = P()
    p.topics = topics

    def start_api(count=1000, products=10, **extra):
        p.api = make_junction(deep_merge({"apis": {"crm": {"count": count},
                                                   "inventory": {"count": products}}}, extra))
        return p.api

    def start_producer(**extra):
        cfg = {"producer": {"poll_interval_ms": 200},
               "sources": {"crm": {"url": p.api.crm + "/customers",
                                   "topic": topics["customers"]},
                           "inventory": {"url": p.api.inventory + "/products",
                                         "topic": topics["products"]}},
               "kafka": {"brokers": BROKER}}
        p.producer = make_junction(deep_merge(cfg, extra), command="produce")
        return p.producer

    def start_analytics():
        p.analytics = make_junction(command="analytics")
        return p.analytics

    def consumer(extra=None, start=True):
        cfg = {"consumer": {"dead_letter_topic": topics["dead"],
                            "hold_ms": 1000, "retry_base_ms": 50, "retry_max_ms": 1000},
               "pipelines": {"default": {
                   "group_id": topics["group"],
                   "streams": {"customers": {"topic": topics["customers"]}},
                   "tables": {"products": {"topic": topics["products"]}},
                   "sinks": {"analytics": {"url": p.analytics.analytics + "/analytics"}}}},
               "kafka": {"brokers": BROKER}}
        return make_junction(deep_merge(cfg, extra or {}), command="consume", start=start)

    p.start_api, p.start_producer, p.start_analytics, p.consumer = \
        start_api, start_producer, start_analytics, consumer
    return p


def quiet(p, c, customers, products=10):
    """Whether consumer c, alone in its group, read every one of the products and
    delivered what they re-emitted: on a loaded machine products can come after the 1 s
    hold, and customers then go out twice, as the join's policy says."""
    return (published(p.producer, "inventory") >= products
            and consumer_settled([c], customers, {"products": products}))


def test_1000_customers_and_10_products_give_1000_merged_records(pipeline):
    p = pipeline
    p.start_api()
    p.start_analytics()
    # Exactly one record per customer needs every product known before its customers'
    # hold runs out (a later product re-emits them, as the policy says). On a cold broker
    # (the first test of a CI run, under the sanitizer) the catalogue reader has taken
    # over a second to get the products: hold for the default 5 s.
    c = p.consumer({"consumer": {"hold_ms": 5000}})
    p.start_producer()
    ok = wait_until(lambda: stats(p.analytics)["distinct_ids"] >= 1000, 60)
    assert ok, (stats(p.analytics), request(c.admin + "/api/status").json(), c.logs()[-3000:])
    # Anything extra (a customer merged twice) is delivered by the time the consumer has
    # settled every message and record.
    assert wait_until(lambda: settled(p, [c], 1000), 30), c.status()["consumer"]
    st = stats(p.analytics)
    assert st["records"] == 1000 and st["distinct_ids"] == 1000 and st["repeated_ids"] == 0
    products = {x["id"]: x for x in request(p.api.inventory + "/products").json()}
    recs = request(p.analytics.analytics + "/analytics/records?limit=2000").json()
    for r in recs:
        want = [pid for pid in r["productIds"] if pid in products]
        assert [x["id"] for x in r["products"]] == want
        for x in r["products"]:
            assert x == {k: products[x["id"]][k] for k in ("id", "name", "stock")}
        missing = [pid for pid in r["productIds"] if pid not in products]
        assert r.get("missing_product_ids", []) == missing
        assert r["merged_at"].endswith("Z")
    assert sum(1 for r in recs if r.get("missing_product_ids")) == 1000 // 6
    assert c.metric("junction_consumer_delivered_total") == 1000


@pytest.mark.parametrize("layout", ["keys", "buckets"])
def test_duplicates_are_skipped_through_redis(pipeline, layout):
    p = pipeline
    p.start_api(count=200)
    p.start_analytics()
    # As in the test above: on a loaded machine the catalogue reader can take over a
    # second to get the first products (their topic is created after it started), and a
    # customer released before they came is sent again with them (the join's policy), a
    # repeat that is not the one this test is about.
    c = p.consumer({"consumer": {"dedupe_layout": layout, "hold_ms": 5000}})
    # publish_all republishes every record every cycle, as the original did.
    p.start_producer(producer={"publish_all": True})
    assert wait_until(lambda: stats(p.analytics)["distinct_ids"] >= 200, 60), c.logs()[-3000:]
    assert wait_until(lambda: (c.metric("junction_consumer_duplicates_total") or 0) >= 400, 60), \
        c.logs()[-3000:]
    st = stats(p.analytics)
    assert st["distinct_ids"] == 200 and st["repeated_ids"] == 0
    if layout == "keys":  # a key per mark, as the original system kept them
        assert int(redis_cli("DBSIZE")) >= 200
        ttl = int(redis_cli("TTL", redis_cli("--scan", "--pattern", "processed:*").split()[0]))
        assert 0 < ttl <= 86400
    else:  # a set per half day, 16-byte members, expiring a day after the bucket ends
        buckets = redis_cli("--scan", "--pattern", "processed:b:*").split()
        assert 1 <= len(buckets) <= 2 and redis_cli("--scan", "--pattern", "processed:[0-9a-f][0-9a-f]*") == ""
        assert sum(int(redis_cli("SCARD", b)) for b in buckets) == 200
        assert 86400 <= int(redis_cli("TTL", buckets[0])) <= 86400 * 3 // 2


def test_product_change_re_emits_its_customers(pipeline):
    p = pipeline
    p.start_api(count=60)
    p.start_analytics()
    c = p.consumer()
    p.start_producer()
    assert wait_until(lambda: stats(p.analytics)["distinct_ids"] == 60, 60), c.logs()[-3000:]
    assert wait_until(lambda: quiet(p, c, 60), 30), c.status()["consumer"]
    before = stats(p.analytics)["records"]
    request(p.api.inventory + "/products/3", "PATCH", '{"stock": 999}')
    referencing = [x["id"] for x in request(p.api.crm + "/customers").json()
                   if "3" in x["productIds"]]
    ok = wait_until(lambda: stats(p.analytics)["records"] >= before + len(referencing), 30)
    assert ok, c.logs()[-3000:]
    recs = request(p.analytics.analytics + "/analytics/records?limit=1000").json()
    new = recs[before:]
    assert sorted(r["id"] for r in new) == sorted(referencing)
    assert all(x["stock"] == 999 for r in new for x in r["products"] if x["id"] == "3")


def test_a_consumer_stalled_past_its_session_does_not_read_its_tables_again(pipeline):
    """A consumer stopped for longer than Kafka's session timeout loses its partitions,
    the table reader's with the rest. Given them back, the table reader goes on from where
    it was: read from the beginning, every old version of a product would be a change
    again, re-emitting its customers once per version (found by the soak)."""
    p = pipeline
    p.start_api(count=60)
    p.start_analytics()
    c = p.consumer({"kafka": {"properties": {"session.timeout.ms": "6000",
                                             "heartbeat.interval.ms": "500"}}})
    p.start_producer()
    assert wait_until(lambda: stats(p.analytics)["distinct_ids"] == 60, 60), c.logs()[-3000:]
    assert wait_until(lambda: quiet(p, c, 60), 30), c.status()["consumer"]
    referencing = [x["id"] for x in request(p.api.crm + "/customers").json()
                   if "3" in x["productIds"]]
    assert referencing
    for stock in (901, 902, 903):
        before = stats(p.analytics)["records"]
        request(p.api.inventory + "/products/3", "PATCH", json.dumps({"stock": stock}))
        ok = wait_until(lambda: stats(p.analytics)["records"] >= before + len(referencing), 30)
        assert ok, c.logs()[-3000:]
    time.sleep(1)
    before = stats(p.analytics)["records"]
    table = f"assigned {p.topics['products']}["
    assignments = c.logs().count(table)
    c.proc.send_signal(signal.SIGSTOP)
    time.sleep(10)
    c.proc.send_signal(signal.SIGCONT)
    # The stall did take the table's partitions away: they were assigned again.
    assert wait_until(lambda: c.logs().count(table) > assignments, 60), c.logs()[-3000:]
    # A re-read of the table would re-emit about 4 x len(referencing) records by now.
    time.sleep(5)
    assert stats(p.analytics)["records"] == before, c.logs()[-3000:]
    assert "table partitions given back; 6 of 6 go on from where they were" in c.logs()


def test_a_drained_prefetch_wakes_the_fetchers(pipeline):
    """librdkafka 2.0 stops fetching once the consumer's queue holds queued.min.messages
    and looks again only when its broker thread wakes up, up to a second later: a consumer
    that empties its prefetch faster than that idled (the benchmark's steady state fell
    from about 140,000 records/s to 90,000 in one run of two). The consumer wakes the
    fetchers when the prefetch runs low while partitions have messages left, and not
    when everything is read."""
    p = pipeline
    p.start_api(count=5000)
    p.start_analytics()
    # Batches of 20 customers, as a fetch returns at least one whole batch a partition.
    p.start_producer(kafka={"properties": {"batch.num.messages": "20"}})
    # Every product published before the consumer starts: it reads the table to its end
    # first, so no customer goes out without its products and again with them.
    assert wait_until(lambda: published(p.producer, "crm") >= 5000
                      and published(p.producer, "inventory") >= 10, 60)
    # Fetches of about 40 customers a partition, a prefetch of 50 messages: every fetch
    # fills it, and it runs low long before the last customer is fetched.
    c = p.consumer({"kafka": {"properties": {"queued.min.messages": "50",
                                             "max.partition.fetch.bytes": "4096"}}})
    ok = wait_until(lambda: stats(p.analytics)["distinct_ids"] >= 5000, 60)
    assert ok, c.logs()[-3000:]
    assert wait_until(lambda: settled(p, [c], 5000), 30), c.status()["consumer"]
    time.sleep(0.5)  # the counter is read on the pipeline's 50 ms timer
    nudges = c.metric("junction_consumer_fetch_nudges_total")
    assert nudges > 0, c.logs()[-3000:]
    # Read to the end: no partition lags, nothing is sent.
    time.sleep(2)
    assert c.metric("junction_consumer_fetch_nudges_total") == nudges
    st = stats(p.analytics)
    assert st["distinct_ids"] == 5000 and st["repeated_ids"] == 0, (st, c.logs()[-3000:])


def test_records_of_table_changes_count_against_max_pending(pipeline):
    """A table change can emit a record for every customer joined with it. While
    consumer.max_pending such records are in flight, the table reader waits: in the soak
    a re-read table made records faster than the sink took them, and the consumer grew
    to 704 MiB. Nothing is lost: once the sink takes them, the reader goes on."""
    p = pipeline
    p.start_api(count=2000)
    p.start_analytics()
    c = p.consumer({"consumer": {"max_pending": 100}})
    p.start_producer()
    assert wait_until(lambda: stats(p.analytics)["distinct_ids"] == 2000, 60), c.logs()[-3000:]
    assert wait_until(lambda: quiet(p, c, 2000), 30), c.status()["consumer"]
    customers = request(p.api.crm + "/customers?limit=2000").json()
    refs = {pid: sum(pid in x["productIds"] for x in customers) for pid in ("1", "2", "3")}
    assert all(n > 100 for n in refs.values()), refs

    def tables_read():
        return c.metric("junction_consumer_messages_total", topic="products")

    time.sleep(1)
    read, records = tables_read(), stats(p.analytics)["records"]
    request(p.analytics.analytics + "/analytics/faults", "PUT",
            '{"error_rate": 1, "error_status": 503}')
    for pid in refs:
        request(p.api.inventory + f"/products/{pid}", "PATCH", '{"stock": 777}')
    # The first change's records fill the sink; the reader waits with the other two
    # (read by now without the bound).
    assert wait_until(lambda: tables_read() >= read + 1, 30), c.logs()[-3000:]
    time.sleep(3)
    assert tables_read() == read + 1, c.logs()[-3000:]
    request(p.analytics.analytics + "/analytics/faults", "PUT", "{}")
    want = records + sum(refs.values())
    assert wait_until(lambda: tables_read() == read + 3, 60), c.logs()[-3000:]
    assert wait_until(lambda: stats(p.analytics)["records"] >= want, 60), c.logs()[-3000:]


def test_kill_9_five_times_loses_nothing(pipeline):
    p = pipeline
    n = 100000
    p.start_api(count=n)
    p.start_analytics()
    cfg = {"consumer": {"hold_ms": 500}}
    c = p.consumer(cfg)
    p.start_producer()
    rng = random.Random(7)
    kills = 0
    deadline = time.time() + 600
    while kills < 5 and time.time() < deadline:
        time.sleep(rng.uniform(0.5, 3.0))
        c.proc.send_signal(signal.SIGKILL)
        c.proc.wait()
        kills += 1
        c = p.consumer(cfg)
    ok = wait_until(lambda: stats(p.analytics)["distinct_ids"] >= n, 600, step=1)
    st = stats(p.analytics)
    assert ok, (st, c.logs()[-3000:])
    assert st["distinct_ids"] == n
    # A repeat is possible only for records delivered but not yet marked when a kill
    # landed: at most the batches in flight (4 x 500) per kill.
    assert st["repeated_ids"] <= kills * 4 * 500, st
    print("kill -9 x%d: %d records, %d repeated ids, %d duplicate batch keys" %
          (kills, st["records"], st["repeated_ids"], st["duplicate_batches"]))


def test_redis_restart_and_analytics_5xx_bursts_lose_nothing(pipeline):
    p = pipeline
    n = 20000
    p.start_api(count=n)
    p.start_analytics()
    c = p.consumer()
    p.start_producer()
    assert wait_until(lambda: stats(p.analytics)["records"] > 1000, 60), c.logs()[-2000:]
    # Each fault lasts until the consumer has met it, not for a time: 503s on 70% of the
    # POSTs and Redis restarted under them, until some batches failed and more records got
    # through after the restart; then the next 20 POSTs answered 500, until all 20 were.
    request(p.analytics.analytics + "/analytics/faults", "PUT",
            '{"error_rate": 0.7, "error_status": 503}')
    services("restart-redis")
    before = stats(p.analytics)
    assert wait_until(lambda: stats(p.analytics)["failed_batches"] >= before["failed_batches"] + 5
                      and stats(p.analytics)["records"] > before["records"], 60), \
        (stats(p.analytics), c.logs()[-3000:])
    assert stats(p.analytics)["distinct_ids"] < n, "delivered before the second fault"
    failed = stats(p.analytics)["failed_batches"]
    request(p.analytics.analytics + "/analytics/faults", "PUT", '{"fail_next": 20, "error_status": 500}')
    assert wait_until(lambda: stats(p.analytics)["faults"]["fail_next"] == 0, 60), \
        (stats(p.analytics), c.logs()[-3000:])
    request(p.analytics.analytics + "/analytics/faults", "PUT", "{}")
    ok = wait_until(lambda: stats(p.analytics)["distinct_ids"] >= n, 180, step=1)
    st = stats(p.analytics)
    assert ok and st["distinct_ids"] == n, (st, c.logs()[-3000:])
    assert st["failed_batches"] >= failed + 20
    assert c.proc.poll() is None
    assert c.status()["consumer"]["redis"] is True
    # Every POST that failed was sent again.
    assert c.metric("junction_sink_batches_total", result="retry") >= st["failed_batches"]


def test_three_consumers_in_one_group_deliver_each_record_once(pipeline):
    p = pipeline
    n = 10000
    p.start_api(count=n)
    p.start_analytics()
    # No repeats allowed: hold long enough for a slow catalogue start (see the first test).
    consumers = [p.consumer({"consumer": {"hold_ms": 5000}}) for _ in range(3)]
    p.start_producer()
    ok = wait_until(lambda: stats(p.analytics)["distinct_ids"] >= n, 180, step=1)
    st = stats(p.analytics)
    assert ok, st
    assert wait_until(lambda: settled(p, consumers, n), 60, step=0.5), \
        [c.status()["consumer"] for c in consumers]
    st = stats(p.analytics)
    assert st["distinct_ids"] == n and st["repeated_ids"] == 0, st
    delivered = [c.metric("junction_consumer_delivered_total") or 0 for c in consumers]
    assert sum(delivered) == n, delivered

    def assigned(c):
        return len(request(c.admin + "/api/status").json()["consumer"]["partitions"])
    # The group shares the six partitions (tools/services' default), two each.
    assert wait_until(lambda: [assigned(c) for c in consumers] == [2, 2, 2], 30), \
        [assigned(c) for c in consumers]


@pytest.mark.parametrize("members", [2, 3])
def test_members_started_together_read_the_catalogue_first(pipeline, members):
    """Tables first: with the topics already full, a large product table whose newest
    versions of the referenced products sit at its end, and no hold at all, members
    started together must merge no customer before the table is read to its end. Merging
    earlier sends customers with old (or no) products and again when the reader gets to
    the newer versions: repeats under new Idempotency-Keys."""
    p = pipeline
    # JN_TOGETHER_CUSTOMERS=100000 for the figure; 20,000 show the race as well.
    n, products = int(os.environ.get("JN_TOGETHER_CUSTOMERS", "20000")), 300000
    # Generating 300,000 products takes longer than the default 1 s per call in the
    # sanitizer build.
    p.start_api(count=n, products=products, scripts={"time_limit_ms": 60000})
    producer = p.start_producer()

    def published():
        # The producer's admin may take seconds to answer while it maps a 300,000-record
        # response (under the sanitizer): that is "not yet", not a failure.
        try:
            return producer.metric("junction_producer_records_total", result="published") or 0
        except OSError:
            return 0
    assert wait_until(lambda: published() >= n + products, 180), published()
    stock = {}
    for pid in ("1", "2", "3", "4", "5"):
        r = request(p.api.inventory + f"/products/{pid}", "PATCH",
                    json.dumps({"stock": 1000 + int(pid)}), {"Content-Type": "application/json"})
        assert r.status == 200, r.body
        stock[pid] = 1000 + int(pid)
    assert wait_until(lambda: published() >= n + products + 5, 60), published()
    p.start_analytics()
    consumers = [p.consumer({"consumer": {"hold_ms": 0}}, start=False) for _ in range(members)]
    for c in consumers:
        c.start()
    ok = wait_until(lambda: stats(p.analytics)["distinct_ids"] >= n, 240, step=1)
    assert ok, stats(p.analytics)
    assert wait_until(lambda: settled(p, consumers, n), 60, step=0.5), \
        [c.status()["consumer"] for c in consumers]
    st = stats(p.analytics)
    assert st["records"] == n and st["distinct_ids"] == n and st["repeated_ids"] == 0, st
    recs = request(p.analytics.analytics + f"/analytics/records?limit={n + 1000}").json()
    wrong = [r["id"] for r in recs if set(r.get("missing_product_ids", [])) - {"0"}]
    assert not wrong, f"{len(wrong)} records miss products that exist, e.g. {wrong[:5]}"
    old = [r["id"] for r in recs for x in r["products"] if x["id"] in stock
           and x["stock"] != stock[x["id"]]]
    assert not old, f"{len(old)} records carry an old version of a product, e.g. {old[:5]}"
    for c in consumers:
        assert request(c.admin + "/readyz").status == 200
        assert "tables loaded" in c.logs()


def test_not_ready_until_the_catalogue_is_read(pipeline):
    p = pipeline
    p.start_analytics()
    # No product topic exists yet: the catalogue reader has nothing to read to its end.
    c = p.consumer({"pipelines": {"default": {"tables": {"products": {
        "topic": "no_such_topic_" + uuid.uuid4().hex[:8]}}}}})
    r = request(c.admin + "/readyz")
    assert r.status == 503 and "loading tables" in r.json()["reason"], r.body
    assert request(c.admin + "/healthz").status == 200
    st = request(c.admin + "/api/status").json()["consumer"]
    assert st["tables_loaded"] is False


TRANSFORMS = {
    # Half the customers filtered out: their messages produce no record at all.
    "filters half": """
local M = {}
function M.customer(c) if c.id % 2 == 0 then return { c } end return {} end
function M.product() return {} end
M.on = { customers = M.customer, products = M.product }
return M
""",
    # Every record under another id: no record answers its message's customer id.
    "changes the id": """
local M = {}
function M.customer(c) c.id = "c-" .. c.id return { c } end
function M.product() return {} end
M.on = { customers = M.customer, products = M.product }
return M
""",
    # Two records per customer, one under another id.
    "gives two records": """
local M = {}
function M.customer(c) return { c, { id = "copy-" .. c.id } } end
function M.product() return {} end
M.on = { customers = M.customer, products = M.product }
return M
""",
    # Holds every customer and never releases it: the host's deadline ends the wait.
    "holds for ever": """
local M = {}
function M.customer(c, ctx) ctx.hold(200) return {} end
function M.product() return {} end
M.on = { customers = M.customer, products = M.product }
return M
""",
}


def test_a_transform_built_on_the_stock_merge(pipeline):
    """examples/transforms/merge_total_stock.lua is a few lines around
    require "stock.merge": under the real host it joins as the stock merge does and adds
    total_stock."""
    p = pipeline
    n = 300
    p.start_api(count=n)
    p.start_analytics()
    c = p.consumer({"consumer": {"hold_ms": 5000}, "pipelines": {"default": {
        "transform": os.path.join(ROOT, "examples", "transforms", "merge_total_stock.lua")}}})
    p.start_producer()
    assert wait_until(lambda: stats(p.analytics)["distinct_ids"] >= n, 60), c.logs()[-2000:]
    recs = request(p.analytics.analytics + "/analytics/records?limit=1000").json()
    assert len({r["id"] for r in recs}) == n
    for r in recs:
        assert r["total_stock"] == sum(x["stock"] for x in r["products"]), r
        assert "merged_at" in r


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_the_host_settles_whatever_the_transform_returns(pipeline, name):
    """Settlement never depends on the ids a script chooses: a transform that filters,
    renames, multiplies or holds for ever still lets every message settle, so commits
    reach the end of every partition and nothing stalls."""
    p = pipeline
    n = 600
    p.start_api(count=n)
    p.start_analytics()
    c = p.consumer(start=False)
    path = os.path.join(c.scripts, "transform.lua")
    with open(path, "w") as f:
        f.write(TRANSFORMS[name])
    c = p.consumer({"consumer": {"max_pending": 100},
                    "pipelines": {"default": {"transform": path}}})
    p.start_producer()
    ok = wait_until(lambda: committed_total(c) == n, 90)
    assert ok, (committed_total(c), request(c.admin + "/api/status").json()["consumer"])
    st = stats(p.analytics)
    want = {"filters half": n // 2, "changes the id": n, "gives two records": 2 * n,
            "holds for ever": 0}[name]
    assert st["records"] == want and st["distinct_ids"] == want, st
    assert (c.metric("junction_consumer_pending_messages") or 0) == 0
    if name == "holds for ever":
        # Nothing came out for them: every message went to the dead-letter topic.
        assert c.metric("junction_consumer_hold_expired_total") == n
        dead = read_topic_with_headers(p.topics["dead"])
        assert len(dead) == n and all("past its deadline" in h for h, _ in dead)


def test_refused_records_and_script_errors_go_to_the_dead_letter_topic(pipeline):
    p = pipeline
    p.start_api(count=30)
    p.start_analytics()
    c = p.consumer({"pipelines": {"default": {"transform": "merge.lua"}}}, start=False)
    with open(os.path.join(c.scripts, "merge.lua")) as f:
        text = f.read()
    with open(os.path.join(c.scripts, "merge.lua"), "w") as f:
        f.write(text.replace("function M.customer(c, ctx)",
                             "function M.customer(c, ctx)\n"
                             "  if c.id == 13 then error('unlucky customer') end"))
    c.start()
    request(p.analytics.analytics + "/analytics/faults", "PUT", "{}")
    p.start_producer()
    ok = wait_until(lambda: len(read_topic_with_headers(p.topics["dead"])) >= 1, 60)
    assert ok, c.logs()[-3000:]
    dead = read_topic_with_headers(p.topics["dead"])
    hdrs, value = dead[0]
    assert "unlucky customer" in hdrs and json.loads(value)["id"] == 13
    assert wait_until(lambda: stats(p.analytics)["distinct_ids"] == 29, 30)
    assert c.metric("junction_consumer_dead_lettered_total") == 1


def ready(c):
    try:
        return request(c.admin + "/readyz").status == 200
    except OSError:
        return False


def assigned_total(consumers):
    total = 0
    for c in consumers:
        try:
            total += len(request(c.admin + "/api/status").json()["consumer"]["partitions"])
        except (OSError, KeyError, ValueError):
            return -1
    return total


@pytest.mark.parametrize("event", ["kill -9 and restart", "a third member joins",
                                   "a member leaves", "kill -9, compacted stream topic"])
def test_the_join_survives_restarts_and_rebalances(pipeline, event):
    """The customers a transform keeps are restored when a partition is assigned: from
    the stream's changelog, or from the stream topic itself when it is compacted (as
    tools/services creates customer_data). After a kill -9 and restart, a member joining
    or a member leaving, a product change still re-emits every customer that references
    it, once."""
    p = pipeline
    n = 1000
    compacted = "compacted" in event
    if compacted:
        services("create-topic", p.topics["customers"], "cleanup.policy=compact")
    p.start_api(count=n)
    p.start_analytics()
    cfg = {"consumer": {"hold_ms": 5000}}
    members = {"a third member joins": 2, "a member leaves": 2}.get(event, 1)
    consumers = [p.consumer(cfg) for _ in range(members)]
    p.start_producer()
    assert wait_until(lambda: stats(p.analytics)["distinct_ids"] >= n, 90), \
        (stats(p.analytics), consumers[0].logs()[-3000:])
    # Asked of the brokers: a member may settle partitions another then holds.
    def group_total():
        return sum(max(o, 0) for o in
                   group_committed(p.topics["group"], p.topics["customers"]).values())
    assert wait_until(lambda: group_total() == n, 60, step=1), group_total()
    changelog = p.topics["group"] + "-customers-changelog"
    if compacted:
        assert "is compacted: join state is restored from it" in consumers[0].logs()
    else:
        assert f"join state goes to {changelog}" in consumers[0].logs()
    if event.startswith("kill -9"):
        consumers[0].proc.send_signal(signal.SIGKILL)
        consumers[0].proc.wait()
        consumers = [p.consumer(cfg)]
    elif event == "a third member joins":
        consumers.append(p.consumer(cfg))
    else:
        consumers.pop().stop()
    # Six partitions (tools/services' default) shared by the members left, each ready
    # (tables loaded, join state restored).
    ok = wait_until(lambda: assigned_total(consumers) == 6 and all(ready(c) for c in consumers)
                    and (event != "a third member joins" or
                         all(len(request(c.admin + "/api/status").json()["consumer"]
                                 ["partitions"]) == 2 for c in consumers)), 90)
    assert ok, [c.logs()[-2000:] for c in consumers]
    before = stats(p.analytics)["records"]
    r = request(p.api.inventory + "/products/1", "PATCH", json.dumps({"stock": 4242}),
                {"Content-Type": "application/json"})
    assert r.status == 200, r.body
    referencing = sorted(x["id"] for x in request(p.api.crm + "/customers").json()
                         if "1" in x["productIds"])
    assert referencing
    ok = wait_until(lambda: stats(p.analytics)["records"] >= before + len(referencing), 60)
    assert ok, (stats(p.analytics)["records"] - before, len(referencing),
                [c.logs()[-2000:] for c in consumers])
    # A re-emission twice over is delivered by the time the group has settled the change
    # (the stream was settled before the event, and nothing was published to it since).
    assert wait_until(lambda: settled(p, consumers, None), 60, step=0.5), \
        [c.status()["consumer"] for c in consumers]
    recs = request(p.analytics.analytics + f"/analytics/records?limit={n * 3}").json()
    new = recs[before:]
    assert sorted(r["id"] for r in new) == referencing
    assert all(x["stock"] == 4242 for r in new for x in r["products"] if x["id"] == "1")
    topics = subprocess.run(["kcat", "-b", BROKER, "-L"], capture_output=True, text=True,
                            timeout=30).stdout
    assert (f'topic "{changelog}"' in topics) is not compacted
    print(f"{event}: a change of product 1 re-emitted {len(new)} of {len(referencing)} "
          f"customers; restored " +
          str([c.metric("junction_consumer_restored_total") for c in consumers]))
