-- Posts pre-signed, unique webhook deliveries; prints status counts and latency as JSON.
-- Each line of the file given after `--` is "<signature>\t<event-type>\t<body>".
local threads = {}
local requests = {}
local n = 0
statuses = {}  -- global: done() reads it from each thread

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(args[1], "r"))
  for line in f:lines() do
    local sig, kind, body = line:match("^([^\t]+)\t([^\t]+)\t(.*)$")
    requests[#requests + 1] = wrk.format("POST", "/webhooks/circleci", {
      ["Content-Type"] = "application/json",
      ["circleci-signature"] = sig,
      ["circleci-event-type"] = kind,
    }, body)
  end
  f:close()
end

function request()
  n = n + 1
  if n > #requests then n = 1 end
  return requests[n]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, reqs)
  local counts = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    for code, c in pairs(s) do counts[tostring(code)] = (counts[tostring(code)] or 0) + c end
  end
  local parts = {}
  for code, c in pairs(counts) do parts[#parts + 1] = string.format('"%s": %d', code, c) end
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "errors": %d, "statuses": {%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout,
    table.concat(parts, ", ")))
end
