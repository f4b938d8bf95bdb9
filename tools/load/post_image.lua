-- wrk script: POST one image file as the raw body of every request.
-- Usage: wrk -s tools/load/post_image.lua URL -- image.png
local request_bytes

function init(args)
  local path = args[1] or "public/samples/chelsea.png"
  local f = assert(io.open(path, "rb"))
  local body = f:read("*all")
  f:close()
  local kind = path:match("%.jpe?g$") and "image/jpeg" or "image/png"
  -- Built once per thread: every request is the same bytes.
  request_bytes = wrk.format("POST", nil, { ["Content-Type"] = kind }, body)
end

function request()
  return request_bytes
end
