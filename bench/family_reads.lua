-- wrk script for bench/ops.py: GET /families/{id} for random ids read from $QAMQOR_IDS (or, with
-- $QAMQOR_FIXED_PATH, that one path), and a JSON summary (latency percentiles in ms, requests,
-- errors) as the last line of output.
local fixed = os.getenv("QAMQOR_FIXED_PATH")
local ids = {}
if not fixed then
  for line in io.lines(os.getenv("QAMQOR_IDS")) do ids[#ids + 1] = line end
end

function setup(thread)
  thread:set("seed", math.random(1, 2 ^ 30))
end

function init(args)
  math.randomseed(seed or os.time())
end

function request()
  if fixed then return wrk.format("GET", fixed) end
  return wrk.format("GET", "/families/" .. ids[math.random(#ids)])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.2f, "errors": %d, "non_2xx": %d, "p50_ms": %.1f, '
      .. '"p90_ms": %.1f, "p99_ms": %.1f, "max_ms": %.1f}\n',
    summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.timeout,
    e.status, latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3))
end
