-- wrk's script for the benchmark (bench/wrk.py): spreads wrk's threads over the addresses in
-- WRK_SPREAD ("host:port,host:port": thread i goes to address i mod n; unset: every thread goes
-- to the URL's host), and at the end writes one line of JSON with what wrk counted.

local spread = {}
for target in string.gmatch(os.getenv("WRK_SPREAD") or "", "[^,]+") do
  table.insert(spread, target)
end
local threads = 0

function setup(thread)
  if #spread > 0 then
    local host, port = string.match(spread[(threads % #spread) + 1], "^(.+):(%d+)$")
    thread.addr = wrk.lookup(host, port)[1]
  end
  threads = threads + 1
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"wrk": 1, "duration_us": %d, "requests": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}, "threads": %d}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    threads))
end
