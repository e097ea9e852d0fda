#!/usr/bin/env bash
# Retraining's memory is bounded by its sample, not by the lake: `sdp local`'s retraining
# (`sdp_app::retraining`, the trainer Lambda's, over a lake directory) on a compacted lake of
# TRANSACTIONS synthetic transactions, beside the same run on a lake of 1,000,000 (the sample
# bound, where nothing is sampled away). Prints each lake's size, the run and its peak memory.
# Usage: bench/retraining.sh [TRANSACTIONS]   (default 3,000,000)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-3000000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release --locked -p sdp-bench --bin model-bench >&2
for lake in 1000000 "$n"; do
  mkdir -p "$work/$lake"
  target/release/model-bench lake "$work/$lake" "$lake"
  /usr/bin/time -f "peak memory (max RSS) %M KB, %e s" target/release/model-bench retraining "$work/$lake"
done
