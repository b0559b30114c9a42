-- Session-authenticated reads: GET /api/v1/account, going round this thread's share of the
-- authenticated sessions in PREFIX.authenticated (at most 1,000 per thread, requests made
-- beforehand). No response() (so wrk does not parse bodies): non2xx counts failures. Arguments
-- after `--`:
--   PREFIX.authenticated PART PARTS THREADS
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local requests_of = {}
local next_index = 0

function init(args)
   local file, part, parts, thread_count = bench_args(args)
   for _, words in ipairs(my_lines(file, part, parts, thread_count)) do
      if #requests_of < 1000 then
         requests_of[#requests_of + 1] = wrk.format("GET", "/api/v1/account",
            { ["Cookie"] = "twofold_session=" .. words[1] })
      end
   end
end

function request()
   next_index = next_index % #requests_of + 1
   return requests_of[next_index]
end
