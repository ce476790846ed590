#!/usr/bin/env bash
# What the broker spends per message besides its instructions (which callgrind.sh counts):
# one release broker runs natively; for each scenario (`receive`, busbar-bench's own loop
# with credit 1000 and settle-first accepts, then the SDK's processor at concurrency 32 and
# 1, peek-lock with settle-second completes) COUNT 1 KiB durable messages are filled
# untimed and drained, and per message it prints the broker's CPU (user and system), its
# context switches (voluntary and not), its write system calls and the store's fdatasyncs,
# counted around the drain from /proc/PID and `/metrics`; per thread (the runtime's
# workers, the store's writer) in OUT_DIR/<scenario>.threads. With STRACE=1 a
# `strace -c -f` of the broker during each drain goes to OUT_DIR/<scenario>.strace (strace
# slows the broker down, so its rounds and groups grow: read those counts as an upper
# bound of the calls per message). BUSBAR_DURABILITY=buffered runs the broker without
# fsyncs, to tell their share.
#
#   bench/scripts/kernel-counts.sh [COUNT (100000)] [OUT_DIR (a new temporary directory)]
#
# AMQP_PORT (AMQPS on the next one) and HTTP_PORT choose the broker's ports.
set -euo pipefail
COUNT=${1:-100000}
OUT_DIR=${2:-$(mktemp -d /tmp/busbar-kernel-counts.XXXXXX)}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
AMQP_PORT=${AMQP_PORT:-5702}
HTTP_PORT=${HTTP_PORT:-5402}

cd "$ROOT"
mkdir -p "$OUT_DIR"
# shellcheck source=release-broker.sh
. bench/scripts/release-broker.sh
start_release_broker kernel-counts "$AMQP_PORT" "$((AMQP_PORT + 1))" "$HTTP_PORT"

bench() {
    target/release/busbar-bench --broker busbar --url "127.0.0.1:$AMQP_PORT" --queue bench \
        --sas-key-name RootManageSharedAccessKey --sas-key SAS_KEY_VALUE --stall-secs 600 \
        --broker-pid "$PID" "$@"
}
# One line per thread: name, voluntary and involuntary switches, utime and stime (ticks).
threads() {
    for task in /proc/"$PID"/task/*; do
        echo "$(cat "$task/comm") $(awk '/ctxt_switches/ {printf "%s ", $2}' "$task/status")" \
            "$(awk '{print $14, $15}' "$task/stat")"
    done
}
# The broker's write system calls and the store's fdatasyncs so far.
io_counts() {
    local fsyncs
    fsyncs=$(curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" |
        awk '/^busbar_store_fsyncs_total/ {print $2}')
    echo "$(awk '/^syscw/ {print $2}' /proc/"$PID"/io) ${fsyncs:-0}"
}

echo "release broker; $COUNT messages per run; counts in $OUT_DIR" >&2
printf '%-24s %9s %11s %11s %9s %9s %9s %9s\n' scenario "msgs/s" "user µs" "system µs" \
    "vol cs" "invol cs" writes fsyncs
for run in "receive --credit 1000" "processor --concurrency 32" "processor --concurrency 1"; do
    bench fill --count "$COUNT" >/dev/null 2>&1
    label=$(echo "$run" | awk '{print $1 "-" $NF}')
    threads >"$OUT_DIR/$label.before"
    io_before=$(io_counts)
    if [ "${STRACE:-0}" = 1 ]; then
        strace -c -f -p "$PID" -o "$OUT_DIR/$label.strace" 2>/dev/null &
        STRACE_PID=$!
        sleep 0.5
    fi
    # shellcheck disable=SC2086
    bench $run --count "$COUNT" >"$OUT_DIR/$label.json" 2>/dev/null
    io_after=$(io_counts)
    threads >"$OUT_DIR/$label.after"
    if [ "${STRACE:-0}" = 1 ]; then
        kill -INT "$STRACE_PID"
        wait "$STRACE_PID" || true
    fi
    python3 - "$label" "$COUNT" "$OUT_DIR" "$io_before" "$io_after" "$(getconf CLK_TCK)" <<'PY'
import json, sys
label, count, out, io_before, io_after, ticks = sys.argv[1:7]
count, tick_us = int(count), 1e6 / int(ticks)
def per_thread(path):
    totals = {}
    for line in open(path):
        name, *values = line.split()
        row = totals.setdefault(name, [0, 0, 0, 0])
        for i, value in enumerate(values):
            row[i] += int(value)
    return totals
before, after = per_thread(f"{out}/{label}.before"), per_thread(f"{out}/{label}.after")
delta = {name: [a - b for a, b in zip(row, before.get(name, [0] * 4))] for name, row in after.items()}
with open(f"{out}/{label}.threads", "w") as threads:
    for name, (vol, invol, user, system) in sorted(delta.items()):
        threads.write(f"{name:18} vol cs {vol / count:.4f} invol cs {invol / count:.4f} "
                      f"user {user * tick_us / count:.2f} µs system {system * tick_us / count:.2f} µs\n")
total = [sum(row[i] for row in delta.values()) for i in range(4)]
io = [float(a) - float(b) for a, b in zip(io_after.split(), io_before.split())]
rate = json.loads(open(f"{out}/{label}.json").read().strip().splitlines()[-1])["msgs_per_sec"]
print(f"{label:24} {rate:9,.0f} {total[2] * tick_us / count:11.2f} {total[3] * tick_us / count:11.2f} "
      f"{total[0] / count:9.4f} {total[1] / count:9.4f} {io[0] / count:9.4f} {io[1] / count:9.4f}")
PY
done
