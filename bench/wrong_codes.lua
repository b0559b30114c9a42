-- Wrong second-factor codes: POST /api/v1/login/verify with a code the server does not accept
-- now, on sessions made beforehand in state second_factor (PREFIX.wrong_code), going round this
-- thread's sessions. A wrong code never ends a session; after 5 of a user's the account's
-- lockout answers 429 (and past 100 failures from one address, 429 too). Arguments after `--`:
--   PREFIX.wrong_code PART PARTS THREADS
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local sessions = {}
local next_index = 0

function init(args)
   local file, part, parts, thread_count = bench_args(args)
   for _, words in ipairs(my_lines(file, part, parts, thread_count)) do
      local window = code_window(words, 1)
      sessions[#sessions + 1] = { token = words[window.last + 1], window = window }
   end
end

function request()
   next_index = next_index % #sessions + 1
   local session = sessions[next_index]
   return json_request("POST", "/api/v1/login/verify", session.token,
      string.format('{"method":"totp","code":"%s"}', wrong_code_now(session.window)))
end

function response(status, headers, body)
   count_status(status, headers)
end
