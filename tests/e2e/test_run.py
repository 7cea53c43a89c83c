"""End-to-end tests of `junction run`: every role in one process, with the real Kafka and
Redis from tools/services. `--until-idle` runs are bounded, so each test runs the binary
to completion and reads its one-line summary; each uses its own ports, topics and
consumer group, and starts from an empty Redis."""
import os
import re
import signal
import socket
import subprocess
import time
import uuid

import pytest

from junction_test import BINARY, BROKER, ROOT, deep_merge, free_port, redis_cli, request

SUMMARY = re.compile(r"published=(\d+) duplicates=(\d+) merged=(\d+) delivered=(\d+) "
                     r"dead_lettered=(\d+) lost=(\d+) seconds=(\d+(?:\.\d+)?)")


@pytest.fixture(scope="module", autouse=True)
def services_up():
    subprocess.run([os.path.join(ROOT, "tools", "services"), "up"], check=True,
                   stdout=subprocess.DEVNULL)


def config(overrides=None):
    """A config for `junction run` on free ports, with its own topics and group (the
    fixture gives the admin its port)."""
    tag = uuid.uuid4().hex[:8]
    crm, inv, ana = free_port(), free_port(), free_port()
    cfg = {
        "analytics": {"listen": f"127.0.0.1:{ana}"},
        "apis": {"crm": {"listen": f"127.0.0.1:{crm}"},
                 "inventory": {"listen": f"127.0.0.1:{inv}"}},
        "producer": {"poll_interval_ms": 200},
        "sources": {"crm": {"url": f"http://127.0.0.1:{crm}/customers",
                            "topic": f"customer_data_{tag}"},
                    "inventory": {"url": f"http://127.0.0.1:{inv}/products",
                                  "topic": f"inventory_data_{tag}"}},
        "consumer": {"dead_letter_topic": f"dead_letter_{tag}", "hold_ms": 1000},
        "pipelines": {"default": {
            "group_id": f"group_{tag}",
            "streams": {"customers": {"topic": f"customer_data_{tag}"}},
            "tables": {"products": {"topic": f"inventory_data_{tag}"}},
            "sinks": {"analytics": {"url": f"http://127.0.0.1:{ana}/analytics"}}}},
        "kafka": {"brokers": BROKER},
    }
    return deep_merge(cfg, overrides or {})


@pytest.fixture
def run(make_junction):
    """Returns run(args, overrides) -> (returncode, stdout, stderr, seconds): one
    `junction run` to completion."""
    redis_cli("FLUSHALL")

    def go(args=(), overrides=None, timeout=120):
        j = make_junction(config(overrides), start=False, command="run")
        started = time.time()
        p = subprocess.run([BINARY, "run", "--config", j.config, *args], cwd=ROOT,
                           capture_output=True, text=True, timeout=timeout, env=j.env)
        return p.returncode, p.stdout, p.stderr, time.time() - started

    return go


def summary(stdout):
    """The summary must be the only thing on stdout, exactly one line."""
    lines = stdout.splitlines()
    assert len(lines) == 1, stdout
    m = SUMMARY.fullmatch(lines[0])
    assert m, lines[0]
    keys = ["published", "duplicates", "merged", "delivered", "dead_lettered", "lost"]
    out = dict(zip(keys, map(int, m.groups()[:6])))
    out["seconds"] = float(m.group(7))
    return out


def test_until_idle_delivers_1000_customers_and_exits_0(run):
    rc, out, err, secs = run(["--until-idle"])
    assert rc == 0, err[-3000:]
    s = summary(out)
    assert s["delivered"] == 1000 and s["lost"] == 0, (s, err[-3000:])
    assert s["published"] == 1010 and s["duplicates"] == 0 and s["dead_lettered"] == 0, s
    assert s["merged"] >= s["delivered"], s
    assert secs < 60 and s["seconds"] <= secs + 1, (secs, s)
    # Not a terminal: plain progress lines on stderr, never the in-place form.
    progress = [line for line in err.splitlines() if line.startswith("junction: ")]
    assert progress and "published 1010" in progress[-1] and "lag 0" in progress[-1], err
    assert "\r" not in err


def test_records_sets_the_volume_and_quiet_hides_progress(run):
    rc, out, err, _ = run(["--until-idle", "--records", "3000", "--quiet"])
    assert rc == 0, err[-3000:]
    s = summary(out)
    assert s["delivered"] == 3000 and s["lost"] == 0 and s["published"] == 3010, s
    assert not [line for line in err.splitlines() if line.startswith("junction: ")], err


def test_timeout_gives_up_with_the_summary_and_exits_1(run):
    # The producer polls a port nobody listens on: nothing ever arrives.
    rc, out, err, secs = run(["--until-idle", "--timeout", "3"],
                             {"sources": {"crm": {"url": f"http://127.0.0.1:{free_port()}/x"}}})
    assert rc == 1, err[-3000:]
    s = summary(out)
    assert s["lost"] == 1000 and s["delivered"] == 0, s
    assert 3 <= s["seconds"] < 6 and secs < 30, (s, secs)
    assert "not idle after" in err


def test_port_in_use_exits_naming_the_port_and_the_fix(run):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        rc, out, err, secs = run(["--until-idle"],
                                 {"apis": {"crm": {"listen": f"127.0.0.1:{port}"}}})
    assert rc != 0 and out == ""
    assert f"127.0.0.1:{port}" in err and "address already in use" in err, err
    assert "choose another port" in err, err
    assert secs < 10


def test_redis_unreachable_exits_quickly_naming_redis_and_the_fix(run):
    port = free_port()  # closed again: nothing listens there
    rc, out, err, secs = run(["--until-idle"], {"redis": {"port": port}})
    assert rc != 0 and out == ""
    assert f"junction: Redis at 127.0.0.1:{port} is not reachable; " \
           f"start it with tools/services up" in err, err
    assert secs < 15
    # The check comes before any role: nothing was started.
    assert "starting run" not in err, err


def test_kafka_unreachable_exits_quickly_naming_kafka_and_the_fix(run):
    port = free_port()
    rc, out, err, secs = run([], {"kafka": {"brokers": f"127.0.0.1:{port}"}})
    assert rc != 0 and out == ""
    assert f"junction: Kafka at 127.0.0.1:{port} is not reachable; " \
           f"start it with tools/services up" in err, err
    assert secs < 15


def test_sigint_stops_run_cleanly(make_junction):
    cfg = config()
    j = make_junction(cfg, command="run")  # started: the admin answers /healthz
    crm, ana = cfg["apis"]["crm"]["listen"], cfg["analytics"]["listen"]
    assert request(f"http://{crm}/customers?limit=1").status == 200
    assert request(f"http://{ana}/analytics/stats").status == 200
    assert j.stop(signal.SIGINT) == 0, j.logs()[-3000:]
    assert "stopped" in j.logs()


@pytest.mark.parametrize("args", [["api", "--until-idle"], ["consume", "--quiet"],
                                  ["produce", "--records", "5"],
                                  ["run", "--timeout", "5"], ["run", "--records", "-1"]])
def test_options_of_run_are_refused_elsewhere(args):
    p = subprocess.run([BINARY, *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    assert p.returncode == 2 and p.stderr.startswith("junction: "), p.stderr
