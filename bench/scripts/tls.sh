#!/usr/bin/env bash
# Plain AMQP against AMQP over TLS, and over WebSockets (ws:// and wss://), on one release
# broker, in the same run: per repetition, `send` then `receive` (1 KiB durable) plain, then
# the same over TLS (the development CA trusted with --tls-ca), over ws:// and over wss://,
# so all see the same machine. Prints every JSON line and, at the end, the medians and the
# cost of each against plain.
#
#   bench/scripts/tls.sh [REPS (3)] [COUNT (200000)]
set -euo pipefail
REPS=${1:-3}
COUNT=${2:-200000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PLAIN_PORT=5692
TLS_PORT=5693
HTTP_PORT=5392

cd "$ROOT"
# shellcheck source=release-broker.sh
. bench/scripts/release-broker.sh
start_release_broker tls "$PLAIN_PORT" "$TLS_PORT" "$HTTP_PORT"
target/release/busbar dev-cert --data-dir "$DIR/data" >"$DIR/ca.pem"

OUT="bench/results/tls-$(date -u +%Y%m%d-%H%M%S).jsonl"
bench() {
    local label=$1 url=$2
    shift 2
    target/release/busbar-bench --broker "$label" --url "$url" --queue bench \
        --sas-key-name RootManageSharedAccessKey --sas-key SAS_KEY_VALUE \
        --broker-pid "$PID" "$@" | tee -a "$OUT"
}
for rep in $(seq 1 "$REPS"); do
    echo "repetition $rep of $REPS" >&2
    for mode in plain tls ws wss; do
        case $mode in
            plain) set -- busbar-plain "127.0.0.1:$PLAIN_PORT" ;;
            tls) set -- busbar-tls "127.0.0.1:$TLS_PORT" --tls-ca "$DIR/ca.pem" ;;
            ws) set -- busbar-ws "127.0.0.1:$PLAIN_PORT" --websocket-path '/$servicebus/websocket' ;;
            wss) set -- busbar-wss "127.0.0.1:$TLS_PORT" --tls-ca "$DIR/ca.pem" \
                --websocket-path '/$servicebus/websocket' ;;
        esac
        bench "$@" send --count "$COUNT" --window 1000
        bench "$@" receive --count "$COUNT" --credit 1000
    done
done

python3 - "$OUT" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
def median(broker, scenario, field="msgs_per_sec"):
    return statistics.median(r[field] for r in runs if r["broker"] == broker and r["scenario"] == scenario)
print(f"\n{sys.argv[1]}")
modes = ("plain", "tls", "ws", "wss")
print("| 1 KiB durable | " + " | ".join(f"{m} (msgs/s)" for m in modes)
      + " | cost against plain: " + " / ".join(modes[1:])
      + " | broker CPU µs/msg " + " / ".join(modes) + " |")
print("|---" * (len(modes) + 3) + "|")
for scenario in ("send", "receive"):
    rates = [median(f"busbar-{m}", scenario) for m in modes]
    cpu = [median(f"busbar-{m}", scenario, "broker_cpu_us_per_msg") for m in modes]
    costs = " / ".join(f"{1 - rate / rates[0]:.0%}" for rate in rates[1:])
    print(f"| {scenario} | " + " | ".join(f"{rate:,.0f}" for rate in rates)
          + f" | {costs} | " + " / ".join(f"{c:.1f}" for c in cpu) + " |")
PY
