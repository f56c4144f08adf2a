-- wrk script for scripts/bench-relay.sh: POST /updates with realistic Android 8.51.23 bodies.
-- 10,000 device ids of one app; 70 % on the default channel (production, which has an active
-- 30 % rollout), 20 % on beta, 10 % on canary; 60 % of devices already run the channel's
-- current version, 25 % an older one, 15 % the built-in assets (these two get offers, which
-- cost the relay one per-device lookup in the store).
-- Environment: BENCH_APP (app id), BENCH_DELAY_MS (mean per-connection pause between
-- requests, for the below-saturation latency run; 0 = saturate), BENCH_PAUSES ("random",
-- the default: exponentially distributed pauses, so that connections act as independent
-- devices and arrivals are close to a Poisson process; "fixed": every pause is exactly
-- BENCH_DELAY_MS, which keeps connections in lock-step and sends requests in bursts).

local app = os.getenv("BENCH_APP") or "com.example.bench"
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
local pauses = os.getenv("BENCH_PAUSES") or "random"
local bodies = {}
local n = 10000

local function body(i)
  local ch, current
  local r = i % 100
  if r < 70 then ch = "" ; current = "1.1.0"
  elseif r < 90 then ch = "beta" ; current = "1.2.0"
  else ch = "canary" ; current = "1.3.0-rc.1" end
  local v = (i * 7) % 100
  if v < 25 then current = "1.0.0" elseif v < 40 then current = "builtin" end
  local id = string.format("%08x-%04x-4%03x-8%03x-%012x", i * 2654435761 % 4294967296, i % 65536, i % 4096, (i * 3) % 4096, i)
  return string.format('{"platform":"android","device_id":"%s","app_id":"%s","custom_id":"","version_build":"1.0.0","version_code":"7","version_os":"14","version_name":"%s","plugin_version":"8.51.23","is_emulator":false,"is_prod":true,"install_source":"google_play","defaultChannel":"%s"}', id, app, current, ch)
end

for i = 1, n do bodies[i] = body(i) end

local counter = 0
local thread_offset = 0

function setup(thread)
  thread_offset = thread_offset + 1
  thread:set("offset", thread_offset * 3571)
end

function init(args)
  counter = offset or 0
  math.randomseed(counter)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json; charset=utf-8"
  wrk.headers["User-Agent"] = "CapacitorUpdater/8.51.23 (com.example.bench) android/14"
end

function request()
  counter = counter + 1
  return wrk.format(nil, "/updates", nil, bodies[(counter * 7919) % n + 1])
end

if delay_ms > 0 and pauses == "fixed" then
  function delay() return delay_ms end
elseif delay_ms > 0 then
  -- An exponential pause with mean delay_ms, rounded to the whole milliseconds wrk takes
  -- (it would truncate, lowering the mean); the cap (8 means) trims a tail of 0.03 %.
  function delay()
    local d = -delay_ms * math.log(1 - math.random())
    if d > 8 * delay_ms then d = 8 * delay_ms end
    return math.floor(d + 0.5)
  end
end

function done(summary, latency, requests)
  local non2xx = summary.errors.status
  io.write(string.format("BENCH requests=%d duration_us=%d rps=%.0f p50_us=%d p99_us=%d max_us=%d errors=%d non2xx=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), latency.max,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, non2xx))
end
