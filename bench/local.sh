#!/usr/bin/env bash
# `sdp local` ingestion on loopback: requests/s and latency percentiles under wrk (open
# connections, POST /bid with a fresh tx_id per request), beside the same wrk against a server on
# the same HTTP stack that does no work (bench/src/null_server.rs: this machine's ceiling), in the
# same run; then the time from a 200 to the event being visible in the report.
# Usage: bench/local.sh [SECONDS] [CONNECTIONS]   (defaults 10 and 64). Needs wrk (Debian package;
# installed here with apt-get when missing and run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
connections=${2:-64}
source bench/wrk.sh
require_wrk
# sdp as the other benchmarks build it (one feature set, so no build undoes another's), then the
# reference server and the visibility probe.
build_sdp
cargo build --release --locked -p sdp-bench --bin null-server --bin visibility >&2
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT


write_bid_script "$work/bid.lua"

run_wrk() { # name url
    wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$work/bid.lua" "$2" > "$work/$1.txt"
    local rps p50 p99 non2xx
    rps=$(awk '/^Requests\/sec/ {print $2}' "$work/$1.txt")
    p50=$(awk '$1=="50%" {print $2}' "$work/$1.txt")
    p99=$(awk '$1=="99%" {print $2}' "$work/$1.txt")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$work/$1.txt")
    printf '%-12s %12s req/s   p50 %-9s p99 %-9s non-2xx %s\n' "$1" "$rps" "$p50" "$p99" "${non2xx:-0}"
    echo "$rps" > "$work/$1.rps"
}

port=$(free_port)
target/release/null-server "$port" & pids+=($!)
wait_port "$port"
run_wrk null-server "http://127.0.0.1:$port/ingest/bid"

port=$(free_port)
target/release/sdp local --port "$port" --data-dir "$work/data" > "$work/urls.txt" 2>"$work/local.log" & pids+=($!)
wait_port "$port"
run_wrk "sdp local" "http://127.0.0.1:$port/ingest/bid"
echo "ratio sdp local / null server: $(python3 -c "print(round($(cat "$work/sdp local.rps")/$(cat "$work/null-server.rps"),3))")"
target/release/visibility "http://127.0.0.1:$port/ingest" "http://127.0.0.1:$port" 200
