-- wrk script: POST exactly the request that sign_sendemail.py wrote (its
-- headers, Host included, and its body), so every request carries the same
-- valid SigV4 signature for the address wrk connects to.
-- usage: wrk -s sigv4_sendemail.lua http://HOST:PORT/ -- SIGNED_REQUEST_FILE
-- The file is "Name: value" lines, an empty line, then the body.
function init(args)
   local path = args[1] or error("usage: -- SIGNED_REQUEST_FILE")
   local f = assert(io.open(path, "rb"))
   local text = f:read("*a")
   f:close()
   local head, body = text:match("^(.-)\n\n(.*)$")
   assert(head and body, "no empty line between headers and body in " .. path)
   wrk.method = "POST"
   wrk.path = "/"
   wrk.body = body
   for line in head:gmatch("[^\n]+") do
      local name, value = line:match("^([^:]+):%s*(.*)$")
      assert(name, "bad header line: " .. line)
      wrk.headers[name] = value
   end
end

function done(summary, latency, requests)
   io.write(string.format("JSON {\"requests\":%d,\"duration_us\":%d,\"rps\":%.1f,\"non2xx\":%d,\"errors\":%d,\"p50_us\":%d,\"p90_us\":%d,\"p99_us\":%d,\"mean_us\":%.1f,\"max_us\":%d}\n",
      summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
      summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
