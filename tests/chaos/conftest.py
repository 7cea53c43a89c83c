"""Fixtures of the chaos suite: the three-node Kafka cluster of `tools/services up
--brokers 3`, a Redis of each case's own (appendonly, so a kill -9 keeps its marks), and
the seed pipeline against them: `junction api` with CHAOS_CUSTOMERS customers,
`junction produce`, two `junction consume` in one group and `junction analytics`, each
on ports of its own, the topics fresh for every case (replication factor 3,
min.insync.replicas=2, the seed's two compacted) and deleted after it.

A case injects its fault while records flow and then judges from the data alone:
- every customer id the API serves is in the analytics receiver's file, and every
  customer the case changed arrives in its changed form;
- a repeat (a record stored again as it was) is possible only where a consumer may
  deliver a record again (it died between a delivery and its mark): at most WINDOW per
  such event; every batch carried an Idempotency-Key;
- nothing was written to the dead-letter topic;
- the group's committed offsets, as the brokers hold them, are the end of every
  partition of the stream.
It prints delivered, repeats, reemitted, recognised, fault_s, recover_s (from the
fault's start until every stream partition's commits moved again, or reached the end)
and run_s."""
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))

import junction_test  # noqa: E402
from junction_test import ROOT, Junctions, deep_merge, free_port, request  # noqa: E402
from junction_test import wait_until  # noqa: E402,F401  (the cases import it from here)


@pytest.fixture
def make_junction(tmp_path):
    """The e2e suite's junction factory: each junction with its own ports, config and log,
    stopped with SIGTERM (and checked to exit 0) at the end of the case."""
    junctions = Junctions(tmp_path)
    yield junctions
    junctions.close()


# The size issue 12 names: about 6 minutes for the whole suite on this 2-core machine
# when nothing else runs (see the README's "Chaos tests"); CHAOS_CUSTOMERS sets another.
CUSTOMERS = int(os.environ.get("CHAOS_CUSTOMERS", "200000"))
BROKERS = 3
CLUSTER_PORT = int(os.environ.get("KAFKA_CLUSTER_PORT", "19192"))
BOOTSTRAP = ",".join(f"127.0.0.1:{CLUSTER_PORT + 2 * i}" for i in range(BROKERS))
PARTITIONS = 6  # tools/services' partition count
# What one consumer process can have delivered and not yet marked when it dies or gives
# a partition up: its HTTP batches in flight (consumer.max_inflight_batches x batch_size,
# 4 x 500 by default) and the one still lingering.
WINDOW = 5 * 500
# Kafka's own tools (tools/services' KAFKA_VERSION), for what kcat cannot ask: a group's
# committed offsets, deleting topics.
JAVA_TOOL = ["java", "-Xmx128m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp",
             os.path.join(ROOT, ".cache", "kafka", "3.9.1", "libs", "*"),
             "-Dlog4j.configuration=file:" + os.path.join(ROOT, ".services", "cluster",
                                                          "node1", "log4j.properties")]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def services(*args, check=True):
    junction_test.services(*args, "--brokers", str(BROKERS), check=check)


class Cluster:
    """The cluster of tools/services: its metadata, and its nodes killed and started."""

    def metadata(self):
        p = subprocess.run(["kcat", "-b", BOOTSTRAP, "-L", "-J", "-m", "5"],
                           capture_output=True, text=True, timeout=30)
        try:
            return json.loads(p.stdout)
        except ValueError:
            return {"brokers": [], "topics": []}

    def partitions(self, topics):
        out = []
        for t in self.metadata().get("topics", []):
            if t["topic"] in topics:
                out += [dict(p, topic=t["topic"]) for p in t.get("partitions", [])]
        return out

    def leaders(self, topics):
        """Partitions led per node, most first."""
        return collections.Counter(p["leader"] for p in self.partitions(topics)).most_common()

    def healthy(self, topics):
        """Every node serving, and every partition of topics with its whole ISR."""
        md = self.metadata()
        if len(md.get("brokers", [])) != BROKERS:
            return False
        parts = [p for t in md.get("topics", []) if t["topic"] in topics
                 for p in t.get("partitions", [])]
        return len(parts) == len(topics) * PARTITIONS and all(
            p["leader"] >= 0 and len(p.get("isrs", [])) == len(p.get("replicas", []))
            for p in parts)

    def kill(self, *nodes):
        services("kill-broker", *map(str, nodes))

    def stop(self, *nodes):
        services("stop-broker", *map(str, nodes))

    def start(self, *nodes):
        services("start-broker", *map(str, nodes))

    def end_offsets(self, topic):
        args = ["kcat", "-b", BOOTSTRAP, "-Q"]
        for p in range(PARTITIONS):
            args += ["-t", f"{topic}:{p}:-1"]
        out = subprocess.run(args, capture_output=True, text=True, timeout=30).stdout
        ends = {}
        for line in out.splitlines():  # topic [p] offset N, or "offset -1: <error>"
            parts = line.split()
            if len(parts) >= 4 and parts[0] == topic and parts[3].lstrip("-").isdigit():
                ends[int(parts[1].strip("[]"))] = int(parts[3])
        return ends  # a partition whose leader is away is missing: not recovered yet

    def committed(self, group, topic):
        """The group's committed offsets per partition of topic, from the brokers."""
        return junction_test.group_committed(group, topic, broker=BOOTSTRAP)


@pytest.fixture(scope="session")
def cluster():
    services("up")
    c = Cluster()
    yield c
    # A case that failed halfway may leave a node down: the next file needs all three.
    services("up", check=False)


class Redis:
    """A redis-server of the case's own, appendonly: a kill -9 loses at most the last
    second of writes (appendfsync everysec)."""

    def __init__(self, folder):
        self.folder = folder
        self.port = free_port()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir",
             self.folder, "--appendonly", "yes", "--save", "", "--logfile",
             os.path.join(self.folder, "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        ok = wait_until(lambda: self.cli("PING") == "PONG", 20, 0.05)
        assert ok, "redis did not answer on port %d" % self.port

    def cli(self, *args):
        p = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True,
                           text=True, timeout=10)
        return p.stdout.strip()

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


class Chaos:
    """One case's pipeline. start() runs it; the case injects its fault with the members
    below; verify() judges the data and prints the figures."""

    def __init__(self, make_junction, cluster, tmp, name):
        self.make_junction, self.cluster, self.tmp, self.name = make_junction, cluster, tmp, name
        self.n = CUSTOMERS
        self.tag = tag = uuid.uuid4().hex[:8]
        self.topics = {"customers": f"chaos_customers_{tag}", "products": f"chaos_products_{tag}",
                       "dead": f"chaos_dead_letter_{tag}"}
        self.group = f"chaos_group_{tag}"
        self.redis = Redis(str(tmp))
        self.consumers = []
        self.producer = None
        self.analytics_file = os.path.join(str(tmp), "analytics.jsonl")
        self.redeliveries = 0  # events that may deliver records again (see WINDOW)
        self.fault_at = self.healed_at = None
        self.recovered_at = None
        self.recognised_before = 0
        self.changes = {}  # customer id -> the name it was changed to
        self.started = None
        self._stop = threading.Event()
        self._watch = None

    # ---- the pipeline

    def create_topics(self):
        # One JVM per topic; in parallel, as they mostly wait for the JVM to start.
        procs = [subprocess.Popen([os.path.join(ROOT, "tools", "services"), "create-topic",
                                   name, *cfg, "--brokers", str(BROKERS)],
                                  stdout=subprocess.DEVNULL)
                 for name, cfg in ((self.topics["customers"], ["cleanup.policy=compact"]),
                                   (self.topics["products"], ["cleanup.policy=compact"]),
                                   (self.topics["dead"], []))]
        assert all(p.wait(180) == 0 for p in procs), "creating the case's topics failed"

    def base(self):
        return {"kafka": {"brokers": BOOTSTRAP},
                "redis": {"host": "127.0.0.1", "port": self.redis.port}}

    def consumer(self):
        cfg = deep_merge(self.base(), {
            "consumer": {"dead_letter_topic": self.topics["dead"]},
            "pipelines": {"default": {
                "group_id": self.group,
                "streams": {"customers": {"topic": self.topics["customers"]}},
                "tables": {"products": {"topic": self.topics["products"]}},
                "sinks": {"analytics": {"url": self.analytics.analytics + "/analytics"}}}}})
        if os.environ.get("CHAOS_KAFKA_DEBUG"):  # e.g. cgrp: librdkafka's group protocol
            deep_merge(cfg, {"log": {"level": "debug"}, "kafka": {
                "properties": {"debug": os.environ["CHAOS_KAFKA_DEBUG"]}}})
        c = self.make_junction(cfg, command="consume")
        self.consumers.append(c)
        return c

    def start_producer(self):
        cfg = deep_merge(self.base(), {"sources": {
            "crm": {"url": self.api.crm + "/customers", "topic": self.topics["customers"]},
            "inventory": {"url": self.api.inventory + "/products",
                          "topic": self.topics["products"]}}})
        self.producer = self.make_junction(cfg, command="produce")
        return self.producer

    def start(self):
        self.started = time.time()
        self.redis.start()
        self.create_topics()
        # crm.lua makes every customer in one call, which the default 1 s per call does
        # not cover for 200,000 on a busy 2-core machine.
        self.api = self.make_junction({"apis": {"crm": {"count": self.n},
                                                "inventory": {"count": 10}},
                                       "scripts": {"time_limit_ms": 30000}})
        self.analytics = self.make_junction({"analytics": {"file": self.analytics_file}},
                                            command="analytics")
        self.members = [self.consumer(), self.consumer()]
        self.start_producer()
        self._watch = threading.Thread(target=self._watch_commits, daemon=True)
        self._watch.start()
        return self

    def live(self, j):
        return j.proc is not None and j.proc.poll() is None

    def ready(self, j):
        try:
            return request(j.admin + "/readyz", timeout=2).status == 200
        except OSError:
            return False

    def assigned(self, j):
        """The stream partitions consumer j holds."""
        try:
            return len(request(j.admin + "/api/status", timeout=2).json()["consumer"]
                       ["partitions"])
        except (OSError, ValueError, KeyError):
            return 0

    def kill(self, j):
        j.proc.send_signal(signal.SIGKILL)
        j.proc.wait()

    def replace_member(self, i):
        """kill -9 of consumer i and a new one in its place at once."""
        self.kill(self.members[i])
        self.redeliveries += 1
        self.members[i] = self.consumer()

    def stop_analytics(self):
        # Its Idempotency-Keys are in memory: count the repeats it refused so far.
        self.recognised_before += self.analytics_stats()["duplicate_batches"]
        self.analytics.stop()

    def start_analytics(self):
        self.analytics.start()

    def analytics_faults(self, body):
        r = request(self.analytics.analytics + "/analytics/faults", "PUT", json.dumps(body))
        assert r.status == 200, r.body

    def change_customers(self, ids):
        """Changes these customers at the API (a new name each); verify() then wants each
        one's last record at analytics to carry it."""
        for i in ids:
            name = f"Changed customer {i}"
            r = request(f"{self.api.crm}/customers/{i}", "PATCH", json.dumps({"name": name}),
                        {"Content-Type": "application/json"})
            assert r.status == 200, r.body
            self.changes[i] = name

    # ---- progress

    def delivered(self):
        """Records in the analytics file (every lifetime of the receiver)."""
        try:
            with open(self.analytics_file, "rb") as f:
                return f.read().count(b"\n")
        except OSError:
            return 0

    def published(self, fresh=False):
        """Records the live producer says it published; unless `fresh`, the last figure
        read when it is too busy to answer in time (a cycle of 200,000 records on a loaded
        machine)."""
        if not self.live(self.producer):
            return 0
        try:
            self._published = self.producer.metric("junction_producer_records_total",
                                                   result="published") or 0
        except OSError:
            if fresh:
                raise
        return getattr(self, "_published", 0)

    def _commits(self):
        """The highest offset any live member says it committed, per partition."""
        out = {}
        for c in list(self.consumers):
            if not self.live(c):
                continue
            try:
                parts = request(c.admin + "/api/status", timeout=2).json()["consumer"]["partitions"]
            except (OSError, ValueError, KeyError):
                continue
            for x in parts:
                if x.get("topic", self.topics["customers"]) == self.topics["customers"]:
                    out[x["partition"]] = max(out.get(x["partition"], -1), x["committed"])
        return out

    def statuses(self):
        out = []
        for c in self.consumers:
            if self.live(c):
                try:
                    st = request(c.admin + "/api/status", timeout=2).json()["consumer"]
                    out.append({k: st[k] for k in ("pending", "partitions") if k in st})
                except (OSError, ValueError, KeyError):
                    pass
        return out

    def _watch_commits(self):
        """recover_s: once a fault started, the first moment every stream partition's
        commits moved past where they were then, or reached the partition's end."""
        best, at_fault, seen_fault = {}, None, None
        while not self._stop.is_set():
            for p, off in self._commits().items():
                best[p] = max(best.get(p, -1), off)
            if self.fault_at != seen_fault:  # a new fault: measure from it
                seen_fault, at_fault = self.fault_at, None
            if self.fault_at is not None and self.recovered_at is None:
                if at_fault is None:
                    at_fault = dict(best)
                else:
                    ends = self.cluster.end_offsets(self.topics["customers"])
                    if len(ends) == PARTITIONS and all(
                            best.get(p, -1) > at_fault.get(p, -1) or best.get(p, -1) >= e
                            for p, e in ends.items()) and self.fault_at == seen_fault:
                        self.recovered_at = time.time()
            self._stop.wait(0.5)

    def fault(self):
        """Marks the start of the fault: recover_s counts from here."""
        self.fault_at = time.time()
        self.recovered_at = None
        log(f"{self.name}: fault at delivered={self.delivered()} published={self.published()}")

    def heal(self):
        """Marks the end of the fault (the last thing restarted); a kill without a pause
        needs none."""
        self.healed_at = time.time()
        log(f"{self.name}: healed at delivered={self.delivered()}")

    def in_topic(self):
        """Messages the stream topic holds (its partitions' end offsets)."""
        return sum(self.cluster.end_offsets(self.topics["customers"]).values())

    def wait_in_topic(self, fraction, timeout=120):
        """Returns once the producer's first cycle has written fraction of the customers
        to the topic, and how many it had then. The topic is watched rather than the
        producer: its loop maps the whole answer in one turn and serves its delivery
        reports after, so its own count jumps from 0 to all at the end of the cycle."""
        at = wait_until(lambda: (lambda v: v if v >= self.n * fraction else 0)(self.in_topic()),
                        timeout, 0.01)
        assert at, f"{self.in_topic()} of {self.n} in the topic after {timeout} s"
        return at

    def wait_delivered(self, fraction, timeout=300):
        ok = wait_until(lambda: self.delivered() >= self.n * fraction, timeout, 0.1)
        assert ok, f"{self.delivered()} of {self.n} delivered after {timeout} s"

    # ---- judging

    def api_ids(self):
        ids, off = set(), 0
        while True:
            page = request(f"{self.api.crm}/customers?offset={off}&limit=20000", timeout=60).json()
            if not page:
                return ids
            ids.update(r["id"] for r in page)
            off += len(page)

    def stored(self):
        """The records analytics stored, in arrival order, without merged_at (the one
        field a merge of the same input sets differently every time)."""
        out = []
        with open(self.analytics_file, "rb") as f:
            data = f.read()
        # The receiver may be half way through appending a batch: a line without its
        # line break is still being written, and is read on the next look.
        for line in data.split(b"\n")[:-1]:
            if line.strip():
                r = json.loads(line)
                r.pop("merged_at", None)
                out.append(r)
        return out

    def dead_letters(self):
        """The dead-letter topic's messages, as their headers (which say why)."""
        p = subprocess.run(["kcat", "-b", BOOTSTRAP, "-C", "-t", self.topics["dead"], "-e", "-q",
                            "-f", "%h\n"], capture_output=True, text=True, timeout=60)
        return [line for line in p.stdout.splitlines() if line.strip()]

    def analytics_stats(self):
        return request(self.analytics.analytics + "/analytics/stats").json()

    def verify(self, timeout=400):
        """Waits (bounded) for the pipeline to finish, judges the data, prints the
        figures; returns them."""
        want = self.api_ids()
        assert len(want) == self.n
        def complete():
            recs = self.stored()
            last = {r["id"]: r.get("name") for r in recs}
            return len(set(last) & want) == self.n and all(
                last[i] == name for i, name in self.changes.items())
        ok = wait_until(complete, timeout, 1)
        records = self.stored()
        ids = [r["id"] for r in records]
        missing = want - set(ids)
        assert ok and not missing, (
            f"{len(missing)} customer id(s) never reached analytics, e.g. {sorted(missing)[:10]}",
            [c.logs()[-3000:] for c in self.consumers if self.live(c)])
        # Commits run every 500 ms, up to the first message not yet settled: they reach
        # the end of every partition soon after the last delivery.
        # Asked until every partition answers: a node just started again may not lead
        # its partitions yet, or not know the topic (kcat then reports none: a CI run).
        def all_ends():
            e = self.cluster.end_offsets(self.topics["customers"])
            return e if len(e) == PARTITIONS else None
        ends = wait_until(all_ends, 60, 1) or self.cluster.end_offsets(self.topics["customers"])
        assert len(ends) == PARTITIONS, ends
        committed = wait_until(
            lambda: (lambda c: c if c == ends else None)(
                self.cluster.committed(self.group, self.topics["customers"])), 90, 2) or \
            self.cluster.committed(self.group, self.topics["customers"])
        assert committed == ends, (f"committed {committed}, partition ends {ends}",
                                   self.statuses())
        finished = time.time()
        # The watcher samples every 0.5 s; a partition whose last commits came between two
        # samples has recovered by now at the latest.
        if self.fault_at and not self.recovered_at:
            self.recovered_at = finished
        self._stop.set()
        stats = self.analytics_stats()
        counts = collections.Counter(ids)
        # A repeat is a record stored again as it was; a record of the same customer that
        # differs is a re-emission, merge.lua's policy (a customer first delivered with
        # missing_product_ids, because its products had not arrived within the hold, is
        # sent again complete once they do).
        seen, repeats = set(), 0
        for r in records:
            text = json.dumps(r, sort_keys=True)
            repeats += text in seen
            seen.add(text)
        reemitted = len(records) - len(counts) - repeats
        extra = set(counts) - want
        assert not extra, f"analytics holds ids the API does not serve: {sorted(extra)[:10]}"
        assert stats["batches_without_key"] == 0, stats
        dead = self.dead_letters()
        assert not dead, (f"{len(dead)} message(s) in the dead-letter topic "
                          f"{self.topics['dead']}, e.g. " + "\n".join(dead[:5]))
        last = {r["id"]: r for r in records}
        stale = [i for i, name in self.changes.items() if last[i].get("name") != name]
        assert not stale, f"{len(stale)} change(s) never reached analytics, e.g. {stale[:10]}"
        bound = self.redeliveries * WINDOW
        assert repeats <= bound, (
            f"{repeats} repeated record(s), but {self.redeliveries} event(s) that may deliver "
            f"again allow {bound}")
        recover = (self.recovered_at - self.fault_at) if self.recovered_at and self.fault_at \
            else None
        figures = {"delivered": len(counts), "records": len(ids), "repeats": repeats,
                   "reemitted": reemitted,
                   "recognised": self.recognised_before + stats["duplicate_batches"],
                   "fault_s": round((self.healed_at or self.fault_at) - self.fault_at, 1),
                   "recover_s": None if recover is None else round(recover, 1),
                   "run_s": round(finished - self.started, 1), "customers": self.n}
        print(f"\nCHAOS {self.name}: " + " ".join(f"{k}={v}" for k, v in figures.items()),
              flush=True)
        return figures

    def close(self):
        self._stop.set()
        if self._watch:
            self._watch.join(5)

    def delete_topics(self):
        # Every partition a node holds is recovered when it restarts after a kill -9, one
        # by one: topics left behind by earlier cases would make every later restart
        # slower. One JVM for the three (the name is a pattern for --delete).
        subprocess.run(JAVA_TOOL + ["org.apache.kafka.tools.TopicCommand", "--bootstrap-server",
                                    BOOTSTRAP, "--delete", "--if-exists", "--topic",
                                    f"chaos_.*_{self.tag}"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)


@pytest.fixture
def chaos(make_junction, cluster, tmp_path, request):
    c = Chaos(make_junction, cluster, tmp_path, request.node.name)
    yield c
    c.close()
    # make_junction stops the junctions after this; Redis last, as the consumers need it.


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.chaos_failed = report.failed
    return report


@pytest.fixture(autouse=True)
def _after_junctions(request):
    """Once make_junction has stopped the case's junctions (fixtures are torn down in
    reverse order, and this one is set up first): its Redis, then its topics (deleted
    while a producer runs, auto.create.topics.enable would make them again)."""
    yield
    c = request.node.funcargs.get("chaos")
    if c:
        c.redis.stop()
        if getattr(request.node, "chaos_failed", False):
            # pytest keeps only the last few temporary folders of the machine's runs; a
            # failed case's logs and data go where the next runs leave them alone.
            keep = os.path.join(ROOT, ".artifacts", "chaos", request.node.name)
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(str(c.tmp), keep, ignore=shutil.ignore_patterns("scripts"))
            print(f"\nlogs and data of the failed case kept in {keep}")
        c.delete_topics()
