"""Render compare.sh's results (lines "server<TAB>metric<TAB>value") as one
markdown table: a row per metric, a column per server, and the ratio
edgeslab / best of the others, with each row's direction stated.

Usage: table.py RESULTS.tsv "SERVER ..."   (markdown on stdout)
"""
import sys

# metric key, label, direction ("higher", "lower" or "check"), format
ROWS = [
    ("warm.origin", "warm-up: origin requests for the 1,300 hit keys (want 1,300)", "check", "{:,.0f}"),
    ("warm.refetched", "warm-up: origin requests when asked for them again (want 0)", "check", "{:,.0f}"),
    ("hit1k.rps", "1 KiB hits, 1,000 keys: req/s", "higher", "{:,.0f}"),
    ("hit1k.p50_ms", "1 KiB hits: p50 latency, ms", "lower", "{:.2f}"),
    ("hit1k.p99_ms", "1 KiB hits: p99 latency, ms", "lower", "{:.2f}"),
    ("hit1k.cpu", "1 KiB hits: server CPU s per 1k req", "lower", "{:.4f}"),
    ("hit1k.all_cpu", "1 KiB hits: both cores' CPU s per 1k req (wrk, kernel and origin included)", "lower", "{:.4f}"),
    ("hit1k.cpu_pct", "1 KiB hits: server CPU use, % of its core", "check", "{:.0f}"),
    ("hit1k.other_pct", "1 KiB hits: other processes' use of that core, %", "check", "{:.0f}"),
    ("hit1k.rss", "1 KiB hits: peak RSS so far, MiB", "lower", "{:,.0f}"),
    ("hit1k.origin", "1 KiB hits: origin requests during the run (want 0)", "check", "{:,.0f}"),
    ("hit1k.errors", "1 KiB hits: wrk errors (want 0)", "check", "{:,.0f}"),
    ("hit100k.rps", "100 KiB hits, 100 keys: req/s", "higher", "{:,.0f}"),
    ("hit100k.mibps", "100 KiB hits: MiB/s", "higher", "{:,.0f}"),
    ("hit100k.p99_ms", "100 KiB hits: p99 latency, ms", "lower", "{:.2f}"),
    ("hit100k.cpu", "100 KiB hits: server CPU s per 1k req", "lower", "{:.4f}"),
    ("hit100k.all_cpu", "100 KiB hits: both cores' CPU s per 1k req (wrk, kernel and origin included)", "lower", "{:.4f}"),
    ("hit100k.cpu_pct", "100 KiB hits: server CPU use, % of its core", "check", "{:.0f}"),
    ("hit100k.other_pct", "100 KiB hits: other processes' use of that core, %", "check", "{:.0f}"),
    ("hit100k.rss", "100 KiB hits: peak RSS so far, MiB", "lower", "{:,.0f}"),
    ("hit100k.origin", "100 KiB hits: origin requests during the run (want 0)", "check", "{:,.0f}"),
    ("hit100k.errors", "100 KiB hits: wrk errors (want 0)", "check", "{:,.0f}"),
    ("hit1m.mibps", "1 MiB hits, 200 keys: MiB/s", "higher", "{:,.0f}"),
    ("hit1m.p50_ms", "1 MiB hits: p50 latency, ms", "lower", "{:.2f}"),
    ("hit1m.p99_ms", "1 MiB hits: p99 latency, ms", "lower", "{:.2f}"),
    ("hit1m.cpu", "1 MiB hits: server CPU s per 1k req", "lower", "{:.4f}"),
    ("hit1m.all_cpu", "1 MiB hits: both cores' CPU s per 1k req (wrk, kernel and origin included)", "lower", "{:.4f}"),
    ("hit1m.cpu_pct", "1 MiB hits: server CPU use, % of its core", "check", "{:.0f}"),
    ("hit1m.other_pct", "1 MiB hits: other processes' use of that core, %", "check", "{:.0f}"),
    ("hit1m.rss", "1 MiB hits: peak RSS so far, MiB", "lower", "{:,.0f}"),
    ("hit1m.origin", "1 MiB hits: origin requests during the run (want 0)", "check", "{:,.0f}"),
    ("hit1m.errors", "1 MiB hits: wrk errors (want 0)", "check", "{:,.0f}"),
    ("miss.rps", "1 KiB misses, unique keys: req/s", "higher", "{:,.0f}"),
    ("miss.p50_ms", "1 KiB misses: p50 latency, ms", "lower", "{:.2f}"),
    ("miss.p99_ms", "1 KiB misses: p99 latency, ms", "lower", "{:.2f}"),
    ("miss.cpu", "1 KiB misses: server CPU s per 1k req", "lower", "{:.4f}"),
    ("miss.all_cpu", "1 KiB misses: both cores' CPU s per 1k req (wrk, kernel and origin included)", "lower", "{:.4f}"),
    ("miss.cpu_pct", "1 KiB misses: server CPU use, % of its core", "check", "{:.0f}"),
    ("miss.other_pct", "1 KiB misses: other processes' use of that core, %", "check", "{:.0f}"),
    ("miss.rss", "1 KiB misses: peak RSS so far, MiB", "lower", "{:,.0f}"),
    ("miss.origin_per_req", "1 KiB misses: origin requests per viewer request (want ≈1)", "check", "{:.3f}"),
    ("miss.errors", "1 KiB misses: wrk errors (want 0)", "check", "{:,.0f}"),
    ("idle.conn_kib", "idle keep-alive connections: resident set added per connection, KiB", "lower", "{:,.1f}"),
    ("cold.fill_rss_mib", "cold 100 MiB: resident set added by the fill in flight (two viewers), MiB", "lower", "{:,.1f}"),
    ("cold.ttfb_origin_ms", "cold 100 MiB: TTFB direct from the origin, ms (reference)", "check", "{:,.1f}"),
    ("cold.ttfb_first_ms", "cold 100 MiB: TTFB of the first viewer via the cache, ms", "lower", "{:,.1f}"),
    ("cold.ttfb_second_ms", "cold 100 MiB: TTFB of a second viewer 1 s into the fill, ms", "lower", "{:,.1f}"),
    ("cold.total_second_s", "cold 100 MiB: second viewer's whole download, s", "lower", "{:.2f}"),
    ("cold.origin", "cold 100 MiB: origin requests for the key (want 1)", "check", "{:,.0f}"),
    ("cold.bad", "cold 100 MiB: viewers without a full 200 (want 0)", "check", "{:,.0f}"),
]

NAMES = {"edgeslab": "edgeslab", "nginx": "nginx", "varnish": "Varnish", "ats": "ATS"}


def main():
    path, servers = sys.argv[1], sys.argv[2].split()
    values = {}
    with open(path) as f:
        for line in f:
            server, key, value = line.rstrip("\n").split("\t")
            values[(server, key)] = float(value)
    head = ["test: metric", "better"] + [NAMES.get(s, s) for s in servers] + ["edgeslab ÷ best of others"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for key, label, better, fmt in ROWS:
        cells = []
        for s in servers:
            v = values.get((s, key))
            cells.append("–" if v is None else fmt.format(v))
        ratio = "–"
        mine = values.get(("edgeslab", key))
        others = [values[(s, key)] for s in servers if s != "edgeslab" and (s, key) in values]
        if better != "check" and mine is not None and others:
            best = max(others) if better == "higher" else min(others)
            if best > 0:
                ratio = f"{mine / best:.2f}×"
        arrow = {"higher": "higher ↑", "lower": "lower ↓", "check": "check"}[better]
        print("| " + " | ".join([label, arrow] + cells + [ratio]) + " |")


if __name__ == "__main__":
    main()
