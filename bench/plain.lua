-- wrk's own request (the URL given, e.g. /healthz), with the result line of common.lua.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")
