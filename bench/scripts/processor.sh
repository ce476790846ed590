#!/usr/bin/env bash
# The SDK's ServiceBusProcessor against busbar-bench's own receive loop on one release
# broker, in the same run: per repetition, over COUNT prefilled 1 KiB durable messages,
# `receive` (credit WINDOW, each delivery accepted), then `processor` at concurrency 32 and 1
# (prefetch WINDOW, peek-lock, each message completed). Prints every JSON line and, at the
# end, the medians and the processor's share of `receive`.
#
#   bench/scripts/processor.sh [REPS (3)] [COUNT (100000)] [WINDOW (1000)]
set -euo pipefail
REPS=${1:-3}
COUNT=${2:-100000}
WINDOW=${3:-1000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
AMQP_PORT=5694
HTTP_PORT=5394

cd "$ROOT"
# shellcheck source=release-broker.sh
. bench/scripts/release-broker.sh
start_release_broker processor "$AMQP_PORT" "$((AMQP_PORT + 1))" "$HTTP_PORT"

OUT="bench/results/processor-$(date -u +%Y%m%d-%H%M%S).jsonl"
bench() {
    target/release/busbar-bench --broker busbar --url "127.0.0.1:$AMQP_PORT" --queue bench \
        --sas-key-name RootManageSharedAccessKey --sas-key SAS_KEY_VALUE \
        --broker-pid "$PID" "$@"
}
for rep in $(seq 1 "$REPS"); do
    echo "repetition $rep of $REPS; $(uptime)" >&2
    for run in "receive --credit $WINDOW" "processor --concurrency 32 --prefetch $WINDOW" \
        "processor --concurrency 1 --prefetch $WINDOW"; do
        bench fill --count "$COUNT" >/dev/null 2>&1
        # shellcheck disable=SC2086
        bench $run --count "$COUNT" | tee -a "$OUT"
    done
done

python3 - "$OUT" "$WINDOW" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
def median(scenario, concurrency, field):
    return statistics.median(r[field] for r in runs
                             if r["scenario"] == scenario and r.get("concurrency") == concurrency)
base = median("receive", None, "msgs_per_sec")
print(f"\n{sys.argv[1]} (window {sys.argv[2]})")
print("| 1 KiB durable | msgs/s | share of receive | broker / client CPU µs/msg |")
print("|---|---|---|---|")
for label, scenario, concurrency in ((f"receive, credit {sys.argv[2]}", "receive", None),
                                     ("processor, concurrency 32", "processor", 32),
                                     ("processor, concurrency 1", "processor", 1)):
    rate = median(scenario, concurrency, "msgs_per_sec")
    cpu = [median(scenario, concurrency, f) for f in ("broker_cpu_us_per_msg", "client_cpu_us_per_msg")]
    print(f"| {label} | {rate:,.0f} | {rate / base:.0%} | {cpu[0]:.1f} / {cpu[1]:.1f} |")
PY
