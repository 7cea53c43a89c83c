#!/usr/bin/env python3
"""Soak benchmark: the seed pipeline for a long time, watching for leaks.

Runs the four roles as separate processes (`junction api`, `junction produce`,
`junction consume`, `junction analytics`, as containers and the chaos suite run them)
against the Kafka of tools/services, on topics of its own (soak_*_<tag>, deleted at the
end), and a Redis of its own (a private redis-server on a free port, no persistence),
every listener on a free port. While it runs:

- customers change at a steady rate (--rate PATCHes a second, each a new name, so
  each is a new record for the producer and the consumer's de-duplication);
- a product changes every --product-every seconds (PATCH of its stock), which makes
  the pipeline's join (scripts/join.lua) re-emit every customer that references it;
- every --reload-every seconds, POST /api/reload to each role that runs scripts (api:
  crm.lua and inventory.lua, which regenerates the data and so reverts earlier PATCHes;
  produce: the map scripts; consume: join.lua);
- the analytics receiver's store is emptied after each sample (DELETE /analytics/records):
  it keeps every record it accepted by design (a test tool), which would otherwise grow
  its memory with the records delivered and hide a leak.

Every --sample seconds (10) it writes one CSV row: per junction process its RSS, open
file descriptors (/proc/<pid>/fd) and Lua memory; the private Redis' RSS and keys; the
consumer's lag (junction_consumer_lag of the stream topic), pending messages, delivered
records and records/s. At the end (or on Ctrl-C) it stops everything it started, draws
a PNG chart (matplotlib: Debian's python3-matplotlib, which tools/setup installs) and
prints a summary: RSS after the warm-up and at the end, the RSS slope over the last 20
minutes, fd min/max, and whether memory is flat (the rule is printed with it).

Usage: bench/soak.py [--minutes 30] [--csv docs/results/soak.csv] [--png docs/soak.png]
       bench/soak.py --chart CSV PNG     (only draw the chart of an earlier run)
       bench/soak.py --summary CSV [--window 10]   (only print an earlier run's summary)
"""
import argparse
import csv
import ctypes
import datetime
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from producer import BIN, ROOT, config, free_port  # noqa: E402

ROLES = ("api", "produce", "consume", "analytics")
KAFKA_PORT = int(os.environ.get("KAFKA_PORT", "9092"))
BOOTSTRAP = f"127.0.0.1:{KAFKA_PORT}"
JAVA_TOOL = ["java", "-Xmx128m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp",
             os.path.join(ROOT, ".cache", "kafka", "3.9.1", "libs", "*"),
             "-Dlog4j.configuration=file:" + os.path.join(ROOT, ".services", "kafka",
                                                          "log4j.properties")]
PR_SET_PDEATHSIG = 1


def die_with_parent():
    """In the child, before exec: SIGTERM when this script dies, even by kill -9, so a
    soak never leaves a pipeline running behind it."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(args, log):
    # A session of its own: Ctrl-C on the terminal reaches this script only, which then
    # stops the pipeline in order (producer first, Redis last).
    return subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=die_with_parent)


def call(method, url, body=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def metrics(admin):
    """Every sample of admin's /metrics as (name, labels text, value)."""
    text = urllib.request.urlopen(admin + "/metrics", timeout=10).read().decode()
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, value = line.rsplit(" ", 1)
        name, _, labels = series.partition("{")
        out.append((name, labels, float(value)))
    return out


def msum(samples, name, *label_parts):
    return sum(v for n, lab, v in samples if n == name and all(p in lab for p in label_parts))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def memory_kinds(pid):
    """RSS in KiB of the main thread's malloc heap ([heap], where junction and its Lua
    states allocate) and of the other anonymous mappings (the malloc arenas of
    librdkafka's threads, large allocations, thread stacks): which of them grows tells
    where to look."""
    heap = anon = 0
    name = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if not head[0].endswith(":"):  # a mapping's first line: address perms ... [path]
                name = head[5] if len(head) > 5 else ""
            elif head[0] == "Rss:":
                if name == "[heap]":
                    heap += int(head[1])
                elif name == "":
                    anon += int(head[1])
    return heap, anon


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class Soak:
    def __init__(self, a):
        self.a = a
        self.tag = uuid.uuid4().hex[:8]
        self.topics = {"customers": f"soak_customers_{self.tag}",
                       "products": f"soak_products_{self.tag}",
                       "dead": f"soak_dead_letter_{self.tag}"}
        self.group = f"soak_group_{self.tag}"
        self.tmp = tempfile.mkdtemp(prefix="junction-soak-")
        self.procs = {}  # role -> Popen
        self.ports = {}
        self.redis = None
        self.stop = threading.Event()   # the drivers and the sampler stop
        self.counts = {"customer_changes": 0, "customer_change_errors": 0,
                       "product_changes": 0, "product_change_errors": 0,
                       "reloads": 0, "reload_errors": 0}
        self.lock = threading.Lock()
        self.rows = []
        self.exits = {}
        self.last_metrics = {}

    def log(self, name):
        return open(os.path.join(self.tmp, f"{name}.log"), "w")

    def count(self, key, n=1):
        with self.lock:
            self.counts[key] += n

    # ---- start

    def start_redis(self):
        self.ports["redis"] = free_port()
        self.redis = spawn(["redis-server", "--bind", "127.0.0.1", "--port",
                            str(self.ports["redis"]), "--dir", self.tmp, "--save", "",
                            "--appendonly", "no"], self.log("redis"))
        self.wait(lambda: self.redis_cli("PING") == "PONG", 20, "redis-server")

    def redis_cli(self, *args):
        p = subprocess.run(["redis-cli", "-p", str(self.ports["redis"]), *args],
                           capture_output=True, text=True, timeout=10)
        return p.stdout.strip()

    def create_topics(self):
        # One JVM per topic, in parallel: they mostly wait for the JVM to start.
        procs = [subprocess.Popen([os.path.join(ROOT, "tools", "services"), "create-topic",
                                   name, *cfg], stdout=subprocess.DEVNULL)
                 for name, cfg in ((self.topics["customers"], ["cleanup.policy=compact"]),
                                   (self.topics["products"], ["cleanup.policy=compact"]),
                                   (self.topics["dead"], []))]
        if not all(p.wait(180) == 0 for p in procs):
            raise SystemExit("creating the soak's topics failed")

    def role(self, role, text):
        adm = free_port()
        self.ports[role + "_admin"] = adm
        cfg = config(self.tmp, f"{role}.lua", f"""return {{
  log = {{ level = "warn" }}, admin = {{ listen = "127.0.0.1:{adm}" }},
  kafka = {{ brokers = "{BOOTSTRAP}" }},
  redis = {{ host = "127.0.0.1", port = {self.ports['redis']} }},
{text} }}""")
        self.procs[role] = spawn([BIN, role, "--config", cfg], self.log(role))

    def admin(self, role):
        return f"http://127.0.0.1:{self.ports[role + '_admin']}"

    def wait(self, ok, timeout, what):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for role, p in self.procs.items():
                if p.poll() is not None:
                    raise SystemExit(f"junction {role} exited with {p.returncode}; see "
                                     f"{self.tmp}/{role}.log")
            try:
                if ok():
                    return
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.2)
        raise SystemExit(f"{what} was not ready within {timeout} s; logs in {self.tmp}")

    def start(self):
        a = self.a
        self.start_redis()
        self.create_topics()
        crm, inv, ana = free_port(), free_port(), free_port()
        self.crm = f"http://127.0.0.1:{crm}"
        self.inv = f"http://127.0.0.1:{inv}"
        self.ana = f"http://127.0.0.1:{ana}"
        # crm.lua generates every customer in one call, at start and on every reload.
        self.role("api", f"""  scripts = {{ time_limit_ms = 30000 }},
  apis = {{
    crm = {{ listen = "127.0.0.1:{crm}", script = "scripts/crm.lua", count = {a.customers},
             resource = "customers", singular = "Customer" }},
    inventory = {{ listen = "127.0.0.1:{inv}", script = "scripts/inventory.lua",
                   resource = "products", singular = "Product" }} }},""")
        self.role("analytics", f"""  analytics = {{ listen = "127.0.0.1:{ana}" }},""")
        self.wait(lambda: call("GET", self.crm + "/customers?limit=1")[0] == 200, 120, "the API")
        self.wait(lambda: call("GET", self.ana + "/analytics/stats")[0] == 200, 60, "analytics")
        self.role("consume", f"""  consumer = {{ dead_letter_topic = "{self.topics['dead']}" }},
  pipelines = {{ default = {{
    group_id = "{self.group}", transform = "scripts/join.lua",
    streams = {{ customers = {{ topic = "{self.topics['customers']}", changelog = "auto" }} }},
    tables = {{ products = "{self.topics['products']}" }},
    sinks = {{ analytics = {{ type = "http", url = "{self.ana}/analytics" }} }} }} }},""")
        self.wait(lambda: call("GET", self.admin("consume") + "/readyz")[0] == 200, 120,
                  "the consumer")
        self.role("produce", f"""  sources = {{
    crm = {{ url = "{self.crm}/customers", topic = "{self.topics['customers']}",
             script = "scripts/map_customers.lua", noun = "customer(s)" }},
    inventory = {{ url = "{self.inv}/products", topic = "{self.topics['products']}",
                   script = "scripts/map_products.lua", noun = "product(s)" }} }},""")
        self.wait(lambda: call("GET", self.admin("produce") + "/readyz")[0] == 200, 120,
                  "the producer")

    # ---- the load

    def paced(self, per_second, fn):
        """Calls fn() per_second times a second on an absolute schedule (a slow call is
        caught up, never turned into a lower rate) until the soak stops."""
        t0, k = time.time(), 0
        while not self.stop.is_set():
            fn(k)
            k += 1
            delay = t0 + k / per_second - time.time()
            if delay > 0:
                self.stop.wait(delay)

    def change_customers(self):
        host, port = self.crm[len("http://"):].split(":")
        conn = [None]
        rnd = random.Random(1)

        def one(k):
            i = rnd.randint(1, self.a.customers)
            body = json.dumps({"name": f"Customer {i} v{k}"})
            try:
                if conn[0] is None:
                    conn[0] = http.client.HTTPConnection(host, int(port), timeout=10)
                conn[0].request("PATCH", f"/customers/{i}", body,
                                {"Content-Type": "application/json"})
                r = conn[0].getresponse()
                r.read()
                self.count("customer_changes" if r.status == 200 else "customer_change_errors")
            except (OSError, http.client.HTTPException):
                self.count("customer_change_errors")
                conn[0] = None
        self.paced(self.a.rate, one)

    def change_products(self):
        def one(k):
            # Each product in turn: products 1-5 are referenced by about a fifth of the
            # customers each (crm.lua), 6-10 by about a twentieth, so a random pick would
            # make the re-emitted volume jump around. Stock 100 + k: never one the API
            # generates (0-99) nor an earlier one, so every change is a change, even right
            # after a reload regenerated the products.
            pid = k % 10 + 1
            try:
                st, _ = call("PATCH", f"{self.inv}/products/{pid}", {"stock": 100 + k})
                self.count("product_changes" if st == 200 else "product_change_errors")
            except OSError:
                self.count("product_change_errors")
        self.stop.wait(self.a.product_every)
        self.paced(1 / self.a.product_every, one)

    def reload(self):
        def one(_k):
            for role in ("api", "produce", "consume"):
                try:
                    st, _ = call("POST", self.admin(role) + "/api/reload", timeout=60)
                    self.count("reloads" if st == 200 else "reload_errors")
                except OSError:
                    self.count("reload_errors")
        self.stop.wait(self.a.reload_every)
        self.paced(1 / self.a.reload_every, one)

    # ---- sampling

    def sample(self, t0, last):
        now = time.time()
        row = {"t_s": round(now - t0, 1)}
        m, stale = {}, []
        for role in ROLES:
            pid = self.procs[role].pid
            row[f"{role}_rss_kib"] = rss_kib(pid)
            row[f"{role}_fds"] = fds(pid)
            row[f"{role}_heap_kib"], row[f"{role}_anon_kib"] = memory_kinds(pid)
            try:
                m[role] = self.last_metrics[role] = metrics(self.admin(role))
            except OSError:
                # Not answering within 10 s (a stalled machine): the last answer stands in,
                # and the row says so.
                m[role] = self.last_metrics.get(role, [])
                stale.append(role)
            row[f"{role}_lua_kib"] = round(msum(m[role], "junction_script_memory_bytes") / 1024)
        row["redis_rss_kib"] = rss_kib(self.redis.pid)
        try:
            row["redis_keys"] = int(self.redis_cli("DBSIZE") or 0)
        except (ValueError, subprocess.SubprocessError):
            row["redis_keys"] = ""
        c = m["consume"]
        stream = f'topic="{self.topics["customers"]}"'
        row["lag"] = int(msum(c, "junction_consumer_lag", stream))
        row["commit_lag"] = self.commit_lag()
        row["pending"] = int(msum(c, "junction_consumer_pending_messages"))
        row["delivered"] = int(msum(c, "junction_consumer_delivered_total"))
        row["received"] = int(msum(m["analytics"], "junction_analytics_records_total"))
        row["published"] = int(msum(m["produce"], "junction_producer_records_total",
                                    'result="published"'))
        row["duplicates"] = int(msum(c, "junction_consumer_duplicates_total"))
        row["dead_lettered"] = int(msum(c, "junction_consumer_dead_lettered_total"))
        row["consumer_errors"] = int(msum(c, "junction_consumer_errors_total"))
        row["producer_failures"] = int(msum(m["produce"], "junction_producer_failures_total"))
        row["script_reloads_ok"] = int(sum(msum(m[r], "junction_script_reloads_total",
                                                'result="ok"') for r in ROLES))
        row["script_reloads_error"] = int(sum(msum(m[r], "junction_script_reloads_total",
                                                   'result="error"') for r in ROLES))
        row["stale_metrics"] = " ".join(stale)
        if "consume" in stale:
            row["delivered_per_s"] = ""
        else:
            dt = now - last["time"] if last else 0
            row["delivered_per_s"] = round((row["delivered"] - last["delivered"]) / dt, 1) if dt else 0
            last = {"time": now, "delivered": row["delivered"]}
        with self.lock:
            row.update(self.counts)
        # The receiver's store only grows; what it received is counted by its metric.
        try:
            call("DELETE", self.ana + "/analytics/records")
        except OSError:
            pass
        return row, last

    def commit_lag(self):
        """Messages of the stream topic past the group's committed offsets (what Kafka's
        consumer-groups tool calls lag): the partitions' end offsets from the broker minus
        what the consumer says it committed. junction_consumer_lag counts from the
        consumer's read position instead, so messages read and not yet settled (pending)
        are in this one and not in that one."""
        try:
            parts = json.loads(call("GET", self.admin("consume") + "/api/status")[1])
            parts = [x for x in parts["consumer"]["partitions"]
                     if x.get("topic", self.topics["customers"]) == self.topics["customers"]]
            args = ["kcat", "-b", BOOTSTRAP, "-Q"]
            for x in parts:
                args += ["-t", f"{self.topics['customers']}:{x['partition']}:-1"]
            out = subprocess.run(args, capture_output=True, text=True, timeout=30).stdout
        except (OSError, ValueError, KeyError, subprocess.SubprocessError):
            return ""
        ends = {}
        for line in out.splitlines():  # topic [p] offset N
            f = line.split()
            if len(f) >= 4 and f[0] == self.topics["customers"]:
                ends[int(f[1].strip("[]"))] = int(f[3])
        if len(ends) != len(parts):
            return ""
        return sum(max(0, ends[x["partition"]] - max(0, x["committed"])) for x in parts)

    def run(self, out):
        a = self.a
        threads = [threading.Thread(target=f, daemon=True)
                   for f in (self.change_customers, self.change_products, self.reload)]
        t0 = time.time()
        for t in threads:
            t.start()
        writer, last = None, None
        end = t0 + a.minutes * 60
        next_at = t0
        while not self.stop.is_set():
            for role, p in self.procs.items():
                if p.poll() is not None:
                    print(f"soak: junction {role} exited with {p.returncode} at "
                          f"{time.time() - t0:.0f} s; see {self.tmp}/{role}.log", flush=True)
                    self.stop.set()
            if self.stop.is_set():
                break
            row, last = self.sample(t0, last)
            self.rows.append(row)
            if writer is None:
                writer = csv.DictWriter(out, fieldnames=list(row))
                writer.writeheader()
            writer.writerow(row)
            out.flush()
            if a.verbose or len(self.rows) % 6 == 1:
                print(f"soak: {row['t_s'] / 60:5.1f} min  rss KiB " + " ".join(
                    f"{r}={row[r + '_rss_kib']}" for r in ROLES) +
                    f"  lag={row['lag']} pending={row['pending']} "
                    f"delivered={row['delivered']} ({row['delivered_per_s']}/s)", flush=True)
            next_at += a.sample
            if next_at > end + 0.5:
                break
            self.stop.wait(max(0.0, next_at - time.time()))
        self.stop.set()
        for t in threads:
            t.join(30)

    # ---- stop

    def shutdown(self):
        self.stop.set()
        # Producer first (nothing new), then the consumer (it settles what is in flight),
        # then what it delivers to and reads from.
        for role in ("produce", "consume", "api", "analytics"):
            p = self.procs.get(role)
            if p is None:
                continue
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            self.exits[role] = p.returncode
        if self.redis and self.redis.poll() is None:
            self.redis.terminate()
            self.redis.wait(30)
        # The soak's topics and group: the shared broker keeps nothing of it.
        subprocess.run(JAVA_TOOL + ["org.apache.kafka.tools.TopicCommand", "--bootstrap-server",
                                    BOOTSTRAP, "--delete", "--if-exists", "--topic",
                                    f"soak_.*_{self.tag}"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        subprocess.run(JAVA_TOOL + ["org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
                                    "--bootstrap-server", BOOTSTRAP, "--delete", "--group",
                                    self.group],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)


# ---- figures

def slope(points):
    """Least-squares slope of (x, y) points."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


def summarize(rows, warmup_min, window_min, flat_kib_per_min):
    """The summary's lines and whether memory is flat."""
    if not rows:
        return ["no sample was taken"], False
    t_end = rows[-1]["t_s"] / 60
    warm = [r for r in rows if r["t_s"] / 60 >= warmup_min]
    judged = len(warm) >= 3
    if not judged:
        # Stopped within the warm-up (Ctrl-C): show what there is, judge nothing.
        warmup_min, warm = 0, rows
    from_min = max(warmup_min, t_end - window_min)
    win = [r for r in rows if r["t_s"] / 60 >= from_min]
    lines = [f"samples: {len(rows)} over {t_end:.1f} min; warm-up {warmup_min:g} min; slope "
             f"over the last {t_end - from_min:.1f} min (from {from_min:.1f} min)"]
    flat = True

    def change(column):  # from the end of the warm-up to the end (0 in a CSV without it)
        return rows[-1].get(column, 0) - warm[0].get(column, 0)
    for role in ROLES:
        k = f"{role}_rss_kib"
        s = slope([(r["t_s"] / 60, r[k]) for r in win])
        ok = s < flat_kib_per_min
        flat &= ok
        f = [r[f"{role}_fds"] for r in rows]
        lua = [r[f"{role}_lua_kib"] for r in warm]
        lines.append(f"{role:9s} RSS {warm[0][k] / 1024:7.1f} MiB after warm-up -> "
                     f"{rows[-1][k] / 1024:7.1f} MiB at the end "
                     f"({(rows[-1][k] - warm[0][k]):+d} KiB), slope {s:+8.1f} KiB/min "
                     f"{'flat' if ok else 'GROWING'}; fds {min(f)}-{max(f)} "
                     f"(end {f[-1]}); Lua {lua[0] / 1024:.1f} -> {lua[-1] / 1024:.1f} MiB; "
                     f"change of [heap] {change(role + '_heap_kib'):+d} KiB, other anonymous "
                     f"{change(role + '_anon_kib'):+d} KiB")
    last = rows[-1]
    steady = [r for r in warm if r is not warm[0]] or warm
    lags = [r["lag"] for r in steady]
    clags = [r["commit_lag"] for r in steady
             if r["commit_lag"] != "" and r["commit_lag"] == r["commit_lag"]] or [0]
    pend = [r["pending"] for r in steady]
    rate = [r["delivered_per_s"] for r in steady if isinstance(r["delivered_per_s"], (int, float))
            and r["delivered_per_s"] == r["delivered_per_s"]] or [0]
    secs = max(1e-9, steady[-1]["t_s"] - warm[0]["t_s"])
    lines += [
        f"after warm-up, in stream messages: lag behind the committed offsets mean "
        f"{sum(clags) / len(clags):.0f}, max {max(clags)}; lag of the read position "
        f"(junction_consumer_lag) mean {sum(lags) / len(lags):.0f}, max {max(lags)}; pending "
        f"(read, not settled) mean {sum(pend) / len(pend):.0f}, max {max(pend)}",
        f"throughput after warm-up: {(steady[-1]['delivered'] - warm[0]['delivered']) / secs:.0f}"
        f" records/s delivered (10 s samples: min {min(rate):.0f}, max {max(rate):.0f})",
        f"records: published {last['published']}, delivered {last['delivered']}, received by "
        f"analytics {last['received']}, duplicates skipped {last['duplicates']}, dead-lettered "
        f"{last['dead_lettered']}, consumer errors {last['consumer_errors']}, producer failures "
        f"{last['producer_failures']}",
        f"changes: {last['customer_changes']} customers ({last['customer_change_errors']} "
        f"failed), {last['product_changes']} products ({last['product_change_errors']} failed); "
        f"reload requests {last['reloads']} ({last['reload_errors']} failed), script loads "
        f"{last['script_reloads_ok']} ok / {last['script_reloads_error']} refused",
        f"redis (private; marks live 24 h, so it grows by design): RSS "
        f"{warm[0]['redis_rss_kib'] / 1024:.1f} -> {last['redis_rss_kib'] / 1024:.1f} MiB, "
        f"{last['redis_keys']} keys",
        f"memory flat: {('yes' if flat else 'no') if judged else 'not judged'} "
        f"({'' if judged else 'fewer than 3 samples after the warm-up; '}rule: every junction process's least-squares "
        f"RSS slope over the last {window_min:g} minutes (here {t_end - from_min:.1f}), "
        f"warm-up excluded, is below "
        f"{flat_kib_per_min:g} KiB/min, i.e. under {flat_kib_per_min * 1440 / 1024:.0f} MiB a day)",
    ]
    return lines, flat and judged


def read_csv(path):
    def num(v):
        for kind in (int, float):
            try:
                return kind(v)
            except ValueError:
                pass
        return float("nan") if v == "" else v  # a blank is a gap in the chart
    with open(path) as f:
        return [{k: num(v) for k, v in r.items()} for r in csv.DictReader(f)]


def chart(csv_path, png, warmup_min, window_min):
    """Draws the chart; without matplotlib in this Python (a pyenv one, say), asks
    Debian's /usr/bin/python3, which has python3-matplotlib, to draw it."""
    try:
        import matplotlib
    except ImportError:
        if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") and \
                os.path.exists("/usr/bin/python3"):
            return subprocess.run(["/usr/bin/python3", __file__, "--chart", csv_path, png,
                                   "--warmup", str(warmup_min), "--window", str(window_min)]
                                  ).returncode == 0
        print("soak: no matplotlib (apt-get install python3-matplotlib); no chart")
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = read_csv(csv_path)
    t = [r["t_s"] / 60 for r in rows]
    fig, axes = plt.subplots(5, 1, figsize=(10, 13), sharex=True)
    rss, drift, fdax, lag, rate = axes
    warm = next((r for r in rows if r["t_s"] / 60 >= warmup_min), rows[-1])
    for role in ROLES:
        k = f"{role}_rss_kib"
        rss.plot(t, [r[k] / 1024 for r in rows], label=role)
        after = [r for r in rows if r["t_s"] >= warm["t_s"]]
        drift.plot([r["t_s"] / 60 for r in after], [r[k] - warm[k] for r in after], label=role)
        fdax.plot(t, [r[f"{role}_fds"] for r in rows], label=role)
    rss.set_ylabel("RSS (MiB)")
    rss.set_ylim(bottom=0)
    drift.set_ylabel("RSS change since\nwarm-up (KiB)")
    fdax.set_ylabel("open fds")
    fdax.set_ylim(bottom=0)
    lag.plot(t, [r["commit_lag"] for r in rows], label="lag behind the committed offsets")
    lag.plot(t, [r["lag"] for r in rows], label="lag of the read position")
    lag.plot(t, [r["pending"] for r in rows], label="pending messages")
    lag.set_ylabel("stream messages")
    rate.plot(t, [r["delivered_per_s"] for r in rows], label="delivered records/s", color="C4")
    rate.set_ylabel("records/s")
    rate.set_xlabel("minutes")
    end = t[-1] if t else 0
    for a in axes:
        a.axvspan(0, min(warmup_min, end), color="0.9", lw=0)
        a.axvline(max(warmup_min, end - window_min), color="0.5", ls=":", lw=1)
        a.legend(loc="upper left", fontsize=8, ncol=4)
        a.grid(alpha=0.3)
    rss.set_title(f"junction soak: {end:.0f} min (grey: warm-up; dotted: start of the "
                  f"slope window)", fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--customers", type=int, default=10000)
    ap.add_argument("--rate", type=float, default=100, help="customer changes a second")
    ap.add_argument("--product-every", type=float, default=5, help="seconds between product changes")
    ap.add_argument("--reload-every", type=float, default=60, help="seconds between reloads")
    ap.add_argument("--sample", type=float, default=10, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=2, help="minutes left out of the figures "
                    "(a third of the run when the run is shorter than 3 warm-ups)")
    ap.add_argument("--window", type=float, default=20, help="minutes of the RSS slope")
    ap.add_argument("--flat-kib-per-min", type=float, default=10,
                    help="the largest RSS slope still called flat")
    ap.add_argument("--csv", default=os.path.join(ROOT, "docs", "results", "soak.csv"))
    ap.add_argument("--png", default=os.path.join(ROOT, "docs", "soak.png"))
    ap.add_argument("--chart", nargs=2, metavar=("CSV", "PNG"), help="only draw a chart")
    ap.add_argument("--summary", metavar="CSV", help="only print the summary of an earlier "
                    "run's CSV (with --warmup, --window and --flat-kib-per-min)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every sample")
    a = ap.parse_args()
    if a.chart:
        sys.exit(0 if chart(a.chart[0], a.chart[1], a.warmup, a.window) else 1)
    if a.summary:
        lines, flat = summarize(read_csv(a.summary), a.warmup, a.window, a.flat_kib_per_min)
        print("\n".join(lines))
        sys.exit(0)
    if not os.access(BIN, os.X_OK):
        sys.exit(f"{BIN} is missing: cmake -S . -B build && cmake --build build")
    warmup = min(a.warmup, a.minutes / 3)
    subprocess.run([os.path.join(ROOT, "tools", "services"), "up"], check=True,
                   stdout=subprocess.DEVNULL)
    s = Soak(a)
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    print(f"== soak: {a.minutes:g} min, {a.customers} customers, {a.rate:g} customer changes/s, "
          f"a product change every {a.product_every:g} s, a reload every {a.reload_every:g} s; "
          f"{os.cpu_count()} CPUs; commit {commit}{' (modified)' if dirty else ''}; "
          f"{datetime.datetime.now().isoformat(timespec='seconds')}; logs in {s.tmp}", flush=True)

    def interrupted(signum, _frame):
        print(f"soak: {signal.Signals(signum).name}: stopping", flush=True)
        s.stop.set()
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    os.makedirs(os.path.dirname(os.path.abspath(a.csv)), exist_ok=True)
    try:
        s.start()
        print(f"soak: pipeline up (topics soak_*_{s.tag}, group {s.group}, private Redis on "
              f"port {s.ports['redis']})", flush=True)
        with open(a.csv, "w", newline="") as out:
            if not s.stop.is_set():
                s.run(out)
    finally:
        s.shutdown()
    bad = {r: c for r, c in s.exits.items() if c != 0}
    print(f"soak: stopped everything; exit codes {s.exits}")
    lines, flat = summarize(s.rows, warmup, a.window, a.flat_kib_per_min)
    for line in lines:
        print(line)
    print(f"csv: {a.csv}")
    if s.rows and chart(a.csv, a.png, warmup, a.window):
        print(f"chart: {a.png}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
