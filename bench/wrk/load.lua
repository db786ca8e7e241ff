-- wrk script of bench_writes.py: each request takes the next line of the file
-- named by WRK_ITEMS ("<bearer token>\t<JSON body>[\t<path>]"), round-robin, each thread
-- from its own offset. WRK_METHOD and WRK_PATH name the request. Every thread
-- stops after WRK_MAX_REQUESTS responses (the run is bounded in count as well
-- as by wrk's -d duration). done() prints one line "WRK_JSON {...}".
local items_file = os.getenv("WRK_ITEMS")
local method = os.getenv("WRK_METHOD") or "POST"
local path = os.getenv("WRK_PATH") or "/api/v1/redemptions"
local max_requests = tonumber(os.getenv("WRK_MAX_REQUESTS") or "1000000")

local threads = {}
local items = {}
local counter = 0
local responses = 0
statuses = {}

function setup(thread)
  thread:set("thread_number", #threads)
  table.insert(threads, thread)
end

function init(args)
  if items_file then
    for line in io.lines(items_file) do
      local token, rest = line:match("^(%S*)\t(.*)$")
      local body, item_path = rest:match("^(.*)\t(/%S*)$")
      if body == nil then
        body = rest
      end
      table.insert(items, {token, body, item_path})
    end
  end
  counter = (thread_number or 0) * 7919
end

function request()
  counter = counter + 1
  if #items == 0 then
    return wrk.format(method, path)
  end
  local item = items[(counter % #items) + 1]
  local headers = {["Content-Type"] = "application/json"}
  if item[1] ~= "" then
    headers["Authorization"] = "Bearer " .. item[1]
  end
  if item[3] ~= nil then
    return wrk.format(method, item[3], headers, nil)
  end
  return wrk.format(method, path, headers, item[2])
end

function response(status, headers, body)
  responses = responses + 1
  statuses[status] = (statuses[status] or 0) + 1
  if responses >= max_requests then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses")
    for status, n in pairs(s) do
      counts[status] = (counts[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(counts) do
    table.insert(parts, string.format("\"%d\":%d", status, n))
  end
  local e = summary.errors
  io.write(string.format(
    "WRK_JSON {\"requests\":%d,\"duration_us\":%d,\"non2xx\":%d,\"connect_errors\":%d,\"read_errors\":%d," ..
    "\"write_errors\":%d,\"timeouts\":%d,\"p50_us\":%d,\"p90_us\":%d,\"p99_us\":%d,\"max_us\":%d," ..
    "\"mean_us\":%.1f,\"statuses\":{%s}}\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    table.concat(parts, ",")))
end
