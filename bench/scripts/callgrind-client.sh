#!/usr/bin/env bash
# The client's instructions per message, which other load on the machine does not change:
# one release broker runs normally; for each scenario (`receive`, busbar-bench's own loop
# with credit 1000, then the SDK's processor at concurrency 32 and 1, peek-lock with
# complete) COUNT prefilled 1 KiB durable messages are drained by busbar-bench running
# under `valgrind --tool=callgrind`, and the instructions of the whole client process
# (start-up and connection included) divided by COUNT are printed. The dumps stay in
# OUT_DIR for `callgrind_annotate`.
#
#   bench/scripts/callgrind-client.sh [COUNT (20000)] [OUT_DIR (a new temporary directory)]
#
# AMQP_PORT (AMQPS on the next one) and HTTP_PORT choose the broker's ports.
set -euo pipefail
COUNT=${1:-20000}
OUT_DIR=${2:-$(mktemp -d /tmp/busbar-callgrind-client.XXXXXX)}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
AMQP_PORT=${AMQP_PORT:-5698}
HTTP_PORT=${HTTP_PORT:-5398}

cd "$ROOT"
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
# shellcheck source=release-broker.sh
. bench/scripts/release-broker.sh
start_release_broker callgrind-client "$AMQP_PORT" "$((AMQP_PORT + 1))" "$HTTP_PORT"

bench() {
    ${CLIENT_WRAPPER:-} target/release/busbar-bench --broker busbar --url "127.0.0.1:$AMQP_PORT" \
        --queue bench --sas-key-name RootManageSharedAccessKey --sas-key SAS_KEY_VALUE \
        --stall-secs 600 "$@"
}

echo "client under callgrind; $COUNT messages per run; dumps in $OUT_DIR" >&2
for run in "receive --credit 1000" "processor --concurrency 32" "processor --concurrency 1"; do
    label=$(echo "$run" | tr -d '-' | tr ' ' '_')
    bench fill --count "$COUNT" >/dev/null 2>&1
    # shellcheck disable=SC2086
    CLIENT_WRAPPER="valgrind --tool=callgrind --compress-strings=no --callgrind-out-file=$OUT_DIR/$label.callgrind" \
        bench $run --count "$COUNT" >/dev/null 2>"$OUT_DIR/$label.err"
    awk -v label="$label" -v n="$COUNT" '/^(summary|totals):/ {
        printf "%-26s %12d instructions  %8.0f per message\n", label, $2, $2 / n; exit }' \
        "$OUT_DIR/$label.callgrind"
done
