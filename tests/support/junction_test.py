"""What the Python test suites share (tests/e2e, tests/chaos, tests/containers): where the
binary and the services are, free loopback ports, waiting for a condition with a bound,
HTTP requests, a fixture HTTP server, a running junction with its own config, ports and
log, and the conditions that say a producer or a consumer has settled.

Plain Python (no pytest import): tests/containers/check.py runs under Debian's python3,
which has no pytest. The pytest fixtures wrap Junctions in each suite's conftest.py."""
import glob
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BINARY = os.environ.get("JUNCTION_BIN", os.path.join(ROOT, "build", "junction"))
# Where tools/services runs Kafka and Redis: the same variables choose the ports there and
# here, so `KAFKA_PORT=19092 REDIS_PORT=16379 tools/services up` and the tests with those
# variables set use a broker and a Redis of their own. KAFKA_BOOTSTRAP_SERVERS, REDIS_HOST
# and REDIS_PORT are also what junction itself reads.
BROKER = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or \
    f"127.0.0.1:{os.environ.get('KAFKA_PORT', '9092')}"
REDIS_HOST = os.environ.get("REDIS_HOST", "127.0.0.1")
REDIS_PORT = os.environ.get("REDIS_PORT", "6379")

# junction reads these to override its config file; a test gives the addresses in the
# config (the base config below, or its own), so the binary never inherits them.
JUNCTION_OVERRIDES = ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_HOST", "REDIS_PORT")


# ---- processes and services ---------------------------------------------------------

def services(*args, check=True, timeout=300):
    """tools/services with args (up, stop-kafka, restart-redis, ...)."""
    subprocess.run([os.path.join(ROOT, "tools", "services"), *args], check=check,
                   stdout=subprocess.DEVNULL, timeout=timeout)


def redis_cli(*args):
    return subprocess.run(["redis-cli", "-h", REDIS_HOST, "-p", REDIS_PORT, *args],
                          capture_output=True, text=True, timeout=10).stdout.strip()


def read_topic(topic, fmt="%k\t%s\n", limit=None, broker=BROKER):
    """Every message of topic as the two fields of fmt (key and value by default; "%h\t%s\n"
    gives headers and value), at most `limit` of them; [] when the topic does not exist. A
    topic that is still being written needs the limit: kcat's -e waits for every partition
    to be at its end at once, which a steady writer can postpone indefinitely."""
    count = ["-c", str(limit)] if limit else []
    p = subprocess.run(["kcat", "-b", broker, "-C", "-t", topic, "-e", "-q", *count, "-f", fmt],
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0 and "Unknown topic" in p.stderr:
        return []
    assert p.returncode == 0, p.stderr
    return [tuple(line.split("\t", 1)) for line in p.stdout.splitlines() if "\t" in line]


def junction_env(extra=None):
    """The environment a junction of a test runs with: this one, less the variables that
    would override the test's config, plus extra."""
    env = {k: v for k, v in os.environ.items() if k not in JUNCTION_OVERRIDES}
    env.update(extra or {})
    return env


# ---- ports and waiting --------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n, taken=()):
    """n free loopback ports, distinct from each other and from taken. (free_port closes
    its socket, so two calls can return the same port.)"""
    out, seen = [], set(taken)
    while len(out) < n:
        p = free_port()
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def wait_until(fn, timeout, step=0.1):
    """fn() once it is truthy, polling every `step` seconds for at most `timeout` seconds;
    else its last value. The bound is the test's explicit limit, never a stand-in for
    "nothing more happens": wait for a condition that proves that instead."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()


# ---- HTTP ---------------------------------------------------------------------------

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)


def request(url, method="GET", body=None, headers=None, timeout=5):
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Response(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, e.headers, e.read())


def raw_exchange(port, data, timeout=5):
    """Sends raw bytes to a loopback port; returns everything received until the server
    closes (or says nothing for timeout seconds)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        return out


class FixtureServer:
    """A small threaded HTTP server on a free loopback port for a test to stand in for an
    API: answer(method, path_with_query, headers) returns (status, body, extra headers),
    body a bytes or a value sent as JSON. url is its base (http://127.0.0.1:<port>)."""

    def __init__(self, answer):
        class Handler(http.server.BaseHTTPRequestHandler):
            def respond(self):
                status, body, extra = answer(self.command, self.path, self.headers)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in extra or ():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = respond

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---- a junction of a test -----------------------------------------------------------

def lua_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, dict):
        return "{" + ", ".join(f"[{json.dumps(k)}] = {lua_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "{" + ", ".join(lua_value(x) for x in v) + "}"
    raise TypeError(v)


class only(dict):
    """A part of a config override that replaces what it overrides instead of merging
    into it: {"sources": only(orders=...)} polls orders alone, where {"sources":
    {"orders": ...}} would add it to the seed's two."""


def deep_merge(base, extra):
    for k, v in extra.items():
        if isinstance(v, only):
            base[k] = dict(v)
        elif isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_merge(base[k], v)
        else:
            base[k] = v
    return base


class Junction:
    """A running `junction <command>` (api by default) with its own ports, config, scripts
    and log file."""

    def __init__(self, tmp, overrides, env=None, command="api"):
        self.command = command
        self.tmp = tmp
        self.scripts = os.path.join(tmp, "scripts")
        shutil.copytree(os.path.join(ROOT, "scripts"), self.scripts)
        self.crm_port, self.inv_port, self.admin_port, self.analytics_port = \
            sorted(free_ports(4))
        script = lambda name: os.path.join(self.scripts, name)  # noqa: E731
        # The seed's pipeline, as examples/local.lua declares it, on this junction's own
        # ports: tests override any part by name (apis.crm.count, sources.crm.topic,
        # pipelines.default.streams.customers.topic, ...).
        cfg = {
            "admin": {"listen": f"127.0.0.1:{self.admin_port}"},
            "analytics": {"listen": f"127.0.0.1:{self.analytics_port}"},
            "apis": {
                "crm": {"listen": f"127.0.0.1:{self.crm_port}", "script": script("crm.lua"),
                        "resource": "customers", "singular": "Customer"},
                "inventory": {"listen": f"127.0.0.1:{self.inv_port}",
                              "script": script("inventory.lua"),
                              "resource": "products", "singular": "Product"},
            },
            "sources": {
                "crm": {"url": f"http://127.0.0.1:{self.crm_port}/customers",
                        "topic": "customer_data", "script": script("map_customers.lua"),
                        "noun": "customer(s)"},
                "inventory": {"url": f"http://127.0.0.1:{self.inv_port}/products",
                              "topic": "inventory_data", "script": script("map_products.lua"),
                              "noun": "product(s)"},
            },
            "pipelines": {
                "default": {
                    "group_id": "junction-consumer",
                    "transform": "join.lua",
                    "streams": {"customers": {"topic": "customer_data", "changelog": "auto"}},
                    "tables": {"products": {"topic": "inventory_data"}},
                    "sinks": {"analytics": {
                        "type": "http",
                        "url": f"http://127.0.0.1:{self.analytics_port}/analytics"}},
                },
            },
            "kafka": {"brokers": BROKER},
            "redis": {"host": REDIS_HOST, "port": int(REDIS_PORT)},
        }
        deep_merge(cfg, overrides or {})
        # A bare file name is one of this junction's copy of the stock scripts.
        pipes = cfg.get("pipelines") or {}
        for pipe in pipes.values() if isinstance(pipes, dict) else pipes:
            t = pipe.get("transform")
            if isinstance(t, str) and "/" not in t:
                pipe["transform"] = script(t)
        self.config = os.path.join(tmp, "config.lua")
        with open(self.config, "w") as f:
            f.write("return " + lua_value(cfg) + "\n")
        self.log_path = os.path.join(tmp, "junction.log")
        self.env = junction_env(env)
        self.proc = None

    @property
    def crm(self):
        return f"http://127.0.0.1:{self.crm_port}"

    @property
    def inventory(self):
        return f"http://127.0.0.1:{self.inv_port}"

    @property
    def analytics(self):
        return f"http://127.0.0.1:{self.analytics_port}"

    @property
    def admin(self):
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self):
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([BINARY, self.command, "--config", self.config], cwd=ROOT,
                                     stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"junction exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if request(self.admin + "/healthz", timeout=1).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("junction did not answer /healthz within 10 s:\n" + self.logs())

    def logs(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("junction did not stop within %s s" % timeout)
        return self.proc.returncode

    def status(self):
        return request(self.admin + "/api/status").json()

    def metric(self, name, **labels):
        """Sum of the samples of metric `name` whose labels include `labels`."""
        text = request(self.admin + "/metrics").body.decode()
        total, found = 0.0, False
        for line in text.splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            series, value = line.rsplit(" ", 1)
            mname = series.split("{", 1)[0]
            if mname != name:
                continue
            if all(f'{k}="{v}"' in series for k, v in labels.items()):
                total += float(value)
                found = True
        return total if found else None


# Every secret a test hands a junction (tokens, passwords, header values: found in its
# config and environment by name, or registered with secret()). No log line, status page
# or metrics page of any junction of the suite may show one; Junctions checks every
# junction it started against all of them.
SECRETS = set()
SECRET_NAMES = ("token", "password", "secret", "authorization")


def secret(value):
    """Registers value as a secret of the suite and returns it."""
    SECRETS.add(value)
    return value


def collect_secrets(v, key=""):
    if isinstance(v, dict):
        for k, x in v.items():
            collect_secrets(x, str(k))
    elif isinstance(v, list):
        for x in v:
            collect_secrets(x, key)
    elif isinstance(v, str) and any(n in key.lower() for n in SECRET_NAMES) and len(v) >= 6:
        # "Bearer <token>": the token alone is the secret
        SECRETS.add(v.split(" ", 1)[1] if v.lower().startswith(("bearer ", "basic ")) else v)


def assert_no_secret_shown(j):
    if not SECRETS:
        return
    pages = []
    if j.proc and j.proc.poll() is None:
        for path in ("/api/status", "/metrics"):
            try:
                pages.append((path, request(j.admin + path, timeout=2).body.decode(errors="replace")))
            except OSError:
                pass
    for name, text in pages + [("log", j.logs() if os.path.exists(j.log_path) else "")]:
        for s in SECRETS:
            assert s not in text, f"a secret of the suite shows in junction's {name}"


class Junctions:
    """The junctions of one test (the make_junction fixture): make(overrides, env, start,
    command) starts one in a folder of its own under tmp_path; close() checks that none
    showed a secret and stops them all with SIGTERM, each of which must exit 0."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.started = []

    def __call__(self, overrides=None, env=None, start=True, command="api"):
        d = self.tmp_path / f"j{len(self.started)}"
        d.mkdir()
        collect_secrets(overrides or {})
        collect_secrets(env or {})
        j = Junction(str(d), overrides, env, command)
        self.started.append(j)
        return j.start() if start else j

    def close(self):
        for j in self.started:
            assert_no_secret_shown(j)
        # Stop in reverse order: a consumer still delivering needs its receiver.
        for j in reversed(self.started):
            if j.proc and j.proc.poll() is None:
                rc = j.stop()
                assert rc == 0, f"junction exited with {rc} on SIGTERM:\n{j.logs()}"
        for j in self.started:
            assert_no_secret_shown(j)


# ---- conditions that prove a role has settled ---------------------------------------

def producer_settled(j, source, published, timeout=30):
    """Waits (at most timeout seconds for each step) until source of `junction produce` j
    has had `published` records acknowledged by Kafka and then started two more cycles with
    nothing in flight to Kafka; says whether it got there with exactly `published`. A poll
    starts only once the previous one queued all it found, so a record the producer would
    still publish is by then in flight (not settled yet) or counted: "nothing more is
    published" is proven by the producer's own counters, not by time."""
    def status():
        return j.status()["producer"]
    if not wait_until(lambda: status()[source]["published"] >= published, timeout):
        return False
    polls = status()[source]["polls"]

    def two_more_cycles():
        st = status()
        return st[source]["polls"] >= polls + 2 and st["kafka"]["inflight"] == 0 and st
    st = wait_until(two_more_cycles, timeout)
    return bool(st) and st[source]["published"] == published


def committed_total(c):
    """The offsets consumer c committed, summed over the stream partitions it holds (each
    partition's count of messages settled)."""
    parts = c.status()["consumer"]["partitions"]
    return sum(max(x["committed"], 0) for x in parts)


def group_committed(group, topic, broker=BROKER):
    """The offsets `group` committed for each partition of `topic` ({partition: offset},
    -1 where none), asked of the brokers with Kafka's own tool (kcat cannot): /api/status
    shows only what a process committed itself."""
    libs = sorted(glob.glob(os.path.join(ROOT, ".cache", "kafka", "*", "libs")))
    assert libs, "Kafka's tools are not in .cache/kafka: run tools/services up"
    p = subprocess.run(["java", "-Xmx128m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
                        "-cp", os.path.join(libs[-1], "*"),
                        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
                        "--bootstrap-server", broker, "--describe", "--group", group],
                       capture_output=True, text=True, timeout=120)
    out = {}
    for line in p.stdout.splitlines():
        f = line.split()
        if len(f) >= 5 and f[0] == group and f[1] == topic:
            out[int(f[2])] = int(f[3]) if f[3].isdigit() else -1
    return out


def consumer_settled(consumers, stream_messages, tables=None, sinks=1, group=None):
    """Whether the group of `consumers` (of one pipeline each: the first of each process)
    has settled: every consumer read at least tables[input] messages of each table input
    (as labelled in junction_consumer_messages_total), and then has nothing pending or
    held and has delivered every record its transform produced to each of its `sinks`
    (None: records may go to some sinks only, or be refused, so that is not checked), and
    the group committed stream_messages, the stream's every message. Re-emitted records
    come from table messages, which were read before the rest was looked at: whatever the
    group would still deliver is then pending, held or merged and undelivered.
    stream_messages None leaves the commits out. The commits are those /api/status
    shows, what each process committed itself; with `group` ((group, topic)) they are
    asked of the brokers instead, for a group whose members may have been given
    partitions another member settled (they commit nothing of those themselves)."""
    for c in consumers:
        for name, n in (tables or {}).items():
            if (c.metric("junction_consumer_messages_total", topic=name) or 0) < n:
                return False
    committed = 0
    for c in consumers:
        st = c.status()["consumer"]
        if st["pending"] or st["held"]:
            return False
        if sinks is not None and st["delivered"] != sinks * st["merged"]:
            return False
        committed += sum(max(x["committed"], 0) for x in st["partitions"])
    if stream_messages is None:
        return True
    if group:
        committed = sum(max(o, 0) for o in group_committed(*group).values())
    return committed == stream_messages
