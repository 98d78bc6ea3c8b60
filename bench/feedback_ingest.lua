-- wrk script: POST SNS Notifications to sesgate's feedback endpoint, each
-- line of the file given once (one signed envelope per line), with SNS's
-- headers; the thread stops once every line was answered (the few requests
-- already under way then repeat the last line: replays, counted apart).
-- usage: wrk -t1 -s feedback_ingest.lua http://HOST:PORT/sesgate/sns -- FILE
local bodies, ids, topic = {}, {}, nil
local sent, answered = 0, 0

function init(args)
   local path = args[1] or error("usage: -- FILE")
   for line in io.lines(path) do
      bodies[#bodies + 1] = line
      ids[#ids + 1] = line:match('"MessageId": "([^"]+)"')
      topic = topic or line:match('"TopicArn": "([^"]+)"')
   end
   assert(#bodies > 0, "no message in " .. path)
end

function request()
   local i = sent < #bodies and sent + 1 or #bodies
   sent = sent + 1
   return wrk.format("POST", nil, {
      ["Content-Type"] = "text/plain; charset=UTF-8",
      ["User-Agent"] = "Amazon Simple Notification Service Agent",
      ["x-amz-sns-message-type"] = "Notification",
      ["x-amz-sns-message-id"] = ids[i],
      ["x-amz-sns-topic-arn"] = topic,
      ["x-amz-sns-subscription-arn"] = topic .. ":bench",
   }, bodies[i])
end

function response(status, headers, body)
   answered = answered + 1
   if answered >= #bodies then
      wrk.thread:stop()
   end
end

function done(summary, latency, requests)
   io.write(string.format("JSON {\"requests\":%d,\"duration_us\":%d,\"non2xx\":%d,\"errors\":%d,\"p50_us\":%d,\"p99_us\":%d,\"max_us\":%d}\n",
      summary.requests, summary.duration, summary.errors.status,
      summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
      latency:percentile(50), latency:percentile(99), latency.max))
end
