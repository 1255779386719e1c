#!/usr/bin/env bash
# Soak: the demo's three nodes (origin, regional, two edges) under mixed
# traffic for DURATION seconds (default 1800): hits, misses, passes, ranges,
# invalidations, slow readers and aborted clients, all at once. Samples the
# resident set of every edgeslab process each INTERVAL seconds beside what
# their RAM tiers hold, then prints every sample and any ERROR line in the
# nodes' logs.
#
#   benches/soak.sh                      # 30 minutes, target/release/edgeslab
#   DURATION=60 BIN=target/debug/edgeslab benches/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-1800}
INTERVAL=${INTERVAL:-60}
BIN=${BIN:-target/release/edgeslab}
[ -x "$BIN" ] || cargo build --release
work=$(mktemp -d)
export TMPDIR=$work
log=$work/demo.out
"$BIN" demo --listen 127.0.0.1:0 --admin 127.0.0.1:0 >"$log" 2>&1 &
demo=$!
trap 'kill $demo 2>/dev/null || true; wait $demo 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do grep -q 'Press Ctrl-C' "$log" && break; sleep 0.1; done
grep -q 'Press Ctrl-C' "$log" || { cat "$log"; echo "the demo did not start"; exit 1; }
e1=$(awk '$1=="edge-1"{sub("http://","",$2); print $2}' "$log")
e2=$(awk '$1=="edge-2"{sub("http://","",$2); print $2}' "$log")
a1=$(awk '$1=="edge-1"{sub("http://","",$4); print $4}' "$log")
echo "edge-1 $e1 (admin $a1), edge-2 $e2; ${DURATION}s; logs in $work/edgeslab-demo"
end=$(( $(date +%s) + DURATION ))
pids=()
loop() { while [ "$(date +%s)" -lt "$end" ]; do "$@" >/dev/null 2>&1 || true; done; }
c() { curl -s -o /dev/null --max-time 20 "$@"; }
loop c "http://$e1/hello" & pids+=($!)                                         # hits
loop c "http://$e2/hello" & pids+=($!)
loop bash -c "curl -s -o /dev/null --max-time 20 http://$e1/big/\$((RANDOM * 7 + 1))" & pids+=($!)   # misses
loop c -X POST --data 'soak' "http://$e1/echo" & pids+=($!)                    # passes
loop c -r 1000-1999 "http://$e2/big/10485760" & pids+=($!)                     # ranges
loop c --limit-rate 50k --max-time 5 "http://$e1/big/10485760" & pids+=($!)   # slow readers
loop c --max-time 0.05 "http://$e2/big/10485760" & pids+=($!)                 # aborted clients
loop bash -c "sleep $(( DURATION < 60 ? 5 : 30 )); $BIN invalidate --admin http://$a1 --token demo-token --wait 20s '/big/*' /hello" & pids+=($!)
admins=$(awk '$1=="regional"||$1=="edge-1"||$1=="edge-2"{sub("http://","",$4); print $4}' "$log")
# The demo's own nodes only (its children), not other edgeslab processes.
rss() { ps -o rss= -p "$(pgrep -d, -P "$demo" -f 'edgeslab serve')" | awk '{s+=$1} END {print s}'; }
# Each node's resident set, in the order of their pids (regional, edge-1,
# edge-2, as the demo starts them), joined by '/'.
rss_each() { ps -o rss= -p "$(pgrep -d, -P "$demo" -f 'edgeslab serve')" | awk '{printf "%s%d", (NR > 1 ? "/" : ""), $1}'; }
# The RAM tiers fill by design (cache.ram_size each): what they hold is
# sampled beside the resident set and the live heap. The tiers keep entries
# of a block or more and chunks of large objects in mappings of their own,
# outside the heap, so the live heap is nearly all the rest of the nodes'
# memory: after warm-up (the tiers full) it and the resident set must stay
# flat.
metric_sum() {
    for a in $admins; do curl -s --max-time 5 "http://$a/metrics"; done |
        awk -v m="$1" '$1 == m || index($1, m "{") == 1 {s += $2} END {printf "%d", s}'
}
samples=$work/rss.csv
echo "seconds,rss_kib,ram_tier_kib,heap_live_kib,index_kib,objects,segments_written,reclaims,reinserted,rss_each_kib" >"$samples"
start=$(date +%s)
while [ "$(date +%s)" -lt "$end" ]; do
    r=$(rss)
    t=$(( $(metric_sum edgeslab_cache_ram_bytes) / 1024 ))
    h=$(( $(metric_sum edgeslab_heap_live_bytes) / 1024 ))
    i=$(( $(metric_sum edgeslab_cache_index_bytes) / 1024 ))
    o=$(metric_sum edgeslab_cache_objects)
    w=$(metric_sum edgeslab_cache_segments_written_total)
    c=$(metric_sum edgeslab_cache_reclaims_total)
    n=$(metric_sum edgeslab_cache_reinserted_total)
    echo "$(( $(date +%s) - start )),$r,$t,$h,$i,$o,$w,$c,$n,$(rss_each)" >>"$samples"
    sleep "$INTERVAL"
done
wait "${pids[@]}" || true
echo "resident set of the three nodes (KiB), every sample:"
cat "$samples"
echo "ERROR lines in the nodes' logs: $(cat "$work"/edgeslab-demo/*.log | grep -c ' ERROR ' || true)"
