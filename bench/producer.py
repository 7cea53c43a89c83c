#!/usr/bin/env python3
"""Producer benchmark: `junction produce` publishing to the real Kafka from tools/services.

Prints, in one run:
  1. throughput when every record is new: N customers (default 100,000) served by
     `junction api`, one poll, every record mapped, hashed and published; records/s from
     the poll's start to its last delivery report, and the producer process's CPU time
     per record (its librdkafka threads included);
  2. the CPU time of one 1000 + 10 record cycle, in steady state, with
     producer.publish_all = true (every record published every cycle, as the original),
     and with change detection (nothing changed: the API answers 304).

Usage: bench/producer.py [--records N] [--cycles C]
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.environ.get("JUNCTION_BIN", os.path.join(ROOT, "build", "junction"))
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def metric(admin, name, **labels):
    text = urllib.request.urlopen(admin + "/metrics", timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            series, value = line.rsplit(" ", 1)
            if all(f'{k}="{v}"' in series for k, v in labels.items()):
                total += float(value)
    return total


def start(args, env, log):
    p = subprocess.Popen([BIN] + args, cwd=ROOT, env=dict(os.environ, **env),
                         stdout=log, stderr=subprocess.STDOUT)
    return p


def wait_http(url, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{url}: the process exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{url} did not answer within {timeout} s")


def config(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def run_api(tmp, customers, log):
    crm, inv, adm = free_port(), free_port(), free_port()
    cfg = config(tmp, f"api{customers}.lua", f"""return {{
      log = {{ level = "warn" }},
      admin = {{ listen = "127.0.0.1:{adm}" }},
      api = {{ crm = {{ listen = "127.0.0.1:{crm}", count = {customers} }},
               inventory = {{ listen = "127.0.0.1:{inv}" }} }} }}""")
    p = start(["api", "--config", cfg], {}, log)
    wait_http(f"http://127.0.0.1:{crm}/customers?limit=1", p)
    return p, f"http://127.0.0.1:{crm}/customers", f"http://127.0.0.1:{inv}/products"


def run_producer(tmp, crm_url, inv_url, log, publish_all=False, inventory=True, interval=360):
    adm = free_port()
    tag = uuid.uuid4().hex[:8]
    cfg = config(tmp, f"produce{tag}.lua", f"""return {{
      log = {{ level = "warn" }},
      admin = {{ listen = "127.0.0.1:{adm}" }},
      producer = {{ poll_interval_ms = {interval}, publish_all = {str(publish_all).lower()},
        crm = {{ url = "{crm_url}", topic = "bench_customers_{tag}" }},
        inventory = {{ enabled = {str(inventory).lower()}, url = "{inv_url}",
                       topic = "bench_products_{tag}" }} }} }}""")
    p = start(["produce", "--config", cfg], {}, log)
    admin = f"http://127.0.0.1:{adm}"
    wait_http(admin + "/healthz", p)
    return p, admin


def stop(p):
    p.terminate()
    p.wait(30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100000)
    ap.add_argument("--cycles", type=int, default=20)
    a = ap.parse_args()
    if not os.access(BIN, os.X_OK):
        sys.exit(f"{BIN} not found; build it: cmake -S . -B build && cmake --build build")
    subprocess.run([os.path.join(ROOT, "tools", "services"), "up"], check=True,
                   stdout=subprocess.DEVNULL)
    tmp = tempfile.mkdtemp(prefix="junction-bench-")
    log = open(os.path.join(tmp, "log.txt"), "w")
    print(f"== producer benchmark ({os.cpu_count()} CPUs, Kafka on 127.0.0.1:9092, logs in {tmp})")

    # 1. Every record published: publish_all makes each cycle send all N records, the
    # same work as every record having changed. The first cycle also pays for topic
    # creation and the idempotent producer's start, so cycles 2..4 are measured.
    api, crm_url, inv_url = run_api(tmp, a.records, log)
    prod, admin = run_producer(tmp, crm_url, inv_url, log, publish_all=True, inventory=False,
                               interval=500)
    def cycles():
        return (metric(admin, "junction_producer_cycle_seconds_count", source="crm"),
                metric(admin, "junction_producer_cycle_seconds_sum", source="crm"))
    deadline = time.time() + 300
    while cycles()[0] < 1:
        if time.time() > deadline or prod.poll() is not None:
            sys.exit("the producer did not finish a cycle; see " + log.name)
        time.sleep(0.02)
    n0, s0 = cycles()
    cpu0 = cpu_seconds(prod.pid)
    while cycles()[0] < n0 + 3:
        if time.time() > deadline or prod.poll() is not None:
            sys.exit("the producer stalled; see " + log.name)
        time.sleep(0.02)
    n1, s1 = cycles()
    cpu = cpu_seconds(prod.pid) - cpu0
    idle_s = 0.5 * (n1 - n0)  # the poll interval between cycles burns no CPU worth noting
    stop(prod)
    stop(api)
    per_cycle = (s1 - s0) / (n1 - n0)
    rate = a.records / per_cycle
    print(f"every record published: {a.records} records per cycle in {per_cycle:.3f} s "
          f"(poll start to last delivery report, mean of {int(n1 - n0)} cycles)"
          f" = {rate:,.0f} records/s; producer CPU {cpu / (n1 - n0):.3f} s per cycle = "
          f"{cpu / (n1 - n0) / a.records * 1e6:.2f} us/record")
    del idle_s

    # 2. One 1000 + 10 cycle in steady state.
    api, crm_url, inv_url = run_api(tmp, 1000, log)
    for publish_all in (True, False):
        prod, admin = run_producer(tmp, crm_url, inv_url, log, publish_all=publish_all,
                                   interval=100)
        # Let the first cycle (new records, connection set-up) pass.
        while metric(admin, "junction_producer_polls_total", source="crm") < 3:
            time.sleep(0.05)
        p0 = metric(admin, "junction_producer_polls_total", source="crm")
        c0 = cpu_seconds(prod.pid)
        while metric(admin, "junction_producer_polls_total", source="crm") < p0 + a.cycles:
            time.sleep(0.05)
        p1 = metric(admin, "junction_producer_polls_total", source="crm")
        c1 = cpu_seconds(prod.pid)
        stop(prod)
        mode = "publish_all (1010 records sent)" if publish_all else "change detection (304, nothing sent)"
        print(f"1000 + 10 cycle, {mode}: {(c1 - c0) / (p1 - p0) * 1000:.2f} ms CPU per cycle "
              f"over {int(p1 - p0)} cycles")
    stop(api)


if __name__ == "__main__":
    main()
