-- Password logins for many users, the right password each time: POST /api/v1/login, going
-- round this thread's users of PREFIX.users. Arguments after `--`:
--   PREFIX.users PART PARTS THREADS PASSWORD
-- A right password is never throttled, so every answer is 200 (the users have an
-- authenticator: state second_factor) unless the hashing queue is full (503 + Retry-After).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local requests_of = {}
local next_index = 0

function init(args)
   local file, part, parts, thread_count = bench_args(args)
   local password = args[5] or "correct horse battery staple"
   for _, words in ipairs(my_lines(file, part, parts, thread_count)) do
      local body = string.format('{"email":"%s","password":"%s"}', words[1], password)
      requests_of[#requests_of + 1] = json_request("POST", "/api/v1/login", nil, body)
   end
end

function request()
   next_index = next_index % #requests_of + 1
   return requests_of[next_index]
end

function response(status, headers, body)
   count_status(status, headers)
end
