-- wrk script for compare.sh.
--   rotate PREFIX N   GET PREFIX1 .. PREFIXN in turn (warmed keys: hits)
--   unique PREFIX     GET PREFIX<thread>-<counter>: no key ever repeats
-- done() prints one RESULT line that compare.sh parses (times in µs).
local mode, prefix, count, i = "rotate", "/1k/", 1000, 0
local next_thread = 1

function setup(thread)
    thread:set("thread_id", next_thread)
    next_thread = next_thread + 1
end

function init(args)
    mode = args[1] or mode
    prefix = args[2] or prefix
    count = tonumber(args[3]) or count
    if mode == "unique" then
        prefix = prefix .. "t" .. tostring(thread_id or 1) .. "-"
    end
end

function request()
    i = i + 1
    if mode == "rotate" then
        return wrk.format("GET", prefix .. ((i - 1) % count + 1))
    end
    return wrk.format("GET", prefix .. i)
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "RESULT requests=%d bytes=%d duration_us=%d p50_us=%d p99_us=%d "
            .. "connect=%d read=%d write=%d status=%d timeout=%d\n",
        summary.requests, summary.bytes, summary.duration,
        latency:percentile(50), latency:percentile(99),
        e.connect, e.read, e.write, e.status, e.timeout))
end
