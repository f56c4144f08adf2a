-- updates.lua: wrk script posting realistic @capgo/capacitor-updater update checks.
-- Usage: wrk -s updates.lua URL -- <app_id> <channel>...
-- Every thread counts answers that are not a 200 offering a bundle (error bodies included)
-- and done() prints "bad_answers=<n> checked=<n>".
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

local app, channels = "com.example.rel", { "production" }
counter, bad, checked = 0, 0, 0 -- globals: done() reads them with thread:get

function init(args)
  if #args >= 1 then app = args[1] end
  if #args >= 2 then
    channels = {}
    for i = 2, #args do table.insert(channels, args[i]) end
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  math.randomseed(os.time() + id * 7919)
end

local template = '{"platform":"android","device_id":"%08x-%04x-4%03x-8%03x-%012x","app_id":"%s","custom_id":"",' ..
  '"version_build":"1.0.0","version_code":"10","version_os":"14","version_name":"builtin",' ..
  '"plugin_version":"8.51.23","is_emulator":false,"is_prod":true,"defaultChannel":"%s","install_source":"google_play"}'

function request()
  counter = counter + 1
  local ch = channels[(counter % #channels) + 1]
  local body = string.format(template, math.random(0, 0x7fffffff), id, counter % 4096, math.random(0, 4095),
    counter, app, ch)
  return wrk.format(nil, "/updates", nil, body)
end

function response(status, headers, body)
  checked = checked + 1
  if status ~= 200 or body:find('"error"', 1, true) or not body:find('"url":"https://cdn.example.com/', 1, true) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local b, c = 0, 0
  for _, t in ipairs(threads) do
    b = b + t:get("bad")
    c = c + t:get("checked")
  end
  io.write(string.format("bad_answers=%d checked=%d\n", b, c))
end
