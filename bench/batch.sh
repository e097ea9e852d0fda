#!/usr/bin/env bash
# Batch ingestion into `sdp local`: `sdp load --batch 500` at several offered rates (batches a
# second), each event durable before its answer and counted through the processor to the report
# (sdp load fails the run otherwise), beside the disk's own ceiling in the same run: the same
# bytes appended to a file and fsync'd once a batch, as fast as the disk takes them.
# Usage: bench/batch.sh [SECONDS] [RATES...]   (defaults 10, and 100 200 400 batches/s)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/wrk.sh
seconds_and_rates "100 200 400" "$@"
build_sdp
work=$(mktemp -d)
pid=
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# The reference: 500 lines of the size sdp load sends (a bid is about 250 bytes), appended and
# synced per batch in the file system of the data directory, for SECONDS.
python3 - "$work/ceiling.ndjson" "$seconds" <<'PY'
import os, sys, time
path, seconds = sys.argv[1], float(sys.argv[2])
line = ('{"type":"bid","tx_id":"sdp-load-1796398861822300-123456","app_uid":"user-456",'
        '"campaign_item_id":1796398861822301,"domain":"site12.example","creative_id":"creative-3",'
        '"creative_category":"load","win_price":112}\n').encode()
batch = line * 500
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
start, batches = time.perf_counter(), 0
while time.perf_counter() - start < seconds:
    os.write(fd, batch)
    os.fsync(fd)
    batches += 1
elapsed = time.perf_counter() - start
print(f"disk ceiling: {batches / elapsed:.0f} batches/s of 500 lines fsync'd = {batches * 500 / elapsed:.0f} events/s "
      f"({len(batch) * batches / elapsed / 1e6:.1f} MB/s)")
PY

port=$(free_port)
target/release/sdp local --port "$port" --data-dir "$work/data" > /dev/null 2>"$work/local.log" &
pid=$!
wait_port "$port"
for rate in "${rates[@]}"; do
  target/release/sdp load --api "http://127.0.0.1:$port/ingest" --reports "http://127.0.0.1:$port" \
      --predictions "http://127.0.0.1:$port/predictions" --rate "$rate" --batch 500 \
      --duration "${seconds}s" --connections 64 --format json 2>/dev/null > "$work/load.json" || true
  python3 - "$work/load.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
a, l = s["accepted"], s["latency_ms"]
events = a["bids"] + a["imps"] + a["clicks"]
# Over the time the answers took (the rate answered), not the nominal duration.
events_per_s = events / s["answered"] * s["achieved_rate"] if s["answered"] else 0
counted = "exact" if not any(p.startswith("campaign ") for p in s["problems"]) else "WRONG"
print(f'sdp local: offered {s["offered_rate"]:.0f} batches/s of {s["batch"]}  answered {s["achieved_rate"]:.0f}/s  '
      f'{events_per_s:.0f} events/s accepted  p50 {l["p50"]:.1f} ms  p99 {l["p99"]:.1f} ms  counts {counted}'
      + ("" if s["ok"] else f'  problems: {"; ".join(s["problems"])[:200]}'))
PY
done
