-- The second-factor step alone: POST /api/v1/login/verify with the right TOTP code on
-- sessions made beforehand in state second_factor (PREFIX.second_factor: each line holds one
-- user's code window and one or two of their sessions). Each session is used once, the first
-- of a user with the current step's code and the second with the next step's (a step is
-- accepted only after the last one used). A thread whose sessions run out stops. Run with one
-- connection per thread (-t C -c C) so a user's two sessions go in order. Arguments after `--`:
--   PREFIX.second_factor PART PARTS THREADS
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local sessions = {}
local next_index = 0

function init(args)
   local file, part, parts, thread_count = bench_args(args)
   for _, words in ipairs(my_lines(file, part, parts, thread_count)) do
      local window = code_window(words, 1)
      for index = window.last + 1, #words do
         sessions[#sessions + 1] = { token = words[index], window = window, ahead = index - window.last - 1 }
      end
   end
end

function request()
   next_index = next_index + 1
   local session = sessions[next_index]
   if session == nil then
      -- Every session of this thread was used: stop. The /healthz request below
      -- may still go out (one more 200 in the statuses).
      exhausted = 1
      wrk.thread:stop()
      return wrk.format("GET", "/healthz")
   end
   local code = code_now(session.window, session.ahead) or "000000"
   return json_request("POST", "/api/v1/login/verify", session.token,
      string.format('{"method":"totp","code":"%s"}', code))
end

function response(status, headers, body)
   count_status(status, headers)
end
