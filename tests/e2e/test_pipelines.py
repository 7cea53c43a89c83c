"""End-to-end tests of pipelines defined in the config: the orders example
(examples/orders.lua) reading a stream and two tables and delivering to an HTTP sink
with a bearer token and to a Kafka topic, against the real Kafka and Redis."""
import json
import os
import random
import subprocess
import uuid

from junction_test import BINARY, BROKER, REDIS_HOST, REDIS_PORT, ROOT, consumer_settled
from junction_test import free_port, read_topic, redis_cli, request, wait_until
from test_consumer import stats
from test_consumer import services_up  # noqa: F401  (module fixture: Kafka and Redis up)


def produce(topic, records):
    lines = "".join(f"{r['id']}\t{json.dumps(r)}\n" for r in records)
    subprocess.run(["kcat", "-b", BROKER, "-P", "-t", topic, "-K", "\t"], input=lines,
                   text=True, check=True, timeout=60)


def dead_letters(topic):
    """(headers, value) of every message of a dead-letter topic."""
    return read_topic(topic, fmt="%h\t%s\n")


def auth_failures(cli, user):
    """Logins as user that Redis refused, from its ACL LOG."""
    out = subprocess.run(cli + ["--json", "ACL", "LOG"], capture_output=True, text=True,
                         timeout=10).stdout
    return sum(e["count"] for e in json.loads(out or "[]")
               if e.get("reason") == "auth" and e.get("username") == user)


def test_the_orders_example_delivers_every_order_enriched_to_both_sinks(make_junction):
    redis_cli("FLUSHALL")
    tag = uuid.uuid4().hex[:8]
    topics = {"customers": f"customer_data_{tag}", "products": f"inventory_data_{tag}",
              "orders": f"orders_{tag}", "enriched": f"orders_enriched_{tag}",
              "dead": f"dead_letter_{tag}"}
    api = make_junction({"apis": {"crm": {"count": 200}, "inventory": {"count": 10}}})
    producer = make_junction({"producer": {"poll_interval_ms": 200},
                              "sources": {"crm": {"url": api.crm + "/customers",
                                                  "topic": topics["customers"]},
                                          "inventory": {"url": api.inventory + "/products",
                                                        "topic": topics["products"]}},
                              "kafka": {"brokers": BROKER}}, command="produce")
    analytics = make_junction({"analytics": {"token": "s3cret-" + tag}}, command="analytics")
    customers = {c["id"]: c for c in request(api.crm + "/customers").json()}
    products = {x["id"]: x for x in request(api.inventory + "/products").json()}
    rng = random.Random(3)
    orders = [{"id": f"o-{i}", "customerId": rng.choice(list(customers)),
               "items": [{"productId": rng.choice(list(products)), "quantity": rng.randint(1, 5)}
                         for _ in range(rng.randint(1, 3))]} for i in range(500)]
    produce(topics["orders"], orders)
    # Tables are read to their end as of the start: have them published first.
    assert wait_until(lambda: (producer.metric("junction_producer_records_total",
                                               result="published") or 0) >= 210, 60)

    # The example itself, with its topics and addresses from the environment.
    c = make_junction(command="consume", start=False, env={
        "ANALYTICS_TOKEN": "s3cret-" + tag, "ORDERS_API_TOKEN": "unused-" + tag,
        "ANALYTICS_URL": analytics.analytics + "/analytics",
        "KAFKA_BOOTSTRAP_SERVERS": BROKER, "REDIS_HOST": REDIS_HOST, "REDIS_PORT": REDIS_PORT,
        "ORDERS_GROUP_ID": "orders-" + tag, "ORDERS_TOPIC": topics["orders"],
        "ORDERS_ENRICHED_TOPIC": topics["enriched"], "ORDERS_DEAD_LETTER_TOPIC": topics["dead"],
        "CUSTOMERS_TOPIC": topics["customers"], "PRODUCTS_TOPIC": topics["products"]})
    c.env["JUNCTION_ADMIN_LISTEN"] = f"127.0.0.1:{c.admin_port}"
    c.config = os.path.join(ROOT, "examples", "orders.lua")
    c.start()
    ok = wait_until(lambda: stats(analytics)["distinct_ids"] >= len(orders), 90)
    assert ok, (stats(analytics), c.logs()[-3000:])
    assert wait_until(lambda: len(read_topic(topics["enriched"])) >= len(orders), 30)
    # Every order settled, so every copy it makes is delivered: nothing else may come.
    assert wait_until(lambda: consumer_settled([c], len(orders), sinks=2), 30), \
        c.status()["consumer"]
    st = stats(analytics)
    assert st["records"] == len(orders) and st["unauthorized_batches"] == 0, st
    got_http = {r["id"]: r for r in
                request(analytics.analytics + "/analytics/records?limit=2000").json()}
    got_kafka = {}
    for key, value in read_topic(topics["enriched"]):
        r = json.loads(value)
        assert key == r["id"]
        got_kafka[r["id"]] = r
    assert set(got_http) == set(got_kafka) == {o["id"] for o in orders}
    for o in orders:
        for got in (got_http[o["id"]], got_kafka[o["id"]]):
            cust = customers[o["customerId"]]
            assert got["customer"] == {"id": cust["id"], "name": cust["name"],
                                       "email": cust["email"]}, got
            assert [(i["productId"], i["name"], i["stock"]) for i in got["items"]] == \
                [(i["productId"], products[i["productId"]]["name"],
                  products[i["productId"]]["stock"]) for i in o["items"]]
            assert got["total_quantity"] == sum(i["quantity"] for i in o["items"])
            assert "missing_product_ids" not in got and "missing_customer" not in got
    assert c.metric("junction_consumer_delivered_total", pipeline="orders") == 2 * len(orders)


def test_a_wrong_token_is_refused_and_dead_lettered(make_junction):
    """The receiver answers 401 to a POST without the right bearer token; the sink takes
    it as a refusal for good and the orders go to the dead-letter topic, none lost."""
    redis_cli("FLUSHALL")
    tag = uuid.uuid4().hex[:8]
    topics = {"orders": f"orders_{tag}", "dead": f"dead_letter_{tag}"}
    analytics = make_junction({"analytics": {"token": "right-" + tag}}, command="analytics")
    produce(topics["orders"], [{"id": f"o-{i}", "items": []} for i in range(20)])
    c = make_junction({"kafka": {"brokers": BROKER}, "pipelines": [{
        "name": "orders", "group_id": "orders-" + tag,
        "transform": os.path.join(ROOT, "tests", "e2e", "passthrough.lua"),
        "dead_letter_topic": topics["dead"],
        "dedupe": {"prefix": f"processed:{tag}:"},
        "streams": {"orders": topics["orders"]},
        "sinks": {"analytics": {"type": "http", "url": analytics.analytics + "/analytics",
                                "headers": {"Authorization": "Bearer wr0ng-" + tag}}}}]},
        command="consume")
    assert wait_until(lambda: len(dead_letters(topics["dead"])) >= 20, 60), c.logs()[-3000:]
    assert all("401" in h for h, _ in dead_letters(topics["dead"]))
    assert "wr0ng-" + tag not in c.logs()  # a header value is never logged
    assert stats(analytics)["unauthorized_batches"] >= 1 and stats(analytics)["records"] == 0


def orders_pipeline(tag, analytics, topics, redis=None,
                    transform=os.path.join(ROOT, "tests", "e2e", "passthrough.lua")):
    """A config of one pipeline "orders": topics["orders"] through transform to analytics,
    dead letters to topics["dead"], marks under a prefix of the test's own."""
    cfg = {"kafka": {"brokers": BROKER}, "pipelines": [{
        "name": "orders", "group_id": "orders-" + tag, "transform": transform,
        "dead_letter_topic": topics["dead"], "dedupe": {"prefix": f"processed:{tag}:"},
        "streams": {"orders": topics["orders"]},
        "sinks": {"analytics": {"type": "http", "url": analytics.analytics + "/analytics"}}}]}
    if redis:
        cfg["redis"] = redis
    return cfg


GARBAGE = """
-- Every third order gets a string back, every third a record for a sink that does not
-- exist, the rest pass: each bad result dead-letters its order alone.
return { on = { orders = function(o)
  local n = tonumber(o.id:match("%d+"))
  if n % 3 == 0 then return "not a table" end
  if n % 3 == 1 then return { nowhere = { o } } end
  return { o }
end } }
"""


def test_garbage_from_the_transform_dead_letters_that_message_only(make_junction, tmp_path):
    redis_cli("FLUSHALL")
    tag = uuid.uuid4().hex[:8]
    topics = {"orders": f"orders_{tag}", "dead": f"dead_letter_{tag}"}
    analytics = make_junction(command="analytics")
    produce(topics["orders"], [{"id": f"o-{i}"} for i in range(30)])
    script = tmp_path / "garbage.lua"
    script.write_text(GARBAGE)
    c = make_junction(orders_pipeline(tag, analytics, topics, transform=str(script)),
                      command="consume")

    # Every order settled (delivered or dead-lettered): nothing more may arrive anywhere.
    assert wait_until(lambda: consumer_settled([c], 30, sinks=None), 60), \
        (c.status()["consumer"], c.logs()[-3000:])
    got = dead_letters(topics["dead"])
    assert len(got) == 20 and stats(analytics)["records"] == 10
    for headers, value in got:
        n = int(json.loads(value)["id"][2:])
        if n % 3 == 0:
            assert "returned a string" in headers, headers
        else:
            assert "sink nowhere, which pipeline orders does not have" in headers, headers
    assert c.proc.poll() is None


def test_a_hook_for_an_input_that_does_not_exist_stops_start_up(make_junction, tmp_path):
    script = tmp_path / "extra_hook.lua"
    script.write_text("return { on = { orders = function() end, refunds = function() end } }")
    c = make_junction({"kafka": {"brokers": BROKER}, "pipelines": [{
        "name": "shop", "transform": str(script), "streams": {"orders": "orders_x"},
        "sinks": {"out": {"type": "kafka", "topic": "out_x"}}}]},
        command="consume", start=False)
    r = subprocess.run([BINARY, "consume", "--config", c.config], cwd=ROOT,
                       capture_output=True, text=True, timeout=30, env=c.env)
    assert r.returncode != 0
    assert "pipeline shop" in r.stderr and "on.refunds" in r.stderr and "refunds" in r.stderr, \
        r.stderr


KEYED = """
-- Passes every order on; de-duplication keys an order by its id and version, so a
-- re-publication of the same version with other content is a duplicate.
return {
  on = { orders = function(o) return { o } end },
  dedupe_key = { orders = function(o) return o.id .. "@" .. o.version end },
}
"""


def test_the_transform_can_give_the_de_duplication_key(make_junction, tmp_path):
    tag = uuid.uuid4().hex[:8]
    topics = {"orders": f"orders_{tag}", "dead": f"dead_letter_{tag}"}
    analytics = make_junction(command="analytics")
    produce(topics["orders"], [
        {"id": "o-1", "version": 1, "note": "first"},
        {"id": "o-1", "version": 1, "note": "same version, other content"},
        {"id": "o-2", "version": 1, "note": "first"},
        {"id": "o-1", "version": 2, "note": "next version"},
    ])
    script = tmp_path / "keyed.lua"
    script.write_text(KEYED)
    c = make_junction(orders_pipeline(tag, analytics, topics, transform=str(script)),
                      command="consume")
    done = lambda: c.metric("junction_consumer_duplicates_total", pipeline="orders") >= 1  # noqa
    assert wait_until(lambda: stats(analytics)["records"] >= 3 and done(), 60), c.logs()[-3000:]
    assert wait_until(lambda: consumer_settled([c], 4), 30), c.status()["consumer"]
    recs = request(analytics.analytics + "/analytics/records?limit=10").json()
    assert sorted((r["id"], r["version"], r["note"]) for r in recs) == [
        ("o-1", 1, "first"), ("o-1", 2, "next version"), ("o-2", 1, "first")], recs
    assert len(redis_cli("KEYS", f"processed:{tag}:*").splitlines()) == 3
    assert read_topic(topics["dead"]) == []


def test_a_sink_that_is_down_pauses_only_its_pipeline(make_junction):
    """Two pipelines in one process; the receiver of one is down. The other delivers
    everything; the one whose sink is down delivers nothing, dead-letters nothing and
    commits nothing, then delivers everything once its receiver comes up."""
    tag = uuid.uuid4().hex[:8]
    n = 300
    live = make_junction(command="analytics")
    down_port = free_port()
    topics = {p: f"{p}_{tag}" for p in ("a", "b", "dead")}
    for name in ("a", "b"):
        produce(topics[name], [{"id": f"{name}-{i}"} for i in range(n)])

    def pipe(name, url):
        return {"name": name, "group_id": f"{name}-{tag}",
                "transform": os.path.join(ROOT, "tests", "e2e", "passthrough.lua"),
                "dead_letter_topic": topics["dead"],
                "dedupe": {"prefix": f"processed:{tag}:{name}:"},
                "streams": {"orders": topics[name]},
                "sinks": {"out": {"type": "http", "url": url + "/analytics",
                                  "timeout_ms": 1000, "retry_max_ms": 500}}}
    c = make_junction({"kafka": {"brokers": BROKER}, "pipelines": [
        pipe("a", live.analytics), pipe("b", f"http://127.0.0.1:{down_port}")]},
        command="consume")

    def pipeline(name):
        st = request(c.admin + "/api/status").json()["consumer"]["pipelines"]
        return next(x for x in st if x["name"] == name)

    def committed(name):
        return sum(max(x["committed"], 0) for x in pipeline(name)["partitions"])
    assert wait_until(lambda: stats(live)["distinct_ids"] >= n and committed("a") == n, 60), \
        c.logs()[-3000:]
    # The other pipeline keeps retrying meanwhile, and nothing of it gets anywhere.
    assert wait_until(lambda: pipeline("b")["retries"] >= 3, 30), pipeline("b")
    assert stats(live)["distinct_ids"] == n
    assert committed("b") == 0
    assert c.metric("junction_consumer_delivered_total", pipeline="b") == 0
    assert read_topic(topics["dead"]) == []

    late = make_junction({"analytics": {"listen": f"127.0.0.1:{down_port}"}},
                         command="analytics")
    late.analytics_port = down_port
    assert wait_until(lambda: stats(late)["distinct_ids"] >= n and committed("b") == n, 60), \
        c.logs()[-3000:]
    assert stats(live)["distinct_ids"] == n and stats(late)["distinct_ids"] == n
    assert read_topic(topics["dead"]) == []
    assert c.proc.poll() is None


def test_redis_with_an_acl_user_and_a_password_from_a_file(make_junction, private_redis,
                                                           tmp_path):
    port, cli = private_redis
    tag = uuid.uuid4().hex[:8]
    topics = {"orders": f"orders_{tag}", "dead": f"dead_letter_{tag}"}
    analytics = make_junction(command="analytics")
    produce(topics["orders"], [{"id": f"o-{i}"} for i in range(50)])
    secret = tmp_path / "redis_password"
    secret.write_text("m4rker-pass\n")
    c = make_junction(orders_pipeline(tag, analytics, topics, {"port": port}), command="consume",
                      env={"REDIS_USERNAME": "marker", "REDIS_PASSWORD_FILE": str(secret)})
    assert wait_until(lambda: stats(analytics)["distinct_ids"] >= 50 and
                      c.metric("junction_consumer_pending_messages") == 0, 60), c.logs()[-3000:]
    keys = subprocess.run(cli + ["KEYS", f"processed:{tag}:*"], capture_output=True,
                          text=True).stdout.split()
    assert len(keys) == 50
    assert "connected to 127.0.0.1:%d as marker" % port in c.logs()
    assert "m4rker-pass" not in c.logs()


def test_a_wrong_redis_password_is_one_clear_line_and_nothing_passes(make_junction,
                                                                     private_redis):
    port, cli = private_redis
    tag = uuid.uuid4().hex[:8]
    topics = {"orders": f"orders_{tag}", "dead": f"dead_letter_{tag}"}
    analytics = make_junction(command="analytics")
    produce(topics["orders"], [{"id": f"o-{i}"} for i in range(20)])
    c = make_junction(orders_pipeline(tag, analytics, topics, {
        "port": port, "username": "marker", "password": {"env": "ORDERS_REDIS_PASSWORD"}}),
        command="consume", env={"ORDERS_REDIS_PASSWORD": "not-the-pass"})
    # Refused on several logins, said once.
    assert wait_until(lambda: auth_failures(cli, "marker") >= 3, 30), c.logs()[-3000:]
    r = request(c.admin + "/readyz")
    assert r.status == 503 and b"refused junction's login (WRONGPASS" in r.body, r.body
    logs = c.logs()
    assert logs.count("refused junction's login (WRONGPASS") == 1, logs[-3000:]
    assert "check redis.username and redis.password" in logs
    assert "not-the-pass" not in logs
    assert stats(analytics)["records"] == 0
    assert read_topic(topics["dead"]) == []
