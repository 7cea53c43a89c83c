#!/usr/bin/env bash
# The short k6 load test (about 20 s at 100 virtual users per API) against a freshly
# started `junction api` on free ports, with the original thresholds: p95 < 500 ms,
# failures < 1 %, checks > 99 %. k6 exits non-zero when a threshold is crossed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${JUNCTION_BIN:-$root/build/junction}
cd "$root"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
crm=$(free_port) inv=$(free_port) adm=$(free_port) k1port=$(free_port) k2port=$(free_port)
log=$(mktemp)
JUNCTION_CRM_LISTEN=127.0.0.1:$crm JUNCTION_INVENTORY_LISTEN=127.0.0.1:$inv \
  JUNCTION_ADMIN_LISTEN=127.0.0.1:$adm "$bin" api >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$adm/healthz" >/dev/null && break
  sleep 0.1
done

tools/k6 version >/dev/null # builds k6 once, outside the timed runs
export K6_PROFILE=short K6_NO_USAGE_REPORT=true
# Each k6 gets its own REST API port; both would take 6565 otherwise.
CRM_URL=http://127.0.0.1:$crm tools/k6 run -q --no-color --address 127.0.0.1:$k1port k6/crm.js &
k1=$!
INVENTORY_URL=http://127.0.0.1:$inv tools/k6 run -q --no-color --address 127.0.0.1:$k2port k6/inventory.js &
k2=$!
rc=0
wait $k1 || rc=$?
wait $k2 || rc=$?
kill -TERM $pid
wait $pid || { echo "junction exited with $? after SIGTERM"; cat "$log"; exit 1; }
exit $rc
