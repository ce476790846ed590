#!/usr/bin/env bash
# Plain AMQP against AMQP over TLS on one release broker, in the same run: per repetition,
# `send` then `receive` (1 KiB durable) plain, then the same over TLS (the development CA
# trusted with --tls-ca), so both see the same machine. Prints every JSON line and, at the
# end, the medians and TLS's cost.
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
    for mode in plain tls; do
        if [ "$mode" = plain ]; then
            set -- busbar-plain "127.0.0.1:$PLAIN_PORT"
        else
            set -- busbar-tls "127.0.0.1:$TLS_PORT" --tls-ca "$DIR/ca.pem"
        fi
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
print("| 1 KiB durable | plain (msgs/s) | TLS (msgs/s) | TLS cost | broker CPU µs/msg plain / TLS |")
print("|---|---|---|---|---|")
for scenario in ("send", "receive"):
    plain, tls = median("busbar-plain", scenario), median("busbar-tls", scenario)
    cpu = [median(b, scenario, "broker_cpu_us_per_msg") for b in ("busbar-plain", "busbar-tls")]
    print(f"| {scenario} | {plain:,.0f} | {tls:,.0f} | {1 - tls / plain:.0%} | {cpu[0]:.1f} / {cpu[1]:.1f} |")
PY
