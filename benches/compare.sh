#!/usr/bin/env bash
# Side by side: edgeslab, nginx (proxy_cache), Varnish and Apache Traffic
# Server, each in front of the same origin on this machine, over loopback.
#
#   benches/compare.sh                          # all four, about 4 minutes
#   SERVERS="edgeslab nginx" DURATION=4 benches/compare.sh
#   OUT=/tmp/table.md BIN=target/debug/edgeslab benches/compare.sh
#
# Settings (environment): BIN (edgeslab binary, built with `cargo build
# --release` when missing), SERVERS (which caches, in order), DURATION
# (seconds per wrk run, 8), CONNS (wrk connections, 50), IDLE_CONNS (idle
# connections held for the memory figure, 2000), CACHE_SIZE_MB (each
# cache's store, 1024), RAM_CACHE_MB (ATS's RAM cache, 256: the size of
# edgeslab's default RAM tier), COLD_RATE (origin's rate for the cold object,
# nginx units, 25m), START_TIMEOUT (seconds a server may take to answer, 10),
# OUT (the table, default benches/results/compare-<date>.md), KEEP=1 (keep
# the temp dir; it is always kept when the run fails), TCP_CC (a congestion
# control for the run, e.g. cubic; see below).
#
# Pinning, on a 2-core machine: the origin (one nginx worker) and wrk share
# CPU 0; the cache under test is alone on CPU 1 (taskset -c 1, and for
# edgeslab also `cores = "1"`), with one worker, thread pool, exec thread or
# shard. One cache runs at a time; the origin serves them all. Installs
# nginx, varnish, trafficserver and wrk from Debian when missing, and never
# uses the packaged services: every server runs from a config rendered from
# benches/compare/ into a temp dir under /tmp (ext4 here, not tmpfs), on
# free loopback ports.
#
# The origin serves /1k/N, /100k/N, /1m/N and /miss/N (one file per size,
# any N) with Cache-Control: public, max-age=3600, and /cold/N, a 100 MiB
# file sent at COLD_RATE (about 4 s at 25 MiB/s). Only the origin keeps an
# access log, which is how origin requests are counted.
#
# The caches (templates in benches/compare/), each with a 1 GiB store and
# no access log, otherwise as their documentation sets them up to cache:
#   edgeslab  `serve` with cores = "1", a cache file in the temp dir, defaults
#   nginx     1 worker, proxy_cache (keys_zone, use_temp_path=off),
#             proxy_cache_lock, keep-alive upstream (HTTP/1.1, Connection "")
#   Varnish   varnishd -F -s malloc,1G -p thread_pools=1, the built-in VCL
#             with one backend; its working dir (shared-memory log) on tmpfs
#   ATS 9.2   records.config (9.2 predates records.yaml): 1 exec thread,
#             a cache file in the temp dir, a 256 MiB RAM cache, read-while-
#             writer and open-read retries as its admin guide describes,
#             proxy.config.http.cache.* left at their defaults
#
# For each cache, after warming every hit key once (then asking for each
# again, up to three more passes, until no request reaches the origin: the
# table counts those re-fetches):
#   1. 1 KiB hits, 1,000 keys in turn: req/s, p50/p99 latency
#   2. 100 KiB hits, 100 keys: req/s, MiB/s (as wrk reads it, headers
#      included), p99
#   3. 1 MiB hits, 200 keys: MiB/s, p50/p99
#   4. 1 KiB misses: every URL unique (a random run id, the cache's name,
#      the wrk thread and a counter), so no key repeats in or across caches
#   5. IDLE_CONNS (2,000) idle keep-alive connections, each after one hit:
#      the resident set each adds
#   6. a cold 100 MiB object: time to first byte through the cache beside
#      straight from the origin, then a second viewer starting 1 s into the
#      fill (its TTFB and whole download), and how many times the origin was
#      asked for that key (1 when the cache coalesces), and the resident set
#      the fill in flight adds.
# Each wrk run (taskset -c 0 wrk -t1 -c$CONNS -d${DURATION}s --latency) also
# records the server's CPU (utime+stime, children included, of every
# process under the one started, from /proc/PID/stat before and after) per
# 1,000 requests, its peak RSS (VmHWM summed over those processes), and the
# origin requests during the run: a hit run that reaches the origin is not
# measuring the cache, and the table says so.
#
# Prints one markdown table (a column per cache and edgeslab ÷ the best of
# the others; each row says whether higher or lower is better) and writes
# it to OUT. The raw wrk and curl outputs and each server's log stay in the
# temp dir printed at the start. Numbers from a shared or busy machine are
# noisy: the table records the load average and, per run, how much of the
# cache's core other processes took.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/release/edgeslab}
SERVERS=${SERVERS:-"edgeslab nginx varnish ats"}
DURATION=${DURATION:-8}
CONNS=${CONNS:-50}
IDLE_CONNS=${IDLE_CONNS:-2000}
CACHE_SIZE_MB=${CACHE_SIZE_MB:-1024}
RAM_CACHE_MB=${RAM_CACHE_MB:-256}
COLD_RATE=${COLD_RATE:-25m}
START_TIMEOUT=${START_TIMEOUT:-10}
started_at=$(date '+%Y-%m-%d %H:%M')
OUT=${OUT:-benches/results/compare-${started_at% *}.md}
TEMPLATES=$PWD/benches/compare
LUA=$TEMPLATES/keys.lua

began=$SECONDS
say() { printf '[compare %3ds] %s\n' $((SECONDS - began)) "$*" >&2; }

# ---- tools ---------------------------------------------------------------
install_missing() {
    local need=()
    command -v nginx >/dev/null || need+=(nginx)
    command -v varnishd >/dev/null || need+=(varnish)
    command -v traffic_server >/dev/null || need+=(trafficserver)
    command -v wrk >/dev/null || need+=(wrk)
    command -v curl >/dev/null || need+=(curl)
    command -v python3 >/dev/null || need+=(python3)
    [ ${#need[@]} -eq 0 ] && return
    say "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y "${need[@]}" >/dev/null ||
        { apt-get update -qq && apt-get install -y "${need[@]}" >/dev/null; }
    # The packages may start their services on the default ports; this
    # benchmark never uses them, so stop them where systemd runs.
    if [ -d /run/systemd/system ]; then
        systemctl stop nginx varnish varnishncsa trafficserver 2>/dev/null || true
    fi
}
install_missing
if [ ! -x "$BIN" ]; then
    say "building $BIN"
    cargo build --release
fi
BIN=$(realpath "$BIN")
CLK_TCK=$(getconf CLK_TCK)

# ---- the run's temp dir and process bookkeeping -----------------------------
work=$(mktemp -d /tmp/edgeslab-compare.XXXXXX)
mkdir -p "$work/raw" "$work/files"
results=$work/results.tsv
: >"$results"
run_id=$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
say "temp dir: $work (run id $run_id)"
[ "$(stat -f -c %T "$work")" = tmpfs ] && say "warning: $work is on tmpfs, not a disk"

started=()        # every process this script started, and nothing else
varnish_dir=
failed=1          # cleared at the end of a successful run

# The processes under PID (itself first), from the kernel's parent links.
tree_pids() {
    ps -e -o pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2 }
        END {
            keep[root] = 1; grew = 1
            while (grew) {
                grew = 0
                for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; grew = 1 }
            }
            print root
            for (p in keep) if (p != root) print p
        }'
}

# A process's start time (clock ticks since boot): with the PID, it names
# one process, even after the number is reused.
start_time() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $20 }'; }

# SIGTERM PID, give it (and so its children) GRACE seconds, then SIGKILL
# whatever of its tree is left. Only PIDs this script started come here,
# and a child is killed only while its PID still names the same process.
stop_tree() {
    local pid=$1 grace=${2:-15} tree=() p
    kill -0 "$pid" 2>/dev/null || { forget "$pid"; return 0; }
    for p in $(tree_pids "$pid"); do tree+=("$p:$(start_time "$p")"); done
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 $((grace * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    for p in "${tree[@]}"; do
        [ "$(start_time "${p%%:*}")" = "${p#*:}" ] && kill -KILL "${p%%:*}" 2>/dev/null || true
    done
    wait "$pid" 2>/dev/null || true
    forget "$pid"
}

# Drop a reaped PID from the list, so that cleanup can never signal a
# process that later reuses the number.
forget() {
    local kept=() p
    for p in "${started[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
    started=("${kept[@]}")
}

# TCP_CC: the congestion control every server's connections use for the
# run (the machine's setting is put back after). Over loopback, which has no
# qdisc, BBR paces each connection with a timer of its own, at the rate that
# connection was seen to deliver; a server that hands the socket a whole
# 1 MiB response at once (sendfile) has it cut into about ten timed sends,
# while one that copies it in falls behind the pacing and is not held. On a
# NIC with `fq` (tuning/), the qdisc paces instead. See
# benches/results/compare-2026-12-03.md.
cc_before=$(sysctl -n net.ipv4.tcp_congestion_control 2>/dev/null || echo unknown)
restore_cc() {
    if [ -n "${TCP_CC:-}" ] && [ "$cc_before" != unknown ]; then
        sysctl -q -w net.ipv4.tcp_congestion_control="$cc_before" || true
    fi
}
if [ -n "${TCP_CC:-}" ]; then
    sysctl -q -w net.ipv4.tcp_congestion_control="$TCP_CC" ||
        { echo "compare.sh: cannot set net.ipv4.tcp_congestion_control=$TCP_CC" >&2; exit 2; }
fi

cleanup() {
    local pid
    for pid in "${started[@]}"; do stop_tree "$pid" 5; done
    started=()
    restore_cc
    [ -n "$varnish_dir" ] && rm -rf "$varnish_dir"
    if [ "$failed" = 1 ]; then
        say "failed; logs and raw outputs kept in $work"
    else
        [ "${KEEP:-0}" = 1 ] || rm -rf "$work/files"
        say "done in $((SECONDS - began)) s; raw outputs and logs in $work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
    say "error: $1"
    if [ -n "${2:-}" ] && [ -f "$2" ]; then
        say "last lines of $2:"
        tail -n 30 "$2" >&2
    fi
    exit 1
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# render TEMPLATE OUTPUT KEY=VALUE...: replace each @KEY@.
render() {
    local template=$1 output=$2 kv script=()
    shift 2
    for kv in "$@"; do script+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
    sed "${script[@]}" "$template" >"$output"
    if grep -q '@[A-Z_]*@' "$output"; then fail "unfilled placeholder in $output" "$output"; fi
}

# wait_ready NAME PID PORT LOG: until GET /1k/0 answers 200 (a throwaway
# key, outside the hit keys 1..N), at most START_TIMEOUT seconds.
wait_ready() {
    local name=$1 pid=$2 port=$3 log=$4 deadline=$((SECONDS + START_TIMEOUT))
    while :; do
        kill -0 "$pid" 2>/dev/null || fail "$name exited while starting" "$log"
        [ "$(curl -s -o /dev/null --max-time 2 -w '%{http_code}' "http://127.0.0.1:$port/1k/0" || true)" = 200 ] && return 0
        [ $SECONDS -ge $deadline ] && fail "$name did not answer on 127.0.0.1:$port within ${START_TIMEOUT}s" "$log"
        sleep 0.2
    done
}

origin_log=$work/origin-access.log
origin_count() { if [ -f "$origin_log" ]; then wc -l <"$origin_log"; else echo 0; fi; }

cpu_ticks() {
    local p
    for p in $(tree_pids "$1"); do
        # Fields after "(comm) ": utime, stime, cutime, cstime are 12-15.
        sed 's/.*) //' "/proc/$p/stat" 2>/dev/null || true
    done | awk '{ t += $12 + $13 + $14 + $15 } END { printf "%d", t }'
}

peak_rss_kib() {
    local p
    for p in $(tree_pids "$1"); do
        awk '$1 == "VmHWM:" { print $2 }' "/proc/$p/status" 2>/dev/null || true
    done | awk '{ t += $1 } END { printf "%d", t }'
}

# Ticks that processes spent on CPU 1 (the cache's core), whoever they are:
# user, nice and system. Interrupt and softirq time (loopback traffic is
# processed there, partly for the cache itself) and the hypervisor's steal
# are left out, since no process is charged for them.
cpu1_busy() { awk '$1 == "cpu1" { printf "%d", $2 + $3 + $4 }' /proc/stat; }

# Ticks both cores spent busy, on anything: user, nice, system, interrupts
# and softirqs. Over loopback a response's bytes are partly sent (and the
# viewer's side received) on wrk's core, when wrk's acknowledgements open
# the window there; how much depends on the server's way of writing, so the
# server's own CPU alone can move work out of sight. This counts it all,
# wrk's share (the same client for every server) included.
all_busy() { awk '$1 == "cpu" { printf "%d", $2 + $3 + $4 + $7 + $8 }' /proc/stat; }

# Resident set now (VmRSS summed over the server's processes), in KiB.
rss_kib() {
    local p
    for p in $(tree_pids "$1"); do
        awk '$1 == "VmRSS:" { print $2 }' "/proc/$p/status" 2>/dev/null || true
    done | awk '{ t += $1 } END { printf "%d", t }'
}

record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$results"; }

# ---- the origin -------------------------------------------------------------
head -c 1024 /dev/urandom >"$work/files/1k.bin"
head -c 102400 /dev/urandom >"$work/files/100k.bin"
head -c 1048576 /dev/urandom >"$work/files/1m.bin"
head -c 104857600 /dev/urandom >"$work/files/100m.bin"
mkdir -p "$work/origin-tmp"
origin_port=$(free_port)
render "$TEMPLATES/origin.conf.in" "$work/origin.conf" DIR="$work" PORT="$origin_port" COLD_RATE="$COLD_RATE"
taskset -c 0 nginx -p "$work" -e "$work/origin-error.log" -c "$work/origin.conf" >"$work/origin.out" 2>&1 &
origin_pid=$!
started+=("$origin_pid")
wait_ready origin "$origin_pid" "$origin_port" "$work/origin-error.log"
say "origin: nginx on 127.0.0.1:$origin_port (CPU 0), log $origin_log"

# ---- the caches -------------------------------------------------------------
# start_NAME sets server_pid, server_port and server_log.
start_edgeslab() {
    local admin_port
    admin_port=$(free_port)
    render "$TEMPLATES/edgeslab.toml.in" "$work/edgeslab.toml" DIR="$work" PORT="$server_port" \
        ORIGIN_PORT="$origin_port" ADMIN_PORT="$admin_port" CACHE_SIZE_MB="$CACHE_SIZE_MB"
    "$BIN" check-config "$work/edgeslab.toml" >"$work/edgeslab-check.txt" 2>&1 ||
        fail "edgeslab check-config refused $work/edgeslab.toml" "$work/edgeslab-check.txt"
    server_log=$work/edgeslab.log
    taskset -c 1 "$BIN" serve --config "$work/edgeslab.toml" --reformat >"$server_log" 2>&1 &
    server_pid=$!
}

start_nginx() {
    mkdir -p "$work/nginx-tmp" "$work/nginx-cache"
    render "$TEMPLATES/nginx.conf.in" "$work/nginx.conf" DIR="$work" PORT="$server_port" \
        ORIGIN_PORT="$origin_port" CACHE_SIZE_MB="$CACHE_SIZE_MB"
    server_log=$work/nginx-error.log
    taskset -c 1 nginx -p "$work" -e "$server_log" -c "$work/nginx.conf" >"$work/nginx.out" 2>&1 &
    server_pid=$!
}

start_varnish() {
    render "$TEMPLATES/varnish.vcl.in" "$work/varnish.vcl" ORIGIN_PORT="$origin_port"
    server_log=$work/varnish.log
    # The working dir holds the shared-memory log, which Varnish's docs
    # want on tmpfs (on a disk its writeback stalls the workers).
    varnish_dir=$(mktemp -d /dev/shm/edgeslab-compare-varnish.XXXXXX)
    # -j none: stay the invoking user, so the working dir needs no chown.
    taskset -c 1 varnishd -F -j none -n "$varnish_dir" -a "127.0.0.1:$server_port" \
        -f "$work/varnish.vcl" -s "malloc,${CACHE_SIZE_MB}M" -p thread_pools=1 >"$server_log" 2>&1 &
    server_pid=$!
}

start_ats() {
    local ats=$work/ats f
    mkdir -p "$ats/etc" "$ats/var" "$ats/run" "$ats/log" "$ats/cache" "$ats/share" "$work/ats-cache"
    render "$TEMPLATES/ats/runroot.yaml.in" "$ats/runroot.yaml" DIR="$work"
    render "$TEMPLATES/ats/records.config.in" "$ats/etc/records.config" PORT="$server_port" \
        RAM_CACHE_BYTES=$((RAM_CACHE_MB * 1048576))
    render "$TEMPLATES/ats/remap.config.in" "$ats/etc/remap.config" PORT="$server_port" ORIGIN_PORT="$origin_port"
    render "$TEMPLATES/ats/storage.config.in" "$ats/etc/storage.config" DIR="$work" CACHE_SIZE_MB="$CACHE_SIZE_MB"
    cp "$TEMPLATES/ats/ip_allow.yaml" "$ats/etc/ip_allow.yaml"
    # The configuration files this benchmark leaves empty.
    for f in cache.config hosting.config parent.config plugin.config socks.config splitdns.config \
        ssl_multicert.config volume.config sni.yaml; do
        : >"$ats/etc/$f"
    done
    server_log=$work/ats.log
    taskset -c 1 traffic_server --run-root="$ats/runroot.yaml" >"$server_log" 2>&1 &
    server_pid=$!
}

versions() {
    printf 'edgeslab %s (binary of %s, tree at %s)' "$("$BIN" --version | awk '{print $2}')" \
        "$(date -r "$BIN" '+%Y-%m-%d %H:%M')" "$(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    printf ', nginx %s, Varnish %s, ATS %s, wrk %s' \
        "$(dpkg-query -W -f '${Version}' nginx 2>/dev/null || nginx -v 2>&1)" \
        "$(dpkg-query -W -f '${Version}' varnish 2>/dev/null || echo '?')" \
        "$(dpkg-query -W -f '${Version}' trafficserver 2>/dev/null || echo '?')" \
        "$(dpkg-query -W -f '${Version}' wrk 2>/dev/null || echo '?')"
}

# load NAME TEST wrk-script-args...: one wrk run against the cache under test.
load() {
    local name=$1 test=$2 raw=$work/raw/$1-$2.txt
    shift 2
    local origin_before cpu_before origin_after cpu_after busy_before busy_after line
    local all_before all_after
    origin_before=$(origin_count)
    cpu_before=$(cpu_ticks "$server_pid")
    busy_before=$(cpu1_busy)
    all_before=$(all_busy)
    taskset -c 0 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$LUA" \
        "http://127.0.0.1:$server_port" -- "$@" >"$raw" 2>&1 || fail "wrk failed ($name $test)" "$raw"
    busy_after=$(cpu1_busy)
    all_after=$(all_busy)
    cpu_after=$(cpu_ticks "$server_pid")
    origin_after=$(origin_count)
    kill -0 "$server_pid" 2>/dev/null || fail "$name died during $test" "$server_log"
    line=$(grep '^RESULT ' "$raw") || fail "no RESULT line from wrk ($name $test)" "$raw"
    # RESULT requests= bytes= duration_us= p50_us= p99_us= connect= read= write= status= timeout=
    eval "local ${line#RESULT }"
    local secs cpu_s
    secs=$(awk -v d="$duration_us" 'BEGIN { print d / 1e6 }')
    cpu_s=$(awk -v t=$((cpu_after - cpu_before)) -v hz="$CLK_TCK" 'BEGIN { print t / hz }')
    record "$name" "$test.rps" "$(awk -v n="$requests" -v s="$secs" 'BEGIN { print n / s }')"
    record "$name" "$test.mibps" "$(awk -v b="$bytes" -v s="$secs" 'BEGIN { print b / s / 1048576 }')"
    record "$name" "$test.p50_ms" "$(awk -v u="$p50_us" 'BEGIN { print u / 1000 }')"
    record "$name" "$test.p99_ms" "$(awk -v u="$p99_us" 'BEGIN { print u / 1000 }')"
    record "$name" "$test.cpu" "$(awk -v c="$cpu_s" -v n="$requests" 'BEGIN { print n ? c / n * 1000 : 0 }')"
    record "$name" "$test.all_cpu" "$(awk -v t=$((all_after - all_before)) -v hz="$CLK_TCK" -v n="$requests" \
        'BEGIN { print n ? t / hz / n * 1000 : 0 }')"
    # How much of its core the cache used, and how much of that core went
    # to other work (this machine's other tenants): the noise.
    record "$name" "$test.cpu_pct" "$(awk -v c="$cpu_s" -v s="$secs" 'BEGIN { print c / s * 100 }')"
    record "$name" "$test.other_pct" "$(awk -v b=$((busy_after - busy_before - cpu_after + cpu_before)) \
        -v hz="$CLK_TCK" -v s="$secs" 'BEGIN { o = b / hz / s * 100; print o < 0 ? 0 : o }')"
    record "$name" "$test.rss" "$(awk -v k="$(peak_rss_kib "$server_pid")" 'BEGIN { print k / 1024 }')"
    record "$name" "$test.origin" $((origin_after - origin_before))
    record "$name" "$test.origin_per_req" "$(awk -v o=$((origin_after - origin_before)) -v n="$requests" 'BEGIN { print n ? o / n : 0 }')"
    record "$name" "$test.errors" $((connect + read + write + status + timeout))
    say "$name $test: $requests requests in ${secs}s, CPU ${cpu_s}s, origin +$((origin_after - origin_before)), errors $((connect + read + write + status + timeout))"
}

# ttfb URL OUTFILE: "status ttfb_s total_s bytes" of one full download.
ttfb() {
    curl -s -o /dev/null --max-time 120 -w '%{http_code} %{time_starttransfer} %{time_total} %{size_download}\n' "$1" >"$2" 2>&1 || true
}

cold() {
    local name=$1 direct=/cold/$run_id-$1-direct key=/cold/$run_id-$1 v1 v2 bad=0 f code size rss0 rss1
    ttfb "http://127.0.0.1:$origin_port$direct" "$work/raw/$name-cold-origin.txt"
    rss0=$(rss_kib "$server_pid")
    ttfb "http://127.0.0.1:$server_port$key" "$work/raw/$name-cold-first.txt" &
    v1=$!
    started+=("$v1")
    sleep 1
    ttfb "http://127.0.0.1:$server_port$key" "$work/raw/$name-cold-second.txt" &
    v2=$!
    started+=("$v2")
    # The fill is under way (about 1.5 s of its 4): what one in-flight
    # fill with two viewers holds, beyond what the cache held before it.
    sleep 0.5
    rss1=$(rss_kib "$server_pid")
    record "$name" cold.fill_rss_mib "$(awk -v a="$rss0" -v b="$rss1" 'BEGIN { print (b - a) / 1024 }')"
    wait "$v1" "$v2" || true
    forget "$v1"
    forget "$v2"
    sleep 0.5 # a cache may still be finishing its fill on its own
    for f in first second; do
        read -r code _ _ size <"$work/raw/$name-cold-$f.txt" || true
        [ "${code:-}" = 200 ] && [ "${size:-}" = 104857600 ] || bad=$((bad + 1))
    done
    record "$name" cold.ttfb_origin_ms "$(awk '{ print $2 * 1000 }' "$work/raw/$name-cold-origin.txt")"
    record "$name" cold.ttfb_first_ms "$(awk '{ print $2 * 1000 }' "$work/raw/$name-cold-first.txt")"
    record "$name" cold.ttfb_second_ms "$(awk '{ print $2 * 1000 }' "$work/raw/$name-cold-second.txt")"
    record "$name" cold.total_second_s "$(awk '{ print $3 }' "$work/raw/$name-cold-second.txt")"
    record "$name" cold.origin "$(awk -v k="$key" '$1 == k' "$origin_log" | wc -l)"
    record "$name" cold.bad "$bad"
    say "$name cold: first $(cat "$work/raw/$name-cold-first.txt"), second $(cat "$work/raw/$name-cold-second.txt")"
}

# The resident set each idle keep-alive connection adds: IDLE_CONNS
# connections, each after one 1 KiB hit, held open and silent for 2 s.
idle() {
    local name=$1 holder ready=$work/raw/$1-idle.ready rss0 rss1 i
    rm -f "$ready"
    rss0=$(rss_kib "$server_pid")
    python3 "$TEMPLATES/idle.py" "$server_port" /1k/0 "$IDLE_CONNS" "$ready" 2>"$work/raw/$name-idle.err" &
    holder=$!
    started+=("$holder")
    for i in $(seq 1 300); do
        [ -f "$ready" ] && break
        kill -0 "$holder" 2>/dev/null || break
        sleep 0.1
    done
    if [ -f "$ready" ]; then
        sleep 2
        rss1=$(rss_kib "$server_pid")
        record "$name" idle.conn_kib "$(awk -v a="$rss0" -v b="$rss1" -v n="$IDLE_CONNS" 'BEGIN { print (b - a) / n }')"
    else
        say "$name: could not hold $IDLE_CONNS idle connections (see $work/raw/$name-idle.err)"
    fi
    kill "$holder" 2>/dev/null || true
    wait "$holder" 2>/dev/null || true
    forget "$holder"
}

warm_all() {
    python3 "$TEMPLATES/warm.py" "$server_port" /1k/ 1000 1024 || fail "$1: warm-up failed" "$server_log"
    python3 "$TEMPLATES/warm.py" "$server_port" /100k/ 100 102400 || fail "$1: warm-up failed" "$server_log"
    python3 "$TEMPLATES/warm.py" "$server_port" /1m/ 200 1048576 || fail "$1: warm-up failed" "$server_log"
}

bench() {
    local name=$1 before
    server_port=$(free_port)
    "start_$name"
    started+=("$server_pid")
    wait_ready "$name" "$server_pid" "$server_port" "$server_log"
    say "$name: pid $server_pid on 127.0.0.1:$server_port (CPU 1)"

    # Warm every hit key once, then ask for each again: a cache that kept
    # them all asks the origin nothing the second time. One that dropped
    # some (a full write queue, say) gets up to two more passes, and the
    # table shows how many it fetched again.
    local pass refetched=0
    for pass in 1 2 3 4; do
        before=$(origin_count)
        warm_all "$name"
        if [ "$pass" = 1 ]; then
            record "$name" warm.origin $(($(origin_count) - before))
            continue
        fi
        refetched=$((refetched + $(origin_count) - before))
        [ "$(origin_count)" = "$before" ] && break
        say "$name: pass $pass over the hit keys reached the origin $(($(origin_count) - before)) times"
    done
    record "$name" warm.refetched "$refetched"

    load "$name" hit1k rotate /1k/ 1000
    load "$name" hit100k rotate /100k/ 100
    load "$name" hit1m rotate /1m/ 200
    load "$name" miss unique "/miss/$run_id-$name-"
    idle "$name"
    cold "$name"

    stop_tree "$server_pid" 15
    # Keep the logs, drop the store (nginx's holds a file per object).
    [ "${KEEP:-0}" = 1 ] || rm -rf "$work/$name-cache"* "$work/ats/cache"
}

say "servers: $SERVERS; wrk -t1 -c$CONNS -d${DURATION}s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
versions_line=$(versions) # before the runs: another build may replace the binary meanwhile
for name in $SERVERS; do
    declare -F "start_$name" >/dev/null || fail "unknown server '$name' (edgeslab nginx varnish ats)"
    bench "$name"
done

# ---- the table -----------------------------------------------------------------
notes=$work/notes.md
# The hit runs measure a cache only if the origin saw nothing during them.
suspect=$(awk -F'\t' '($2 ~ /^hit.*\.origin$/ || $2 ~ /\.errors$/ || $2 == "cold.bad") && $3 != 0 { print $1 " " $2 "=" $3 }' "$results")
{
    if [ -n "$suspect" ]; then
        echo "WARNING: not every hit run was served from cache without errors:"
        echo "$suspect" | sed 's/^/- /'
    else
        echo "Cache check: no hit run reached the origin, and no request failed."
    fi
    awk -F'\t' '$2 == "warm.refetched" && $3 != 0 {
        print "- " $1 " had not kept " $3 " of the 1,300 warmed keys when asked for them again (fetched anew before the hit runs)."
    }' "$results"
    awk -F'\t' '$2 ~ /\.other_pct$/ && $3 > 20 {
        t = $2; sub(/\.other_pct$/, "", t)
        printf "- noise: other processes took %.0f%% of CPU 1 during %s %s.\n", $3, $1, t
    }' "$results"
} >"$notes"

# How an idle CPU waits, which sets what waking one costs: under a
# hypervisor, a halted vCPU is woken by an IPI that exits to the host on
# the waker's core, so every response that wakes a sleeping wrk costs the
# server that. With cpuidle-haltpoll polling first (guest_halt_poll_ns > 0)
# a vCPU that went idle moments ago is woken without one. On one such VM,
# polling off then on, edgeslab's 100 KiB hits went from 0.040 to 0.019 CPU
# s per 1,000 (benches/results/compare-2026-12-03.md).
idle_line() {
    local driver poll
    driver=$(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null || echo unknown)
    if [ -r /sys/module/haltpoll/parameters/guest_halt_poll_ns ]; then
        poll=", guest_halt_poll_ns $(cat /sys/module/haltpoll/parameters/guest_halt_poll_ns)"
    fi
    echo "CPU idle driver: $driver${poll:-}. TCP congestion control: $(sysctl -n net.ipv4.tcp_congestion_control 2>/dev/null || echo unknown)${TCP_CC:+ (set for this run; the machine has $cc_before)}."
}

mkdir -p "$(dirname "$OUT")"
{
    echo "# edgeslab beside nginx, Varnish and ATS ($started_at)"
    echo
    echo "$versions_line."
    echo "$(nproc) cores; origin (nginx, 1 worker) and wrk on CPU 0, the cache under test alone on CPU 1 with one"
    echo "worker/shard/thread pool; wrk -t1 -c$CONNS -d${DURATION}s per run; caches of ${CACHE_SIZE_MB} MiB;"
    echo "load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg) (a shared machine: numbers are noisy)."
    idle_line
    echo "Ratio: edgeslab ÷ the best of the others; above 1 is better on 'higher' rows, below 1 on 'lower' rows."
    echo "'check' rows show that the hit runs were hits (no origin requests), that nothing failed, and how"
    echo "much of the cache's core other processes took (the noise)."
    echo
    python3 "$TEMPLATES/table.py" "$results" "$SERVERS"
    echo
    cat "$notes"
} >"$OUT"
cat "$OUT"
echo
echo "table written to $OUT"
failed=0
