-- Shared by the wrk scripts of bench/load.sh: thread numbering, reading this thread's share of
-- a seed file (written by `twofold-bench seed`), TOTP codes of the current 30-s step, status
-- counting, and one machine-readable result line.
--
-- Every script takes the same arguments after `--`:
--   FILE PART PARTS THREADS [extra...]
-- FILE is the seed file, PART (0-based) and PARTS split it between the wrk processes of a run
-- (one per server instance), THREADS is this wrk's -t. Line n goes to the thread
-- (n mod (PARTS * THREADS)) == PART * THREADS + id - 1, so no two threads share a line.

local threads = {}
local counter = 1

function setup(thread)
   thread:set("id", counter)
   table.insert(threads, thread)
   counter = counter + 1
end

-- Globals of each thread, read back by done().
statuses = {}
retry_after_missing = 0
pairs_done = 0
exhausted = 0

function bench_args(args)
   local file = args[1]
   local part = tonumber(args[2] or "0")
   local parts = tonumber(args[3] or "1")
   local thread_count = tonumber(args[4] or "1")
   return file, part, parts, thread_count
end

function split(line)
   local words = {}
   for word in line:gmatch("%S+") do
      words[#words + 1] = word
   end
   return words
end

-- This thread's lines of FILE, split into words.
function my_lines(file, part, parts, thread_count)
   local lines = {}
   local stride = parts * thread_count
   local slot = part * thread_count + (id - 1)
   local number = 0
   for line in io.lines(file) do
      if number % stride == slot then
         lines[#lines + 1] = split(line)
      end
      number = number + 1
   end
   return lines
end

-- words[first] is the base step, words[first + 1 ...] the codes from it on (see the seeder).
function code_window(words, first)
   local codes = {}
   for index = first + 1, #words do
      if not words[index]:match("^%d%d%d%d%d%d$") then
         break
      end
      codes[#codes + 1] = words[index]
   end
   return { base = tonumber(words[first]), codes = codes, last = first + #codes }
end

-- The code for the current step plus `ahead`; nil once the window is used up.
function code_now(window, ahead)
   local step = math.floor(os.time() / 30) + (ahead or 0)
   return window.codes[step - window.base + 1]
end

-- A code that is none of those the server accepts now (steps -1, 0, +1 around the current).
function wrong_code_now(window)
   local step = math.floor(os.time() / 30)
   local avoid = {}
   for offset = -1, 2 do
      local code = window.codes[step + offset - window.base + 1]
      if code then
         avoid[code] = true
      end
   end
   local candidate = tonumber(window.codes[step - window.base + 1] or "0")
   repeat
      candidate = (candidate + 1) % 1000000
   until not avoid[string.format("%06d", candidate)]
   return string.format("%06d", candidate)
end

function header(headers, name)
   for key, value in pairs(headers) do
      if key:lower() == name then
         return value
      end
   end
   return nil
end

function count_status(status, headers)
   statuses[status] = (statuses[status] or 0) + 1
   if (status == 429 or status == 503) and header(headers, "retry-after") == nil then
      retry_after_missing = retry_after_missing + 1
   end
end

function json_request(method, path, cookie, body)
   local headers = { ["Content-Type"] = "application/json" }
   if cookie then
      headers["Cookie"] = "twofold_session=" .. cookie
   end
   return wrk.format(method, path, headers, body)
end

function done(summary, latency, requests)
   local totals = {}
   local missing, done_pairs, stopped = 0, 0, 0
   for _, thread in ipairs(threads) do
      for status, count in pairs(thread:get("statuses") or {}) do
         totals[status] = (totals[status] or 0) + count
      end
      missing = missing + (thread:get("retry_after_missing") or 0)
      done_pairs = done_pairs + (thread:get("pairs_done") or 0)
      stopped = stopped + (thread:get("exhausted") or 0)
   end
   local seconds = summary.duration / 1e6
   local line = string.format(
      "BENCH requests=%d seconds=%.3f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f non2xx=%d pairs=%d exhausted_threads=%d retry_after_missing=%d socket_errors=%d timeouts=%d",
      summary.requests, seconds, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
      latency.max / 1000, summary.errors.status, done_pairs, stopped, missing,
      summary.errors.connect + summary.errors.read + summary.errors.write, summary.errors.timeout)
   local codes = {}
   for status, count in pairs(totals) do
      codes[#codes + 1] = status
   end
   table.sort(codes)
   for _, status in ipairs(codes) do
      line = line .. string.format(" s%d=%d", status, totals[status])
   end
   io.write(line .. "\n")
end
