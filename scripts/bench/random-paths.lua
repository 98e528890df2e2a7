-- random-paths.lua: wrk script for bench-fuse.sh — every request GETs a path picked at random
-- (uniformly, with replacement) from the file named by the PATHS environment variable (one URL
-- path a line). Non-2xx answers are reported (wrk's own count: no `response` hook, which would
-- make wrk parse every body and slow the client down).
--
--     PATHS=list.txt wrk -t2 -c32 -d10s -s random-paths.lua http://127.0.0.1:PORT

local paths = {}

local function load_paths()
  local file = os.getenv("PATHS")
  if not file then
    error("random-paths.lua: set PATHS to a file of URL paths")
  end
  local list = {}
  for line in io.lines(file) do
    if line ~= "" then
      list[#list + 1] = line
    end
  end
  if #list == 0 then
    error("random-paths.lua: " .. file .. " lists no paths")
  end
  return list
end

function init(args)
  paths = load_paths()
  -- Each thread its own sequence, so two threads do not request the same files in lockstep.
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0) % 100000)
end

function request()
  return wrk.format("GET", paths[math.random(#paths)])
end

function done(summary, latency, requests)
  local e = summary.errors
  local bad = e.status + e.connect + e.read + e.write + e.timeout
  io.write(string.format("BENCH requests=%d seconds=%.3f rps=%.1f errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6), bad,
    latency:percentile(50), latency:percentile(99)))
end
