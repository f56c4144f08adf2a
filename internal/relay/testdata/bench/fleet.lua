-- wrk script for scripts/bench-fleet.sh: POST /updates from FLEET_DEVICES distinct device
-- ids, each sent once before any repeats (thread t of T sends ids t, t+T, t+2T, ...).
-- Bodies are built per request (a million pre-built bodies would be wrk's memory, not the
-- relay's). 70 % of devices on the default channel, 20 % beta, 10 % canary; a quarter run an
-- older version and get an offer, as in updates.lua.
-- Environment: BENCH_APP (app id), FLEET_DEVICES (distinct ids, default 1000000),
-- FLEET_THREADS (wrk -t, so that threads interleave their ids).

local app = os.getenv("BENCH_APP") or "com.example.bench"
local n = tonumber(os.getenv("FLEET_DEVICES") or "1000000")
local nthreads = 0

function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
end

function init(args)
  k = 0
  step = tonumber(os.getenv("FLEET_THREADS") or "1")
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json; charset=utf-8"
  wrk.headers["User-Agent"] = "CapacitorUpdater/8.51.23 (com.example.bench) android/14"
end

local function body(i)
  local ch, current
  local r = i % 100
  if r < 70 then ch = "" ; current = "1.1.0"
  elseif r < 90 then ch = "beta" ; current = "1.2.0"
  else ch = "canary" ; current = "1.3.0-rc.1" end
  if (i * 7) % 100 < 25 then current = "1.0.0" end
  local id = string.format("%08x-%04x-4%03x-8%03x-%012x", i * 2654435761 % 4294967296, i % 65536, i % 4096, (i * 3) % 4096, i)
  return string.format('{"platform":"android","device_id":"%s","app_id":"%s","custom_id":"","version_build":"1.0.0","version_code":"7","version_os":"14","version_name":"%s","plugin_version":"8.51.23","is_emulator":false,"is_prod":true,"install_source":"google_play","defaultChannel":"%s"}', id, app, current, ch)
end

function request()
  local i = ((tid - 1) + k * step) % n + 1
  k = k + 1
  return wrk.format(nil, "/updates", nil, body(i))
end

function done(summary, latency, requests)
  io.write(string.format("BENCH requests=%d duration_us=%d rps=%.0f p50_us=%d p99_us=%d errors=%d non2xx=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, summary.errors.status))
end
