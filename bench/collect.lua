-- wrk script for bench/collect.py: POST pre-generated, correctly bucketed collect batches.
-- Arguments (after --): the templates file (one JSON batch per line, event ids written as
-- "@ID@-NN") and a run nonce. Each request takes the next template of this thread and gets
-- ids unique per request: <nonce>t<thread>r<request>-NN.
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local templates = {}
local counter = 0
local prefix = ""
-- a shopper's browser: collect counts no robot (server/events/traffic.py)
local headers = { ["Content-Type"] = "text/plain;charset=UTF-8",
                  ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36" }

function init(args)
  local f = assert(io.open(args[1], "r"))
  for line in f:lines() do
    templates[#templates + 1] = line
  end
  f:close()
  prefix = args[2] .. "t" .. tostring(tid) .. "r"
  counter = tid * 7919 -- threads start at different visitors
end

function request()
  counter = counter + 1
  local body = templates[counter % #templates + 1]:gsub("@ID@", prefix .. counter)
  return wrk.format("POST", wrk.path, headers, body)
end
