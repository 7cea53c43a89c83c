#!/usr/bin/env python3
"""Producer benchmark: `junction produce` publishing to the real Kafka from tools/services.

Prints, in one run:
  1. throughput when every record is new: N customers (default 100,000) served by
     `junction api`, one poll, every record mapped, hashed and published; records/s from
     the poll's start to its last delivery report, and the producer process's CPU time
     per record (its librdkafka threads included);
  2. the same N records fetched in pages of N/100 (GET ?offset=O&limit=L from
     `junction api`, the map script paging with stock.paging's offset helper: every
     page decoded whole and handed to the script's hooks);
  3. the CPU time of one 1000 + 10 record cycle, in steady state, with
     producer.publish_all = true (every record published every cycle, as the original),
     and with change detection (nothing changed: the API answers 304).

Usage: bench/producer.py [--records N] [--cycles C] [--only every|paged|steady]
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


def start(args, env, log, wrapper=()):
    p = subprocess.Popen(list(wrapper) + [BIN] + args, cwd=ROOT, env=dict(os.environ, **env),
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
      apis = {{
        crm = {{ listen = "127.0.0.1:{crm}", script = "scripts/crm.lua", count = {customers},
                 resource = "customers", singular = "Customer" }},
        inventory = {{ listen = "127.0.0.1:{inv}", script = "scripts/inventory.lua",
                       resource = "products", singular = "Product" }} }} }}""")
    p = start(["api", "--config", cfg], {}, log)
    wait_http(f"http://127.0.0.1:{crm}/customers?limit=1", p)
    return p, f"http://127.0.0.1:{crm}/customers", f"http://127.0.0.1:{inv}/products"


def run_producer(tmp, crm_url, inv_url, log, publish_all=False, inventory=True, interval=360,
                 wrapper=()):
    adm = free_port()
    tag = uuid.uuid4().hex[:8]
    cfg = config(tmp, f"produce{tag}.lua", f"""return {{
      log = {{ level = "warn" }},
      admin = {{ listen = "127.0.0.1:{adm}" }},
      producer = {{ poll_interval_ms = {interval}, publish_all = {str(publish_all).lower()} }},
      sources = {{
        crm = {{ url = "{crm_url}", topic = "bench_customers_{tag}",
                 script = "scripts/map_customers.lua", noun = "customer(s)" }},
        inventory = {{ enabled = {str(inventory).lower()}, url = "{inv_url}",
                       topic = "bench_products_{tag}", script = "scripts/map_products.lua",
                       noun = "product(s)" }} }} }}""")
    p = start(["produce", "--config", cfg], {}, log, wrapper)
    admin = f"http://127.0.0.1:{adm}"
    wait_http(admin + "/healthz", p)
    return p, admin


def run_paged_producer(tmp, crm_url, log, records, pages, interval=500):
    """A producer with one source, "paged", reading crm_url in `pages` pages."""
    adm = free_port()
    tag = uuid.uuid4().hex[:8]
    limit = max(1, records // pages)
    script = config(tmp, f"map_paged{tag}.lua", f"""local paging = require "stock.paging"
local M = {{}}
M.records, M.next = paging.offset {{ limit = {limit} }}
function M.map(c, ctx) return {{ key = tostring(c.id), value = c, headers = {{ source = ctx.source }} }} end
return M
""")
    cfg = config(tmp, f"paged{tag}.lua", f"""return {{
      log = {{ level = "warn" }},
      admin = {{ listen = "127.0.0.1:{adm}" }},
      sources = {{ paged = {{ url = "{crm_url}?limit={limit}", topic = "bench_paged_{tag}",
        script = "{script}", poll_interval_ms = {interval}, publish_all = true }} }} }}""")
    p = start(["produce", "--config", cfg], {}, log)
    admin = f"http://127.0.0.1:{adm}"
    wait_http(admin + "/healthz", p)
    return p, admin


def measure_cycles(prod, admin, source, log, n=3, timeout=300):
    """Mean seconds per cycle (poll start to last delivery report) and producer CPU
    seconds per cycle over n cycles after the first, which also pays for topic creation
    and the idempotent producer's start."""
    def cycles():
        return (metric(admin, "junction_producer_cycle_seconds_count", source=source),
                metric(admin, "junction_producer_cycle_seconds_sum", source=source))
    deadline = time.time() + timeout
    while cycles()[0] < 1:
        if time.time() > deadline or prod.poll() is not None:
            sys.exit("the producer did not finish a cycle; see " + log.name)
        time.sleep(0.02)
    n0, s0 = cycles()
    cpu0 = cpu_seconds(prod.pid)
    while cycles()[0] < n0 + n:
        if time.time() > deadline or prod.poll() is not None:
            sys.exit("the producer stalled; see " + log.name)
        time.sleep(0.02)
    n1, s1 = cycles()
    cpu = cpu_seconds(prod.pid) - cpu0
    return (s1 - s0) / (n1 - n0), cpu / (n1 - n0), int(n1 - n0)


def stop(p, timeout=30):
    p.terminate()
    p.wait(timeout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100000)
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--pages", type=int, default=100)
    ap.add_argument("--only", choices=["every", "paged", "steady"])
    ap.add_argument("--callgrind", type=int, default=0, metavar="N",
                    help="also run one cycle of N records (every one published) under "
                         "valgrind --tool=callgrind and print instructions per record")
    a = ap.parse_args()
    if not os.access(BIN, os.X_OK):
        sys.exit(f"{BIN} not found; build it: cmake -S . -B build && cmake --build build")
    subprocess.run([os.path.join(ROOT, "tools", "services"), "up"], check=True,
                   stdout=subprocess.DEVNULL)
    tmp = tempfile.mkdtemp(prefix="junction-bench-")
    log = open(os.path.join(tmp, "log.txt"), "w")
    print(f"== producer benchmark ({os.cpu_count()} CPUs, Kafka on 127.0.0.1:9092, logs in {tmp})")

    # 1. Every record published: publish_all makes each cycle send all N records, the
    # same work as every record having changed. Cycles 2..4 are measured.
    if a.only in (None, "every", "paged"):
        api, crm_url, inv_url = run_api(tmp, a.records, log)
    if a.only in (None, "every"):
        prod, admin = run_producer(tmp, crm_url, inv_url, log, publish_all=True,
                                   inventory=False, interval=500)
        per_cycle, cpu, n = measure_cycles(prod, admin, "crm", log)
        stop(prod)
        print(f"every record published: {a.records} records per cycle in {per_cycle:.3f} s "
              f"(poll start to last delivery report, mean of {n} cycles)"
              f" = {a.records / per_cycle:,.0f} records/s; producer CPU {cpu:.3f} s per cycle "
              f"= {cpu / a.records * 1e6:.2f} us/record")

    # 2. The same records in pages: one request per page, each body decoded whole into
    # Lua and handed to records()/next() before its records are mapped.
    if a.only in (None, "paged"):
        prod, admin = run_paged_producer(tmp, crm_url, log, a.records, a.pages)
        per_cycle, cpu, n = measure_cycles(prod, admin, "paged", log)
        stop(prod)
        print(f"every record published, {a.pages} pages: {a.records} records per cycle in "
              f"{per_cycle:.3f} s (mean of {n} cycles) = {a.records / per_cycle:,.0f} records/s; "
              f"producer CPU {cpu:.3f} s per cycle = {cpu / a.records * 1e6:.2f} us/record")
    if a.only in (None, "every", "paged"):
        stop(api)

    # 3. Instructions: one cycle of N records, the whole process from start to exit
    # (start-up included, which N amortizes), as callgrind counts them: repeatable where
    # seconds on this machine are not.
    if a.callgrind:
        api, crm_url, inv_url = run_api(tmp, a.callgrind, log)
        out = os.path.join(tmp, "producer.callgrind")
        prod, admin = run_producer(tmp, crm_url, inv_url, log, publish_all=True,
                                   inventory=False, interval=3600000,
                                   wrapper=("valgrind", "--tool=callgrind",
                                            f"--callgrind-out-file={out}"))
        deadline = time.time() + 900
        def cycles_done():
            try:
                return metric(admin, "junction_producer_cycle_seconds_count", source="crm")
            except OSError:  # a slow answer: the loop is busy with the cycle under valgrind
                return 0
        while cycles_done() < 1:
            if time.time() > deadline or prod.poll() is not None:
                sys.exit("the producer under callgrind did not finish a cycle; see " + log.name)
            time.sleep(0.5)
        stop(prod, 300)  # valgrind writes its file on the way out
        stop(api)
        ann = subprocess.run(["callgrind_annotate", out], capture_output=True, text=True).stdout
        total = next(int(line.split()[0].replace(",", "")) for line in ann.splitlines()
                     if "PROGRAM TOTALS" in line)
        print(f"callgrind, one cycle of {a.callgrind} records: {total / a.callgrind:,.0f} "
              f"instructions per record, start-up included; file {out}")
    if a.only not in (None, "steady"):
        return

    # 3. One 1000 + 10 cycle in steady state.
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
