-- wrk script for bench/run.sh: POSTs the file named by BENCH_BODY with the content type in
-- BENCH_CONTENT_TYPE (default application/json) on every request. No response() hook: parsing
-- bodies in Lua would make wrk the bottleneck; run.sh checks each workload's answer with curl
-- before loading it.
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE") or "application/json"
