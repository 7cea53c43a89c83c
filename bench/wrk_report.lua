-- wrk script used by bench/http.sh: after a run, prints one machine-parseable
-- line so the benchmark script does not have to scrape wrk's human summary
-- (whose units change between us/ms/s and k/M from run to run).
--
-- Output (one line, space-separated key=value, latencies in milliseconds):
--   WRK_RESULT requests=N duration_s=S rps=R p50_ms=A p95_ms=B p99_ms=C
--     err_connect=N err_read=N err_write=N err_status=N err_timeout=N
--
-- Only done() is defined: defining request()/response() would make wrk call Lua
-- on every request and slow the load generator down, skewing the comparison.

done = function(summary, latency, requests)
  -- wrk reports durations and latencies in microseconds.
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d duration_s=%.3f rps=%.1f p50_ms=%.3f p95_ms=%.3f p99_ms=%.3f " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    e.connect, e.read, e.write, e.status, e.timeout))
end
