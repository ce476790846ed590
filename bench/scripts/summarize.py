#!/usr/bin/env python3
"""Turns busbar-bench JSON lines into a Markdown table: median per case and broker, with
Busbar/peer ratios. Usage: summarize.py runs.jsonl [more.jsonl ...] > results.md"""
import json
import statistics
import sys
from collections import defaultdict

CASES = [
    ("send-w1000", "msgs_per_sec", "send 100k, window 1000 (msgs/s)", True),
    ("send-w1000", "p99_us", "send: publish→disposition p99 (ms)", False),
    ("recv-c1000", "msgs_per_sec", "receive 100k, credit 1000, accept each (msgs/s)", True),
    ("send-w1000-independent", "msgs_per_sec", "independent client: send 100k, window 1000 (msgs/s)", True),
    ("recv-c1000-independent", "msgs_per_sec", "independent client: receive 100k, credit 1000 (msgs/s)", True),
    ("mixed-max", "msgs_per_sec", "mixed unthrottled: consumed msgs/s", True),
    ("mixed-max", "p50_us", "mixed unthrottled: e2e p50 (ms)", False),
    ("mixed-max", "p99_us", "mixed unthrottled: e2e p99 (ms)", False),
    ("mixed-rate1000", "p50_us", "mixed at 1000 msgs/s: e2e p50 (ms)", False),
    ("mixed-rate1000", "p99_us", "mixed at 1000 msgs/s: e2e p99 (ms)", False),
    ("rtt", "p50_us", "idle round trip send→receive p50 (ms)", False),
    ("rtt", "p99_us", "idle round trip send→receive p99 (ms)", False),
    ("rtt", "confirm_p50_us", "idle publish→disposition p50 (ms)", False),
    ("send-w1000", "broker_cpu_us_per_msg", "send: broker CPU µs/msg", False),
    ("recv-c1000", "broker_cpu_us_per_msg", "receive: broker CPU µs/msg", False),
    ("send-w1000-independent", "broker_cpu_us_per_msg", "independent client, send: broker CPU µs/msg", False),
    ("recv-c1000-independent", "broker_cpu_us_per_msg", "independent client, receive: broker CPU µs/msg", False),
    ("mixed-max", "broker_cpu_us_per_msg", "mixed: broker CPU µs/msg", False),
    ("mixed-max", "broker_rss_mib", "broker RSS after mixed (MiB)", False),
    ("fill-1M", "msgs_per_sec", "fill (window 1000) msgs/s", True),
    ("fill-1M", "broker_rss_mib", "broker RSS with the fill queued (MiB)", False),
    ("restart-1M", "ready_ms", "graceful restart: start → ready (ms)", False),
    ("restart-1M", "first_message_ms", "graceful restart: start → first message (ms)", False),
    ("restart-1M", "rss_after_restart_mib", "RSS right after restart (MiB)", False),
    ("restart-1M", "drained_after_restart", "messages drained after restart (+1 probe)", True),
    ("restart-1M", "drain_msgs_per_sec", "drain after restart msgs/s", True),
]
PEERS = ["rabbit-classic", "rabbit-quorum"]


def scenario_cases(cases):
    """Rows for the scenarios whose case names carry their size: fanout-N, send-large-S,
    recv-large-S, in the order of N and S."""
    rows = []
    fanouts = sorted({int(c.split("-")[1]) for c in cases if c.startswith("fanout-")})
    for n in fanouts:
        rows.append((f"fanout-{n}", "msgs_per_sec", f"fan-out to {n} subscriptions: deliveries/s", True))
        rows.append((f"fanout-{n}", "broker_cpu_us_per_msg", f"fan-out to {n}: broker CPU µs/delivery", False))
        rows.append((f"fanout-{n}", "p99_us", f"fan-out to {n}: publish→delivery p99 (ms)", False))
    sizes = sorted({int(c.rsplit("-", 1)[1]) for c in cases if c.startswith(("send-large-", "recv-large-"))})
    for size in sizes:
        label = f"{size / 1048576:g} MiB" if size % 1048576 == 0 else f"{size} B"
        for kind in ("send", "recv"):
            rows.append((f"{kind}-large-{size}", "mb_per_sec", f"{kind} {label} bodies (MB/s)", True))
            rows.append((f"{kind}-large-{size}", "broker_cpu_us_per_msg", f"{kind} {label}: broker CPU µs/msg", False))
    return rows


def main():
    runs = defaultdict(list)
    others = []
    steals = []
    superseded = 0
    for path in sys.argv[1:]:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                r = json.loads(line)
                if r.get("failed"):
                    continue
                if r.get("superseded"):
                    superseded += 1
                    continue
                runs[(r["case"], r["broker"])].append(r)
                if r.get("other_cores") is not None:
                    others.append(r["other_cores"])
                if r.get("steal_cores") is not None:
                    steals.append(r["steal_cores"])
    brokers = [b for b in ["busbar"] + PEERS if any(k[1] == b for k in runs)]

    def med(case, broker, field):
        vals = [r[field] for r in runs.get((case, broker), []) if r.get(field) is not None]
        return statistics.median(vals) if vals else None

    def fmt(v, field):
        if v is None:
            return "–"
        if field.endswith("_us") and field not in ("broker_cpu_us_per_msg",):
            return f"{v / 1000:.2f}"
        if field == "mb_per_sec":
            return f"{v:.1f}"
        if field in ("msgs_per_sec", "drain_msgs_per_sec", "drained_after_restart", "ready_ms",
                     "first_message_ms"):
            return f"{v:.0f}"
        return f"{v:.1f}"

    head = ["metric"] + brokers
    if "busbar" in brokers:
        head += [f"busbar/{p}" for p in PEERS if p in brokers]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for case, field, title, higher_better in CASES + scenario_cases({k[0] for k in runs}):
        row = [title]
        vals = {b: med(case, b, field) for b in brokers}
        if all(v is None for v in vals.values()):
            continue
        row += [fmt(vals[b], field) for b in brokers]
        if "busbar" in brokers:
            for p in PEERS:
                if p not in brokers:
                    continue
                a, b = vals.get("busbar"), vals.get(p)
                row.append(f"{a / b:.2f}×" if a is not None and b else "–")
        print("| " + " | ".join(row) + " |")
    disk = [r["mb_per_sec"] for (case, _), rs in runs.items() if case == "disk-seq-write"
            for r in rs if r.get("mb_per_sec") is not None]
    if disk:
        print()
        print(f"Disk sequential write (dd, 1 MiB blocks, O_DIRECT): {statistics.median(disk):.1f} MB/s.")
    n = sum(len(v) for v in runs.values())
    print()
    print(f"Median of {n} runs over {len(runs)} case/broker pairs; 1 KiB durable messages; "
          "client: busbar-bench (one tokio thread). Ratios are Busbar ÷ peer "
          "(for msgs/s higher is better, for latency and CPU lower is better).")
    if others:
        print(f"Foreign CPU load during runs (other_cores): median {statistics.median(others):.2f}, "
              f"max {max(others):.2f} cores.")
    if steals:
        print(f"CPU taken by the hypervisor during runs (steal_cores): median "
              f"{statistics.median(steals):.2f}, max {max(steals):.2f} cores.")
    if superseded:
        print(f"{superseded} contended runs were repeated and left out.")


if __name__ == "__main__":
    main()
