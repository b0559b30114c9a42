-- Full sign-ins: POST /api/v1/login with the right password, then POST /api/v1/login/verify
-- with the user's TOTP code of the current step under the session cookie the login set. Each
-- user of this thread's share of PREFIX.users signs in once (a TOTP step works once); a thread
-- whose users run out stops. Run with one connection per thread (-t C -c C), so that each
-- response belongs to the request before it. Arguments after `--`:
--   PREFIX.users PART PARTS THREADS PASSWORD
-- pairs_done counts sign-ins that reached `authenticated`.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local users = {}
local current = 0
local password
local cookie = nil

local function next_user()
   current = current + 1
   cookie = nil
end

function init(args)
   local file, part, parts, thread_count = bench_args(args)
   password = args[5] or "correct horse battery staple"
   for _, words in ipairs(my_lines(file, part, parts, thread_count)) do
      users[#users + 1] = { email = words[1], window = code_window(words, 2) }
   end
   current = 1
end

function request()
   local user = users[current]
   if user == nil then
      -- Every user of this thread has signed in once: stop. The /healthz request below
      -- may still go out: its 200 counts in the statuses, not in pairs_done.
      exhausted = 1
      wrk.thread:stop()
      return wrk.format("GET", "/healthz")
   end
   if cookie == nil then
      local body = string.format('{"email":"%s","password":"%s"}', user.email, password)
      return json_request("POST", "/api/v1/login", nil, body)
   end
   local code = code_now(user.window, 0) or "000000"
   return json_request("POST", "/api/v1/login/verify", cookie,
      string.format('{"method":"totp","code":"%s"}', code))
end

function response(status, headers, body)
   count_status(status, headers)
   if cookie == nil then
      if status == 200 and body:find('"second_factor"', 1, true) then
         local set_cookie = header(headers, "set-cookie") or ""
         cookie = set_cookie:match("twofold_session=([^;]+)")
         if cookie == nil then
            next_user()
         end
      elseif status == 503 or status == 429 then
         -- Shed or throttled: the same user tries again.
      else
         next_user()
      end
   else
      if status == 200 then
         pairs_done = pairs_done + 1
      end
      next_user()
   end
end
