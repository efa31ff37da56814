-- wrk script: DEPTH pipelined requests for PATH in every write.
-- usage: wrk -s pipeline.lua URL -- PATH DEPTH
init = function(args)
  local path = args[1] or "/plaintext"
  local depth = tonumber(args[2] or "16")
  local r = {}
  for i = 1, depth do r[i] = wrk.format("GET", path) end
  req = table.concat(r)
end
request = function() return req end
