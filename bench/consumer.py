#!/usr/bin/env python3
"""Consumer benchmark: Kafka -> Redis de-duplication -> merge.lua -> analytics, with the
real Kafka and Redis from tools/services.

1. Fills a fresh customer topic with N customers (junction api + junction produce) and
   the product topic with 10 products (both compacted, as tools/services creates the
   seed's topics), then starts `junction analytics` and
   `junction consume` and times the consumer from its start until analytics holds N
   merged records: records/s, and the consumer's CPU time per record.
2. With --callgrind, runs the same consumer on a smaller topic under
   valgrind --tool=callgrind and reports instructions per message: all of them, and the
   host's own (everything outside lua_pcall, i.e. the script excluded).
3. With --processes N (N > 1), the steady state is the time every consumer of the group
   has partitions and is delivering: from the end of the start-up rebalances until one
   of them has delivered nothing for 300 ms (its partitions are drained; the others
   still work through theirs, which measures one process, not the group).

Usage: bench/consumer.py [--records N] [--processes N] [--callgrind M] [--plain-topics]
                         [--layout buckets|keys] [--consumer 'k = v'] [--perf]

JN_BENCH_LOG=info (or debug) sets the consumers' log level (warn by default); their logs
go to log.txt in the folder the benchmark names.

The consumer keeps its marks in the bucket layout unless --layout keys says otherwise
(README, "The consumer": a mark then lives between the TTL and 1.5 times it).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from producer import (BIN, ROOT, config, cpu_seconds, free_port, metric, start,  # noqa: E402
                      stop, wait_http)


LOG_LEVEL = os.environ.get("JN_BENCH_LOG", "warn")


def fill(tmp, log, n, tag, compacted=True):
    """Publishes n customers and 10 products to fresh topics; returns the topic names."""
    crm, inv, adm, padm = free_port(), free_port(), free_port(), free_port()
    api = start(["api", "--config", config(tmp, f"api{tag}.lua", f"""return {{
      log = {{ level = "warn" }}, admin = {{ listen = "127.0.0.1:{adm}" }},
      -- generating hundreds of thousands of customers takes longer than a call may
      scripts = {{ time_limit_ms = 120000 }},
      apis = {{
        crm = {{ listen = "127.0.0.1:{crm}", script = "scripts/crm.lua", count = {n},
                 resource = "customers", singular = "Customer" }},
        inventory = {{ listen = "127.0.0.1:{inv}", script = "scripts/inventory.lua",
                       resource = "products", singular = "Product" }} }} }}""")], {}, log)
    wait_http(f"http://127.0.0.1:{crm}/customers?limit=1", api)
    topics = (f"bench_c_{tag}", f"bench_p_{tag}")
    # As tools/services creates the seed's customer_data and inventory_data: compacted,
    # six partitions (the consumer then restores its join state from the topic itself).
    # --plain-topics leaves them to the broker's auto-creation (not compacted: the
    # consumer then writes every customer to a changelog topic too).
    for t in topics if compacted else ():
        subprocess.run([os.path.join(ROOT, "tools", "services"), "create-topic", t,
                        "cleanup.policy=compact"], check=True, stdout=subprocess.DEVNULL)
    prod = start(["produce", "--config", config(tmp, f"prod{tag}.lua", f"""return {{
      log = {{ level = "warn" }}, admin = {{ listen = "127.0.0.1:{padm}" }},
      producer = {{ poll_interval_ms = 3600000 }},
      sources = {{
        crm = {{ url = "http://127.0.0.1:{crm}/customers", topic = "{topics[0]}",
                 script = "scripts/map_customers.lua", noun = "customer(s)" }},
        inventory = {{ url = "http://127.0.0.1:{inv}/products", topic = "{topics[1]}",
                       script = "scripts/map_products.lua", noun = "product(s)" }} }} }}""")],
                 {}, log)
    admin = f"http://127.0.0.1:{padm}"
    wait_http(admin + "/healthz", prod)
    while metric(admin, "junction_producer_records_total", result="published") < n + 10:
        time.sleep(0.1)
    stop(prod)
    stop(api)
    return topics


def analytics_stats(url):
    return json.loads(urllib.request.urlopen(url + "/analytics/stats", timeout=5).read())


def analytics_records(url):
    """Distinct customers at analytics: a re-emitted merge (a product arriving after its
    customers) is not progress."""
    return analytics_stats(url)["distinct_ids"]


def service_pid(name):
    """The pid tools/services wrote for Kafka or Redis, or None."""
    try:
        with open(os.path.join(ROOT, ".services", name, f"{name}.pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def peak_rss_mib(pid):
    """The process's peak resident memory (VmHWM), in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_of(consumers, others):
    """CPU seconds used so far by the consumers (together) and each other process."""
    out = {"consumer": sum(cpu_seconds(c.pid) for c in consumers)}
    for name, pid in others.items():
        try:
            out[name] = cpu_seconds(pid) if pid else 0.0
        except OSError:
            out[name] = 0.0
    return out


def run_consumer(tmp, log, topics, n, wrapper=(), extra="", processes=1, layout="buckets",
                 transform="scripts/join.lua"):
    aport, aadm = free_port(), free_port()
    ana = start(["analytics", "--config", config(tmp, f"ana{aport}.lua", f"""return {{
      log = {{ level = "warn" }}, admin = {{ listen = "127.0.0.1:{aadm}" }},
      analytics = {{ listen = "127.0.0.1:{aport}" }} }}""")], {}, log)
    aurl = f"http://127.0.0.1:{aport}"
    wait_http(aurl + "/analytics/stats", ana)
    group = f"bench_{uuid.uuid4().hex[:8]}"
    admins = [free_port() for _ in range(processes)]
    cfgs = [config(tmp, f"cons{aport}_{i}.lua", f"""return {{
      log = {{ level = "{LOG_LEVEL}" }}, admin = {{ listen = "127.0.0.1:{admins[i]}" }},
      consumer = {{ dead_letter_topic = "bench_dead", hold_ms = 200, dedupe_layout = "{layout}",
        {extra} }},
      pipelines = {{ default = {{
        group_id = "{group}", transform = "{transform}",
        streams = {{ customers = {{ topic = "{topics[0]}", changelog = "auto" }} }},
        tables = {{ products = "{topics[1]}" }},
        sinks = {{ analytics = {{ type = "http", url = "{aurl}/analytics" }} }} }} }} }}""")
            for i in range(processes)]

    def all_assigned():
        """Whether every consumer has partitions: the group's start-up rebalances are
        over, and what follows is the steady state."""
        if processes == 1:
            return True
        try:
            return all(json.loads(urllib.request.urlopen(
                f"http://127.0.0.1:{port}/api/status", timeout=2).read())["consumer"]["partitions"]
                for port in admins)
        except (OSError, KeyError, ValueError):
            return False
    # A service whose pid file is missing (started by another checkout's tools/services,
    # say) is left out rather than shown as 0 us.
    others = {name: pid for name, pid in (("analytics", ana.pid), ("redis", service_pid("redis")),
                                          ("kafka broker", service_pid("kafka"))) if pid}
    t0 = time.time()
    cons = [subprocess.Popen(list(wrapper) + [BIN, "consume", "--config", cfg], cwd=ROOT,
                             stdout=log, stderr=subprocess.STDOUT) for cfg in cfgs]
    deadline = time.time() + 1800
    first = None  # (time, records, cpu of each process) once records flow
    first_record = None  # seconds from the consumers' start to the first record at analytics
    end = None    # the same when one of several consumers ran out of work
    samples = {}  # time -> (time, records, cpu) while several consumers work
    progress = {}  # admin port -> (delivered, time of the sample where it last grew)
    stall = (0.0, 0.0, 0)  # the longest time analytics saw no new record: (seconds, from, at)
    last = (None, 0)  # (time the count last grew, the count)
    while True:
        got = analytics_records(aurl)
        now = time.time()
        if got > last[1]:
            if last[0] is not None and now - last[0] > stall[0]:
                stall = (now - last[0], last[0] - t0, last[1])
            last = (now, got)
        if got >= n:
            break
        if first_record is None and got > 0:
            first_record = now - t0
        if first is None and got > 0 and all_assigned():
            first = (now, got, cpu_of(cons, others))
        if first and not end and processes > 1:
            samples[now] = (now, got, cpu_of(cons, others))
            for port in admins:
                d = metric(f"http://127.0.0.1:{port}", "junction_consumer_delivered_total")
                if port not in progress or d > progress[port][0]:
                    progress[port] = (d, now)
                elif now - progress[port][1] > 0.3:
                    end = samples[progress[port][1]]
        if time.time() > deadline or any(c.poll() is not None for c in cons):
            sys.exit("the consumer did not deliver every record; see " + log.name)
        time.sleep(0.02)
    secs = time.time() - t0
    if not end:
        end = (time.time(), n, cpu_of(cons, others))
    st = analytics_stats(aurl)
    print(f"analytics: {st['records']} records received, {st['distinct_ids']} distinct ids, "
          f"{st['repeated_ids']} ids received more than once")
    cpu = sum(cpu_seconds(c.pid) for c in cons) if not wrapper else None
    sys_cpu = sum(sys_seconds(c.pid) for c in cons) if not wrapper else None
    rss = max(peak_rss_mib(c.pid) for c in cons) if not wrapper else None
    lua = metric(f"http://127.0.0.1:{admins[0]}", "junction_script_memory_bytes") / 2**20
    # The host's join (a transform declaring M.join, as scripts/join.lua does): its state
    # lives outside the scripts' Lua state.
    join = (metric(f"http://127.0.0.1:{admins[0]}", "junction_join_bytes"),
            metric(f"http://127.0.0.1:{admins[0]}", "junction_join_records"))
    for c in cons:
        stop(c)
    stop(ana)
    if wrapper or first is None:
        return secs, (cpu, sys_cpu), None
    steady = {"seconds": end[0] - first[0], "records": end[1] - first[1], "cut": end[1] < n,
              "cpu": {k: end[2][k] - first[2][k] for k in end[2]}, "rss": rss,
              "lua": lua, "join": join, "first_record": first_record, "stall": stall}
    return secs, (cpu, sys_cpu), steady


def sys_seconds(pid):
    """The kernel's share of a process's CPU time (system calls: sockets, epoll)."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[12]) / os.sysconf("SC_CLK_TCK")


def peak_snapshot(report):
    """The detailed snapshot ms_print marks as the peak, without the graph before it."""
    lines = report.splitlines()
    peak = next((i for i, line in enumerate(lines) if "(peak)" in line), None)
    if peak is None:
        return report
    out = []
    for line in lines[peak - 3:]:
        if out and line.startswith("-----") and len(out) > 8:
            break
        out.append(line)
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100000)
    ap.add_argument("--callgrind", type=int, default=0)
    ap.add_argument("--layout", choices=("buckets", "keys"), default="buckets",
                    help="how the consumer keeps its marks in Redis (consumer.dedupe_layout); "
                         "buckets, the faster, by default")
    ap.add_argument("--processes", type=int, default=1,
                    help="junction consume processes in one group (one per core: 2)")
    ap.add_argument("--consumer", default="",
                    help="more consumer settings as Lua fields, e.g. 'batch_size = 1000'")
    ap.add_argument("--transform", default="scripts/join.lua",
                    help="the pipeline's transform (default: the seed's, scripts/join.lua)")
    ap.add_argument("--perf", action="store_true",
                    help="run the timed consumer under perf record (user-space cycles) and "
                         "print its top functions: the real CPU's profile, where callgrind's "
                         "emulated CPU lacks SHA-NI and similar extensions")
    ap.add_argument("--massif", action="store_true",
                    help="run the timed consumer under valgrind's massif and print its peak "
                         "heap by allocation site: what the peak RSS is made of")
    ap.add_argument("--plain-topics", action="store_true",
                    help="topics the broker auto-creates (not compacted) instead of compacted ones")
    a = ap.parse_args()
    subprocess.run([os.path.join(ROOT, "tools", "services"), "up"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["redis-cli", "FLUSHALL"], stdout=subprocess.DEVNULL)
    tmp = tempfile.mkdtemp(prefix="junction-bench-")
    log = open(os.path.join(tmp, "log.txt"), "w")
    print(f"== consumer benchmark ({os.cpu_count()} CPUs, logs in {tmp})")
    topics = fill(tmp, log, a.records, uuid.uuid4().hex[:8], not a.plain_topics)
    perf_out = os.path.join(tmp, "perf.data")
    massif_out = os.path.join(tmp, "massif.out")
    wrapper = ("perf", "record", "-e", "cycles:u", "-F", "2000", "-o", perf_out) if a.perf else ()
    if a.massif:
        wrapper = ("valgrind", "--tool=massif", "--threshold=0.5", f"--massif-out-file={massif_out}")
    secs, (cpu, sys_cpu), steady = run_consumer(tmp, log, topics, a.records, extra=a.consumer,
                                     processes=a.processes, wrapper=wrapper, layout=a.layout,
                                     transform=a.transform)
    print(f"consumer processes: {a.processes}; marks in Redis: {a.layout}")
    if a.massif:
        time.sleep(2)
        rep = subprocess.run(["ms_print", "--threshold=0.5", massif_out], capture_output=True,
                             text=True).stdout
        print(peak_snapshot(rep))
        return
    if a.perf:
        time.sleep(1)
        rep = subprocess.run(["perf", "report", "-i", perf_out, "--stdio", "--no-children",
                              "--sort", "dso,symbol", "--percent-limit", "0.7"],
                             capture_output=True, text=True).stdout
        print("\n".join(line for line in rep.splitlines() if line and not line.startswith("#")))
        return
    print(f"end to end: {a.records} records in {secs:.2f} s = {a.records / secs:,.0f} records/s "
          f"(consumer start, group join included, to the last record at analytics); consumer "
          f"CPU {cpu:.2f} s = {cpu / a.records * 1e6:.1f} us/record")
    print(f"of which in the kernel (system calls): {sys_cpu:.2f} s = "
          f"{sys_cpu / a.records * 1e6:.1f} us/record")
    if steady and steady["first_record"] is not None:
        print(f"first record at analytics {steady['first_record']:.2f} s after the consumers "
              f"started")
    if steady and steady["stall"][0] > 0:
        sec, at, count = steady["stall"]
        print(f"longest wait for the next record at analytics: {sec:.2f} s, from {at:.2f} s after "
              f"the start with {count} records delivered")
    if steady and not (steady["records"] > 0 and steady["seconds"] > 0):
        # Every consumer assigned only when one of them had nothing left to do: there was
        # no time in which all of them worked, so the end-to-end figure is the one to read.
        print("steady state: none (the consumers were never all assigned and working at "
              "once; read the end-to-end figure)")
    elif steady:
        r, t = steady["records"], steady["seconds"]
        until = ("the last before one of the consumers ran out of work" if steady["cut"]
                 else "the last")
        print(f"steady state: {r} records in {t:.2f} s = {r / t:,.0f} records/s (first record "
              f"at analytics, every consumer assigned, to {until}); CPU per record: " + ", ".join(
                  f"{k} {v / r * 1e6:.1f} us" for k, v in steady["cpu"].items()))
        jbytes, jrecords = steady["join"]
        joined = (f"; the host's join: {jbytes / 2**20:.0f} MiB for {jrecords:,.0f} records, "
                  f"{jbytes / jrecords:.0f} bytes each" if jrecords else "")
        print(f"peak RSS of a consumer: {steady['rss']:.0f} MiB (its scripts' Lua state at the "
              f"end: {steady['lua']:.0f} MiB{joined})")
    if a.callgrind:
        subprocess.run(["redis-cli", "FLUSHALL"], stdout=subprocess.DEVNULL)
        topics = fill(tmp, log, a.callgrind, uuid.uuid4().hex[:8], not a.plain_topics)
        out = os.path.join(tmp, "callgrind.out")
        run_consumer(tmp, log, topics, a.callgrind, layout=a.layout, extra=a.consumer,
                     transform=a.transform, wrapper=("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"))
        time.sleep(2)
        ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", out],
                             capture_output=True, text=True).stdout
        def ir(pattern):
            for line in ann.splitlines():
                if re.search(pattern, line):
                    return int(line.split()[0].replace(",", ""))
            return 0
        total = ir(r"PROGRAM TOTALS")
        script = ir(r"\?\?\?:lua_pcallk ")
        print(f"callgrind, {a.callgrind} messages: {total / a.callgrind:,.0f} instructions per "
              f"message in all, {(total - script) / a.callgrind:,.0f} outside lua_pcall (host), "
              f"{script / a.callgrind:,.0f} inside (scripts); file {out}")


if __name__ == "__main__":
    main()
