#!/usr/bin/env bash
# `sdp load` on loopback, at several offered rates, against two servers in the same run:
# - the do-nothing server (bench/src/null_server.rs): what the generator itself can offer and
#   measure on this machine (its answered rate and its own send lag);
# - `sdp local`: which rates it holds and at what latency, with every accepted event counted;
# beside wrk's closed-loop maximum against the same `sdp local`, the reference for its capacity.
# Then overload: `sdp load` offering twice that capacity, open model, to see `sdp local` shed the
# excess with 503 while the requests it accepts keep their latency, and its peak memory (VmHWM).
# Usage: bench/load.sh [SECONDS] [RATES...]   (defaults 10, and 1000 5000 20000). Needs wrk
# (Debian package; installed here with apt-get when missing and run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/wrk.sh
seconds_and_rates "1000 5000 20000" "$@"
require_wrk
build_sdp
cargo build --release --locked -p sdp-bench --bin null-server >&2
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT


# One `sdp load` run; prints a line of its JSON summary. The null server counts nothing, so
# there the count check is cut short (--deadline 1s) and its failure ignored.
load() { # name port rate deadline
    local out="$work/$1-$3.json"
    target/release/sdp load --api "http://127.0.0.1:$2/ingest" --reports "http://127.0.0.1:$2" \
        --predictions "http://127.0.0.1:$2/predictions" --rate "$3" --duration "${seconds}s" \
        --deadline "$4" --format json > "$out" 2>"$work/load.log" || true
    python3 - "$1" "$out" <<'PY'
import json, sys
name, path = sys.argv[1], sys.argv[2]
s = json.load(open(path))
counted = "n/a" if name == "null-server" else ("exact" if not any(p.startswith("campaign ") for p in s["problems"]) else "WRONG")
l, a = s["latency_ms"], s["accepted_latency_ms"]
shed = s["statuses"].get("503", 0)
print(f'{name:<12} offered {s["offered_rate"]:>8.0f}/s  answered {s["achieved_rate"]:>9.1f}/s  '
      f'p50 {l["p50"]:>7.2f} ms  p99 {l["p99"]:>8.2f} ms  max {l["max"]:>8.2f} ms  '
      f'200s {s["accepted"]["bids"] + s["accepted"]["imps"] + s["accepted"]["clicks"]} (p99 {a["p99"]:.2f} ms)  503s {shed}  '
      f'send lag p99 {s["send_lag_p99_ms"]:>6.2f} ms  unanswered {sum(s["unanswered"].values())}  counts {counted}')
PY
}

port=$(free_port)
target/release/null-server "$port" & pids+=($!)
wait_port "$port"
for rate in "${rates[@]}"; do load null-server "$port" "$rate" 1s; done

port=$(free_port)
target/release/sdp local --port "$port" --data-dir "$work/data" > "$work/urls.txt" 2>"$work/local.log" & pids+=($!)
wait_port "$port"
write_bid_script "$work/bid.lua"
wrk -t2 -c64 -d"${seconds}s" --latency -s "$work/bid.lua" "http://127.0.0.1:$port/ingest/bid" > "$work/wrk.txt"
printf 'wrk (closed loop, 64 connections) against sdp local: %s requests/s, p50 %s, p99 %s\n' \
    "$(awk '/^Requests\/sec/ {print $2}' "$work/wrk.txt")" \
    "$(awk '$1=="50%" {print $2}' "$work/wrk.txt")" "$(awk '$1=="99%" {print $2}' "$work/wrk.txt")"
for rate in "${rates[@]}"; do load "sdp local" "$port" "$rate" 120s; done

capacity=$(awk '/^Requests\/sec/ {printf "%d", $2}' "$work/wrk.txt")
local_pid=${pids[-1]}
load "overload" "$port" $((2 * capacity)) 120s
printf 'sdp local peak memory after overload: %s\n' "$(awk '/VmHWM/ {print $2, $3}' "/proc/$local_pid/status")"
