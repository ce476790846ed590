#!/usr/bin/env python3
"""Turns bench/compare's JSON lines into one Markdown table: per scenario and metric,
Busbar's median, a peer's median, Busbar ÷ peer, each with its spread over the repetitions,
and issue #13's target where it sets one.

Usage: summarize.py runs.jsonl [more.jsonl ...] > results.md"""
import json
import statistics
import sys
from collections import defaultdict

PEER_NAMES = {
    "rabbit-classic": "RabbitMQ classic",
    "rabbit-quorum": "RabbitMQ quorum",
}


class Row:
    """One metric of one case. `target` is issue #13's aim as (text, test); the test gets
    Busbar's median and the ratio Busbar ÷ peer (None without a peer)."""

    def __init__(self, case, field, scenario, metric, unit, target=None):
        self.case, self.field = case, field
        self.scenario, self.metric, self.unit = scenario, metric, unit
        self.target = target


def ratio_at_least(x):
    return (f"≥ {x:g}× the peer", lambda busbar, ratio: ratio is not None and ratio >= x)


def ratio_at_most(x):
    return (f"≤ {x:g}× the peer", lambda busbar, ratio: ratio is not None and ratio <= x)


def busbar_at_most(x, unit):
    return (f"≤ {x:g}{'' if unit == '×' else ' '}{unit}", lambda busbar, ratio: busbar is not None and busbar <= x)


def core_rows(cases, count_of):
    rows = []
    for suffix, client in (("-independent", "independent client"), ("", "busbar-bench")):
        # The unbatched client is what #13 aims at; busbar-bench's own is the reference.
        unbatched = suffix == "-independent"
        for case, scenario in (
            (f"send-w1000{suffix}", "send {}, window 1000, " + client),
            (f"recv-c1000{suffix}", "receive {}, credit 1000, accept each, " + client),
        ):
            if case not in cases:
                continue
            scenario = scenario.format(count_of(case))
            rows.append(Row(case, "msgs_per_sec", scenario, "msgs/s", "rate",
                            ratio_at_least(4) if unbatched else None))
            rows.append(Row(case, "broker_cpu_us_per_msg", scenario, "broker CPU µs/msg", "cpu",
                            busbar_at_most(8, "µs") if unbatched else None))
            if case.startswith("send"):
                rows.append(Row(case, "p99_us", scenario, "publish → disposition p99 (ms)", "ms"))
    rows += [
        Row("rtt", "p50_us", "idle round trip send → receive", "p50 (ms)", "ms"),
        Row("rtt", "p99_us", "idle round trip send → receive", "p99 (ms)", "ms"),
        Row("rtt", "confirm_p50_us", "idle round trip send → receive", "publish → disposition p50 (ms)", "ms"),
        Row("mixed-max", "msgs_per_sec", "mixed unthrottled", "consumed msgs/s", "rate"),
        Row("mixed-max", "broker_cpu_us_per_msg", "mixed unthrottled", "broker CPU µs/msg", "cpu"),
        Row("mixed-max", "broker_rss_mib", "mixed unthrottled", "broker RSS after (MiB)", "mib"),
        Row("mixed-rate1000", "p50_us", "mixed at 1000 msgs/s", "end to end p50 (ms)", "ms"),
        Row("mixed-rate1000", "p99_us", "mixed at 1000 msgs/s", "end to end p99 (ms)", "ms"),
        Row("fill-1M", "msgs_per_sec", "fill, window 1000", "msgs/s", "rate"),
        Row("fill-1M", "broker_rss_mib", "fill, window 1000", "broker RSS with the fill queued (MiB)", "mib"),
        Row("restart-1M", "ready_ms", "graceful restart with the fill queued", "start → ready (ms)", "int"),
        Row("restart-1M", "first_message_ms", "graceful restart with the fill queued", "start → first message (ms)", "int"),
        Row("restart-1M", "rss_after_restart_mib", "graceful restart with the fill queued", "RSS right after (MiB)", "mib"),
        Row("restart-1M", "drained_after_restart", "graceful restart with the fill queued", "messages drained after (+1 probe)", "int"),
        Row("restart-1M", "drain_msgs_per_sec", "graceful restart with the fill queued", "drain msgs/s", "rate"),
    ]
    return rows


def sized(cases, prefix):
    return sorted({int(c[len(prefix):]) for c in cases
                   if c.startswith(prefix) and c[len(prefix):].isdigit()})


def scenario_rows(cases, count_of, disk):
    rows = []
    for n in sized(cases, "fanout-"):
        case = f"fanout-{n}"
        scenario = f"fan-out to {n} subscription{'' if n == 1 else 's'}, {count_of(case, n)} messages"
        rows.append(Row(case, "msgs_per_sec", scenario, "deliveries/s", "rate", ratio_at_least(4)))
        rows.append(Row(case, "broker_cpu_us_per_msg", scenario, "broker CPU µs/delivery", "cpu",
                        ratio_at_most(0.25)))
        rows.append(Row(case, "p99_us", scenario, "publish → delivery p99 (ms)", "ms"))
    for size in sorted(set(sized(cases, "send-large-")) | set(sized(cases, "recv-large-"))):
        label = f"{size / 1048576:g} MiB" if size % 1048576 == 0 else f"{size} B"
        for kind, verb in (("send", "send"), ("recv", "receive")):
            case = f"{kind}-large-{size}"
            scenario = f"{verb} {count_of(case)} × {label}"
            rows.append(Row(case, "mb_per_sec", scenario, f"MB/s (disk: {disk})", "mbs"))
            rows.append(Row(case, "broker_cpu_us_per_msg", scenario, "broker CPU ms/msg", "cpu_ms"))
    for n in sized(cases, "entities-"):
        case = f"entities-{n}"
        scenario = f"{n:,} queues"
        per_queue = count_of(f"entities-send-{n}", 1, n)
        rows.append(Row(case, "ready_ms_empty", scenario, "start → ready, idle (ms)", "int",
                        busbar_at_most(2000, "ms")))
        rows.append(Row(case, "rss_idle_mib", scenario, "RSS idle (MiB)", "mib"))
        rows.append(Row(case, "rss_idle_kib_per_queue", scenario, "RSS per idle queue (KiB, whole process ÷ queues)",
                        "mib", busbar_at_most(50, "KiB")))
        rows.append(Row(f"entities-send-{n}", "msgs_per_sec", scenario,
                        f"send {per_queue} per queue, a link each (msgs/s)", "rate"))
        rows.append(Row(f"entities-send-{n}", "broker_cpu_us_per_msg", scenario, "send: broker CPU µs/msg", "cpu"))
        rows.append(Row(case, "ready_ms_with_messages", scenario, "start → ready with them queued (ms)", "int"))
        rows.append(Row(case, "rss_with_messages_mib", scenario, "RSS then (MiB)", "mib"))
        rows.append(Row(f"entities-recv-{n}", "msgs_per_sec", scenario, "receive and accept them (msgs/s)", "rate"))
        rows.append(Row(f"entities-recv-{n}", "broker_cpu_us_per_msg", scenario, "receive: broker CPU µs/msg", "cpu"))
    for n in sized(cases, "connections-"):
        case = f"connections-{n}"
        scenario = f"{n:,} idle connections (token + receiver link each)"
        rows.append(Row(case, "broker_rss_mib", scenario, "RSS with them (MiB)", "mib",
                        busbar_at_most(1024, "MiB")))
        rows.append(Row(case, "broker_rss_kib_per_connection", scenario, "RSS per connection (KiB)", "mib"))
        rows.append(Row(case, "connections_per_sec", scenario, "opened per second (one client thread)", "rate"))
        rows.append(Row(case, "rtt_p99_us_idle", scenario, "busy client's rtt p99, idle broker (ms)", "ms"))
        rows.append(Row(case, "rtt_p99_us_with_connections", scenario, "rtt p99 with them open (ms)", "ms"))
        rows.append(Row(case, "p99_ratio", scenario, "rtt p99 with ÷ without them", "x",
                        busbar_at_most(2, "×")))
    return rows


def fmt(v, unit):
    if v is None:
        return "–"
    if unit == "ms":
        return f"{v / 1000:.2f}"
    if unit == "cpu_ms":
        return f"{v / 1000:.1f}"
    if unit in ("rate", "int"):
        return f"{v:,.0f}"
    if unit == "x":
        return f"{v:.2f}"
    return f"{v:,.1f}"


def with_spread(values, unit):
    """Median, and the lowest and highest when they differ."""
    if not values:
        return "–"
    med = fmt(statistics.median(values), unit)
    lo, hi = fmt(min(values), unit), fmt(max(values), unit)
    return med if lo == hi else f"{med} ({lo}–{hi})"


def ratio_text(ratio, per_rep):
    if ratio is None:
        return "–"
    text = f"{ratio:.2f}×"
    if len(per_rep) > 1:
        lo, hi = f"{min(per_rep):.2f}", f"{max(per_rep):.2f}"
        if lo != hi:
            text += f" ({lo}–{hi})"
    return text


def main():
    # (case, broker) -> {(file, rep or line number): run}
    runs = defaultdict(dict)
    metas, failed, others, steals, elapsed = [], [], [], [], []
    superseded = 0
    for file_no, path in enumerate(sys.argv[1:]):
        with open(path) as f:
            for line_no, line in enumerate(f):
                line = line.strip()
                if not line:
                    continue
                r = json.loads(line)
                if r.get("case") == "meta":
                    metas.append(r)
                    continue
                if r.get("case") == "elapsed":
                    elapsed.append(r["secs"])
                    continue
                if r.get("failed"):
                    failed.append(f"{r.get('case')} on {r.get('broker')} (repetition {r.get('rep', '?')})")
                    continue
                if r.get("superseded"):
                    superseded += 1
                    continue
                rep = r.get("rep") or f"line {line_no}"
                runs[(r["case"], r["broker"])][(file_no, rep)] = r
                if r.get("other_cores") is not None:
                    others.append(r["other_cores"])
                if r.get("steal_cores") is not None:
                    steals.append(r["steal_cores"])
    cases = {case for case, _ in runs}

    def values(case, broker, field):
        return {k: r[field] for k, r in runs.get((case, broker), {}).items() if r.get(field) is not None}

    def count_of(case, divisor=1, over=1):
        """The messages one run of `case` handled (÷ divisor, per `over` entities)."""
        msgs = [r.get("msgs") for (c, _), rs in runs.items() if c == case for r in rs.values()]
        msgs = [m for m in msgs if m]
        if not msgs:
            return "?"
        n = round(statistics.median(msgs) / divisor / over)
        return f"{n // 1000}k" if n >= 10000 and n % 1000 == 0 else f"{n:,}"

    disk_runs = list(values("disk-seq-write", "disk", "mb_per_sec").values())
    disk = f"dd {with_spread(disk_runs, 'mbs')} MB/s" if disk_runs else "dd not run"
    peers = [p for p in PEER_NAMES if any(b == p for _, b in runs)]

    print("| scenario | metric | Busbar | peer | peer's figure | Busbar ÷ peer | #13 target |")
    print("|---|---|---|---|---|---|---|")
    for row in core_rows(cases, count_of) + scenario_rows(cases, count_of, disk):
        ours = values(row.case, "busbar", row.field)
        row_peers = [p for p in peers if values(row.case, p, row.field)] or [None]
        if not ours and row_peers == [None]:
            continue
        for peer in row_peers:
            theirs = values(row.case, peer, row.field) if peer else {}
            ratio, per_rep = None, []
            if ours and theirs:
                ratio = statistics.median(ours.values()) / statistics.median(theirs.values()) \
                    if statistics.median(theirs.values()) else None
                per_rep = [ours[k] / theirs[k] for k in ours if k in theirs and theirs[k]]
            target = "–"
            if row.target:
                text, test = row.target
                median = statistics.median(ours.values()) if ours else None
                target = f"{text}: {'met' if test(median, ratio) else 'not met'}" if ours else text
            print("| " + " | ".join([
                row.scenario, row.metric, with_spread(list(ours.values()), row.unit),
                PEER_NAMES.get(peer, "–"), with_spread(list(theirs.values()), row.unit),
                ratio_text(ratio, per_rep), target,
            ]) + " |")

    print()
    reps = sorted({m.get("reps") for m in metas if m.get("reps")})
    for m in metas:
        print(f"Run of {m.get('started')}: `{m.get('command')}` at commit {m.get('commit')}, "
              f"RabbitMQ {m.get('rabbitmq')}, {m.get('cores')} cores.")
    for secs in elapsed:
        print(f"The whole run took {secs // 60} min {secs % 60} s.")
    print(f"Figures are medians over the repetitions ({'/'.join(map(str, reps)) or '?'}), "
          "in brackets the lowest and highest run. Busbar ÷ peer is the ratio of the medians, "
          "in brackets the lowest and highest ratio of one repetition's Busbar run to the "
          "same repetition's peer run; for rates higher is better, for latency, CPU and RSS "
          "lower.")
    print("Messages are 1 KiB and durable except in the large-message rows (their size is in "
          "the scenario). Rows name their client: busbar-bench's own (many frames per write, "
          "settlements in ranges) or the independent one (fe2o3-amqp: one transfer per "
          "write, one disposition per settlement, like the SDKs); every client runs on one "
          "thread. Broker CPU is sampled from /proc in 10 ms ticks, so short runs are coarse.")
    for case, broker in sorted(runs):
        if case.startswith("entities-declare-"):
            ms = [r["declare_ms"] for r in runs[(case, broker)].values()]
            print(f"Declaring the {case.rsplit('-', 1)[1]} queues on {PEER_NAMES.get(broker, broker)} "
                  f"took {statistics.median(ms) / 1000:.0f} s (Busbar reads them from its Config.json).")
    if others:
        print(f"Other processes' CPU during the runs (other_cores): median {statistics.median(others):.2f}, "
              f"max {max(others):.2f} cores; the hypervisor's steal: median "
              f"{statistics.median(steals) if steals else 0:.2f}, max {max(steals) if steals else 0:.2f} cores.")
    if superseded:
        print(f"{superseded} runs slowed by foreign load were repeated and left out.")
    if failed:
        print(f"FAILED runs, left out: {', '.join(failed)}.")


if __name__ == "__main__":
    main()
