"""Fixtures for end-to-end tests: each test starts the real build/junction binary on
free loopback ports with its own config and scripts, and talks to it over sockets."""
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

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


def redis_cli(*args):
    return subprocess.run(["redis-cli", "-h", REDIS_HOST, "-p", REDIS_PORT, *args],
                          capture_output=True, text=True, timeout=10).stdout.strip()


def junction_env(extra=None):
    """The environment a junction of a test runs with: this one, less the variables that
    would override the test's config, plus extra."""
    env = {k: v for k, v in os.environ.items() if k not in JUNCTION_OVERRIDES}
    env.update(extra or {})
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def deep_merge(base, extra):
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_merge(base[k], v)
        else:
            base[k] = v
    return base


def wait_for(fn, timeout):
    """fn() once it is truthy, polling every 20 ms for at most timeout seconds; else its
    last value."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.02)
    return fn()


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


class Junction:
    """A running `junction api` with its own ports, config, scripts and log file."""

    def __init__(self, tmp, overrides, env=None, command="api"):
        self.command = command
        self.tmp = tmp
        self.scripts = os.path.join(tmp, "scripts")
        shutil.copytree(os.path.join(ROOT, "scripts"), self.scripts)
        # free_port closes its socket, so two calls can return the same port: draw until
        # the four differ.
        ports = set()
        while len(ports) < 4:
            ports.add(free_port())
        self.crm_port, self.inv_port, self.admin_port, self.analytics_port = sorted(ports)
        cfg = {
            "admin": {"listen": f"127.0.0.1:{self.admin_port}"},
            "analytics": {"listen": f"127.0.0.1:{self.analytics_port}"},
            "api": {
                "crm": {"listen": f"127.0.0.1:{self.crm_port}",
                        "script": os.path.join(self.scripts, "crm.lua")},
                "inventory": {"listen": f"127.0.0.1:{self.inv_port}",
                              "script": os.path.join(self.scripts, "inventory.lua")},
            },
            "producer": {
                "crm": {"script": os.path.join(self.scripts, "map_customers.lua")},
                "inventory": {"script": os.path.join(self.scripts, "map_products.lua")},
            },
            "consumer": {"merge_script": os.path.join(self.scripts, "merge.lua")},
            "kafka": {"brokers": BROKER},
            "redis": {"host": REDIS_HOST, "port": int(REDIS_PORT)},
        }
        deep_merge(cfg, overrides or {})
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
# or metrics page of any junction of the suite may show one; make_junction checks every
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


@pytest.fixture
def make_junction(tmp_path):
    started = []

    def make(overrides=None, env=None, start=True, command="api"):
        d = tmp_path / f"j{len(started)}"
        d.mkdir()
        collect_secrets(overrides or {})
        collect_secrets(env or {})
        j = Junction(str(d), overrides, env, command)
        started.append(j)
        return j.start() if start else j

    yield make
    for j in started:
        assert_no_secret_shown(j)
    # Stop in reverse order: a consumer still delivering needs its receiver.
    for j in reversed(started):
        if j.proc and j.proc.poll() is None:
            rc = j.stop()
            assert rc == 0, f"junction exited with {rc} on SIGTERM:\n{j.logs()}"
    for j in started:
        assert_no_secret_shown(j)


@pytest.fixture
def junction(make_junction):
    return make_junction()


@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of the test's own, with a password for the default user and an ACL
    user that may only check and mark keys under processed:*."""
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cli = ["redis-cli", "-h", "127.0.0.1", "-p", str(port)]
    assert wait_for(lambda: subprocess.run(cli + ["PING"], capture_output=True,
                                           text=True).stdout.strip() == "PONG", 10)
    subprocess.run(cli + ["ACL", "SETUSER", "marker", "on", ">m4rker-pass", "resetkeys",
                          "~processed:*", "-@all", "+exists", "+mget", "+set"], check=True,
                   capture_output=True)
    subprocess.run(cli + ["CONFIG", "SET", "requirepass", "d3fault-pass"], check=True,
                   capture_output=True)
    yield port, cli + ["--no-auth-warning", "-a", "d3fault-pass"]
    proc.kill()
    proc.wait()
