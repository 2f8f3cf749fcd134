-- wrk script: POST /payments with the contract's request, a fresh orderId
-- every time, so that every request is a new payment (pending row, charge,
-- outcome + outbox row, event produced and acknowledged).
--
--   wrk -t2 -c32 -d20s -s bench/payments.lua http://127.0.0.1:PORT -- RUNID
--
-- RUNID is 8 hex digits that start every orderId of the run, so the run's
-- payments can be found afterwards (orderId = RUNID-TTTT-4000-8000-NNNNNNNNNNNN,
-- TTTT the wrk thread, N a counter). At the end one line is printed:
-- `BENCH_JSON {...}` with the counts and latency percentiles in microseconds.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

local run_id, counter = "00000000", 0

function init(args)
  run_id = args[1] or run_id
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

local body_head = '{"orderId":"'
local body_tail = '","customerId":"a8098c1a-f86e-11da-bd1a-00112444be1e",'
  .. '"reservationId":"f47ac10b-58cc-4372-a567-0e02b2c3d479",'
  .. '"amount":150.00,"currency":"USD","paymentMethod":"credit_card"}'

function request()
  counter = counter + 1
  local order_id = string.format("%s-%04x-4000-8000-%012x", run_id, tid, counter)
  return wrk.format(nil, "/payments", nil, body_head .. order_id .. body_tail)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,'
    .. '"write_errors":%d,"status_errors":%d,"timeouts":%d,'
    .. '"p50_us":%d,"p95_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
