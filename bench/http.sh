#!/usr/bin/env bash
# HTTP throughput benchmark: junction's mock APIs against a Fastify 5 baseline,
# side by side in one run, on the same data and the same machine.
#
# What it does:
#   1. starts `build/junction api` (CRM on 127.0.0.1:8081, Inventory on :8082)
#   2. dumps its GET /customers and GET /products into temp files
#   3. starts bench/fastify/server.js on those files (127.0.0.1:9081 and :9082)
#   4. for each route and each server: a short wrk warm-up, then a measured wrk run
#      (bench/wrk_report.lua prints one parseable result line per run)
#   5. reads each server's VmRSS/VmHWM from /proc, prints a table and the
#      junction/fastify req/s ratio per route
# Everything it started is stopped on exit, error or Ctrl-C. Only 127.0.0.1 is used.
#
# Usage: bench/http.sh
# Environment (all optional):
#   BENCH_DURATION=15s     measured wrk run per server and route
#   BENCH_WARMUP=3s        unmeasured wrk run before each measured one
#   BENCH_CONNECTIONS=100  wrk -c
#   BENCH_THREADS=2        wrk -t
#   BENCH_TIMEOUT=2s       wrk --timeout: slower responses count as timeout errors
#   JUNCTION_BIN=build/junction
#   BENCH_TARGET_CMD='...' replaces `$JUNCTION_BIN api` on the "junction" side with
#                          any shell command serving the same API on 8081/8082.
#                          Used to validate this script before junction existed, e.g.
#     BENCH_TARGET_CMD='CRM_PORT=8081 INVENTORY_PORT=8082 exec node bench/fastify/server.js c.json p.json'
#   FASTIFY_CRM_PORT=9081 FASTIFY_INVENTORY_PORT=9082
#   BENCH_PIN=1            on 2+ CPUs: servers run on CPU 0 and wrk (one thread) on
#                          CPU 1, so the load generator does not steal the server's
#                          core and tail latency measures the server, not the
#                          scheduler. BENCH_PIN=0 lets everything float.
#
# Caveat: on a 2-core machine wrk and the server under test share the CPUs, so the
# absolute numbers are low and noisy; the junction/fastify ratio is the useful part.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

DURATION=${BENCH_DURATION:-15s}
WARMUP=${BENCH_WARMUP:-3s}
CONNECTIONS=${BENCH_CONNECTIONS:-100}
PIN=${BENCH_PIN:-1}
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
  SERVER_CPU=(taskset -c 0)
  WRK_CPU=(taskset -c 1)
  THREADS=${BENCH_THREADS:-1}
else
  PIN=0
  SERVER_CPU=()
  WRK_CPU=()
  THREADS=${BENCH_THREADS:-2}
fi
TIMEOUT=${BENCH_TIMEOUT:-2s}
JUNCTION_BIN=${JUNCTION_BIN:-$root/build/junction}
BENCH_TARGET_CMD=${BENCH_TARGET_CMD:-}
HOST=127.0.0.1
# junction's built-in default ports (the ones its k6 tests use too).
J_CRM_PORT=8081
J_INV_PORT=8082
F_CRM_PORT=${FASTIFY_CRM_PORT:-9081}
F_INV_PORT=${FASTIFY_INVENTORY_PORT:-9082}
LUA="$root/bench/wrk_report.lua"
FASTIFY_DIR="$root/bench/fastify"

say() { echo "== $*"; }
die() { echo "bench/http.sh: $*" >&2; exit 1; }

# --- preconditions, checked before anything is started --------------------------

for cmd in wrk curl node; do
  command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' not found (tools/setup installs it)"
done
if [ -z "$BENCH_TARGET_CMD" ] && [ ! -x "$JUNCTION_BIN" ]; then
  die "$JUNCTION_BIN not found; build it first: cmake -S . -B build && cmake --build build"
fi

# A stray server already on one of our ports would be benchmarked by mistake.
port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
for port in "$J_CRM_PORT" "$J_INV_PORT" "$F_CRM_PORT" "$F_INV_PORT"; do
  if port_busy "$port"; then die "something already listens on $HOST:$port; stop it first"; fi
done

# --- process management ----------------------------------------------------------

tmp=$(mktemp -d "${TMPDIR:-/tmp}/junction-bench.XXXXXX")
pgroups=()
wrk_pid=

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # Each server runs in its own process group (setsid), so wrappers such as
  # `bash -c` or `npm start` are stopped together with the real server.
  local pg i
  if [ -n "$wrk_pid" ]; then kill -TERM "$wrk_pid" 2>/dev/null || true; fi
  for pg in "${pgroups[@]}"; do kill -TERM -- "-$pg" 2>/dev/null || true; done
  for pg in "${pgroups[@]}"; do
    for ((i = 0; i < 50; i++)); do
      kill -0 -- "-$pg" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$pg" 2>/dev/null || true
  done
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_bg LOG CMD...: runs CMD detached in a new process group; sets $started.
# In a script without job control a background child is never a group leader,
# so setsid does not fork and $! is the new group's id.
start_bg() {
  local log=$1
  shift
  setsid "$@" >"$log" 2>&1 </dev/null &
  started=$!
  pgroups+=("$started")
}

# wait_ready NAME PGID LOG URL...: waits until every URL answers 2xx, failing early
# (with the server's log) if the server exits, and after 30 s at most.
wait_ready() {
  local name=$1 pg=$2 log=$3 url i
  shift 3
  for url in "$@"; do
    for ((i = 0; ; i++)); do
      curl -sf -o /dev/null --max-time 2 "$url" && break
      if ! kill -0 -- "-$pg" 2>/dev/null; then
        tail -n 20 "$log" >&2 || true
        die "$name exited before answering $url"
      fi
      ((i < 150)) || die "$name did not answer $url within 30 s"
      sleep 0.2
    done
  done
}

# run_wrk DURATION URL: one wrk run, output in $tmp/wrk.out.
# wrk runs in the background and is waited for, because bash defers a trap until
# a foreground child ends: a SIGTERM sent to this script alone (a CI timeout,
# `kill`) would otherwise wait out the whole run. `wait` returns at once instead,
# and cleanup stops wrk via $wrk_pid. Ctrl-C reaches wrk and the script alike.
run_wrk() {
  local rc=0
  "${WRK_CPU[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$1" --timeout "$TIMEOUT" -s "$LUA" "$2" >"$tmp/wrk.out" 2>&1 &
  wrk_pid=$!
  wait "$wrk_pid" || rc=$?
  wrk_pid=
  return "$rc"
}

# alive NAME PGID LOG: a server that died under load must not yield a silent
# result for the next run, so this is checked after every wrk run.
alive() {
  kill -0 -- "-$2" 2>/dev/null && return 0
  tail -n 20 "$3" >&2 || true
  die "$1 died during the benchmark"
}

# listener_pids PORT...: the processes that own the listening sockets, i.e. the
# real servers, whatever wrapper started them. Used for the RSS reading.
listener_pids() {
  local port
  for port in "$@"; do
    ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2
  done | sort -u
}

# rss_mib PID...: "now/peak" MiB, summed over the PIDs (VmRSS / VmHWM).
rss_mib() {
  local pid rss=0 hwm=0 r h
  for pid in "$@"; do
    r=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    h=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    rss=$((rss + ${r:-0}))
    hwm=$((hwm + ${h:-0}))
  done
  awk -v r="$rss" -v h="$hwm" 'BEGIN { printf "%.1f/%.1f", r / 1024, h / 1024 }'
}

# --- start junction and take its data -------------------------------------------

if [ -n "$BENCH_TARGET_CMD" ]; then
  say "junction side is BENCH_TARGET_CMD (not junction): $BENCH_TARGET_CMD"
  start_bg "$tmp/junction.log" bash -c "$BENCH_TARGET_CMD"
else
  say "starting $JUNCTION_BIN api"
  start_bg "$tmp/junction.log" "${SERVER_CPU[@]}" "$JUNCTION_BIN" api
fi
j_pg=$started
wait_ready junction "$j_pg" "$tmp/junction.log" \
  "http://$HOST:$J_CRM_PORT/customers" "http://$HOST:$J_INV_PORT/products"

curl -sf "http://$HOST:$J_CRM_PORT/customers" -o "$tmp/customers.json" || die "could not fetch junction's /customers"
curl -sf "http://$HOST:$J_INV_PORT/products" -o "$tmp/products.json" || die "could not fetch junction's /products"
# Fastify must serve exactly what junction serves; refuse to compare on bad data.
node -e '
  for (const f of process.argv.slice(1)) {
    const d = JSON.parse(require("fs").readFileSync(f, "utf8"));
    if (!Array.isArray(d) || d.length === 0) { console.error(f + ": not a non-empty JSON array"); process.exit(1); }
  }' "$tmp/customers.json" "$tmp/products.json" || die "junction returned unusable data"

# --- start Fastify on the same data ----------------------------------------------

if [ ! -d "$FASTIFY_DIR/node_modules/fastify" ]; then
  say "installing Fastify (npm ci in bench/fastify)"
  (cd "$FASTIFY_DIR" && npm ci --no-audit --no-fund >/dev/null)
fi
say "starting Fastify $(node -p 'require(process.argv[1]).version' "$FASTIFY_DIR/node_modules/fastify/package.json")"
start_bg "$tmp/fastify.log" "${SERVER_CPU[@]}" env CRM_PORT="$F_CRM_PORT" INVENTORY_PORT="$F_INV_PORT" \
  node "$FASTIFY_DIR/server.js" "$tmp/customers.json" "$tmp/products.json"
f_pg=$started
wait_ready fastify "$f_pg" "$tmp/fastify.log" \
  "http://$HOST:$F_CRM_PORT/customers" "http://$HOST:$F_INV_PORT/products"

# Same data, but maybe not the same bytes (key order, spacing); the body size
# drives throughput, so show it.
for route in customers products; do
  if [ "$route" = customers ]; then fp=$F_CRM_PORT; else fp=$F_INV_PORT; fi
  curl -sf "http://$HOST:$fp/$route" -o "$tmp/f_$route.json" || die "could not fetch fastify's /$route"
  jb=$(wc -c <"$tmp/$route.json")
  fb=$(wc -c <"$tmp/f_$route.json")
  if cmp -s "$tmp/$route.json" "$tmp/f_$route.json"; then
    say "/$route: identical bodies ($jb bytes)"
  else
    say "/$route: bodies differ in bytes (junction $jb, fastify $fb) but carry the same parsed data"
  fi
done

# --- measure -----------------------------------------------------------------------

if [ "$PIN" = 1 ]; then where="servers pinned to CPU 0, wrk to CPU 1"; else where="$(nproc) CPUs shared with the servers"; fi
say "wrk: $THREADS threads, $CONNECTIONS connections, ${WARMUP} warm-up + ${DURATION} measured per run, timeout $TIMEOUT; $where"

declare -A RPS P50 P95 P99 ERRS
for route in customers products; do
  # Alternate servers per route so drift over time (thermal, noisy neighbours)
  # hits both sides alike.
  for server in junction fastify; do
    if [ "$server" = junction ]; then pg=$j_pg log=$tmp/junction.log crm=$J_CRM_PORT inv=$J_INV_PORT
    else pg=$f_pg log=$tmp/fastify.log crm=$F_CRM_PORT inv=$F_INV_PORT; fi
    if [ "$route" = customers ]; then port=$crm; else port=$inv; fi
    url="http://$HOST:$port/$route"

    # Warm-up: lets V8 JIT-compile and both servers grow their buffers, so the
    # measured run is steady state rather than start-up.
    run_wrk "$WARMUP" "$url" || die "wrk warm-up against $url failed: $(cat "$tmp/wrk.out")"
    alive "$server" "$pg" "$log"

    run_wrk "$DURATION" "$url" || die "wrk against $url failed: $(cat "$tmp/wrk.out")"
    out=$(cat "$tmp/wrk.out")
    alive "$server" "$pg" "$log"
    line=$(grep '^WRK_RESULT ' <<<"$out") || die "no WRK_RESULT line from wrk: $out"
    echo "$server /$route: ${line#WRK_RESULT }"

    declare -A r=()
    for kv in ${line#WRK_RESULT }; do r[${kv%%=*}]=${kv#*=}; done
    [ "${r[requests]:-0}" -gt 0 ] || die "$server /$route: wrk completed no request"
    key="$server /$route"
    RPS[$key]=${r[rps]}
    P50[$key]=${r[p50_ms]}
    P95[$key]=${r[p95_ms]}
    P99[$key]=${r[p99_ms]}
    errs=0
    for k in err_connect err_read err_write err_status err_timeout; do errs=$((errs + ${r[$k]:-0})); done
    ERRS[$key]=$errs
    unset r
  done
done

# Memory after load: VmRSS is what the server holds now, VmHWM its peak.
# Without ss (iproute2) the group leader is measured, which is the server itself
# unless a wrapper such as `bash -c` did not exec it.
j_pids=$(listener_pids "$J_CRM_PORT" "$J_INV_PORT")
f_pids=$(listener_pids "$F_CRM_PORT" "$F_INV_PORT")
# shellcheck disable=SC2086 # word splitting of the PID list is intended
j_mem=$(rss_mib ${j_pids:-$j_pg})
# shellcheck disable=SC2086
f_mem=$(rss_mib ${f_pids:-$f_pg})

# --- report ------------------------------------------------------------------------

echo
fmt='%-9s %-11s %11s %9s %9s %9s %7s %18s\n'
# shellcheck disable=SC2059 # the format is a constant defined just above
printf "$fmt" server route "req/s" "p50 ms" "p95 ms" "p99 ms" errors "RSS MiB now/peak"
for route in customers products; do
  for server in junction fastify; do
    key="$server /$route"
    if [ "$server" = junction ]; then mem=$j_mem; else mem=$f_mem; fi
    # shellcheck disable=SC2059
    printf "$fmt" "$server" "/$route" "${RPS[$key]}" "${P50[$key]}" "${P95[$key]}" "${P99[$key]}" \
      "${ERRS[$key]}" "$mem"
  done
done
echo
for route in customers products; do
  awk -v r="/$route" -v j="${RPS[junction /$route]}" -v f="${RPS[fastify /$route]}" \
    'BEGIN { printf "junction/fastify req/s %-11s %.2fx\n", r, (f > 0 ? j / f : 0) }'
done
if [ -n "$BENCH_TARGET_CMD" ]; then
  echo "(junction side was BENCH_TARGET_CMD, not junction)"
fi
