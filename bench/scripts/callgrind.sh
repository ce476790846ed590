#!/usr/bin/env bash
# The broker's instructions per message, which other load on the machine does not change:
# one release broker runs under `valgrind --tool=callgrind`; for each client (busbar-bench's
# own, batched, and `--client independent`, one frame per transfer and per settlement) it
# sends COUNT 1 KiB durable messages, then receives and accepts them (credit 1000); then
# busbar-bench's `processor --concurrency 32` (settle-second, each completion answered by
# the broker) drains COUNT more. It prints the instructions the broker executed per
# message in each run (the fill before the processor is not counted), counted between a
# `callgrind_control --zero` and a `--dump` around the run. The dumps stay in OUT_DIR for
# `callgrind_annotate`.
#
#   bench/scripts/callgrind.sh [COUNT (20000)] [OUT_DIR (a new temporary directory)]
#
# BENCH_AMQP_PORT (5696; the TLS listener takes the next port) and BENCH_HTTP_PORT (5396)
# move the broker's listeners so that two runs on one machine do not meet.
set -euo pipefail
COUNT=${1:-20000}
OUT_DIR=${2:-$(mktemp -d /tmp/busbar-callgrind.XXXXXX)}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
AMQP_PORT=${BENCH_AMQP_PORT:-5696}
HTTP_PORT=${BENCH_HTTP_PORT:-5396}

cd "$ROOT"
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
BROKER_WRAPPER="valgrind --tool=callgrind --compress-strings=no --callgrind-out-file=$OUT_DIR/callgrind.out.%p"
# shellcheck source=release-broker.sh
. bench/scripts/release-broker.sh
start_release_broker callgrind "$AMQP_PORT" "$((AMQP_PORT + 1))" "$HTTP_PORT"

bench() {
    target/release/busbar-bench --broker busbar --url "127.0.0.1:$AMQP_PORT" --queue bench \
        --sas-key-name RootManageSharedAccessKey --sas-key SAS_KEY_VALUE --stall-secs 600 "$@"
}
# Instructions executed by the broker during "$@", from the dump written after it.
measure() {
    local label=$1 dump
    shift
    callgrind_control --zero "$PID" >/dev/null 2>&1
    bench "$@" >/dev/null 2>&1
    callgrind_control --dump="$label" "$PID" >/dev/null 2>&1
    dump=$(ls -t "$OUT_DIR"/callgrind.out.* | head -1)
    mv "$dump" "$OUT_DIR/$label.callgrind"
    awk -v label="$label" -v n="$COUNT" '/^(summary|totals):/ {
        printf "%-22s %12d instructions  %8.0f per message\n", label, $2, $2 / n; exit }' \
        "$OUT_DIR/$label.callgrind"
}

echo "broker under callgrind; $COUNT messages per run; dumps in $OUT_DIR" >&2
bench send --count 2000 >/dev/null 2>&1
bench drain --idle-ms 2000 >/dev/null 2>&1
for client in busbar independent; do
    measure "send-$client" --client "$client" send --count "$COUNT" --window 1000
    measure "receive-$client" --client "$client" receive --count "$COUNT" --credit 1000
done
bench fill --count "$COUNT" >/dev/null 2>&1
measure processor-c32 processor --count "$COUNT" --concurrency 32
