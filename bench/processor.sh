#!/usr/bin/env bash
# Processor core throughput beside DuckDB computing the same aggregates from the same NDJSON, both
# on one thread, in the same run; the two results must be identical.
# Usage: bench/processor.sh [TRANSACTIONS]   (default 1,000,000: about 1.8 million events)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-tools
n=${1:-1000000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release --locked -p sdp-bench --bin processor-throughput >&2
bin=target/release/processor-throughput
$bin generate "$work/events.ndjson" "$n"
$bin run "$work/events.ndjson" "$work/sdp.csv"

.venv/bin/python - "$work" <<'PY'
import sys, time, duckdb
work = sys.argv[1]
con = duckdb.connect()
con.execute("SET threads = 1")
t = time.perf_counter()
# The same rules as sdp-core: the first event of each (tx_id, type) counts; impressions join a bid
# within 5 minutes, clicks a joined impression within 5 minutes; each counts in its own 10-minute
# window, for the bid's campaign.
con.execute(f"""
CREATE TABLE e AS SELECT * FROM read_json('{work}/events.ndjson', format='newline_delimited',
  columns={{'tx_id':'VARCHAR','ts':'BIGINT','type':'VARCHAR','campaign_item_id':'BIGINT'}});
CREATE TABLE first AS SELECT tx_id, type, arg_min(ts, rowid) AS ts, arg_min(campaign_item_id, rowid) AS campaign
  FROM (SELECT *, rowid FROM e) GROUP BY tx_id, type;
CREATE TABLE counted AS
  WITH b AS (SELECT tx_id, ts, campaign FROM first WHERE type = 'bid'),
       i AS (SELECT f.tx_id, f.ts, b.campaign FROM first f JOIN b USING (tx_id)
             WHERE f.type = 'imp' AND abs(f.ts - b.ts) <= 300000),
       c AS (SELECT f.tx_id, f.ts, i.campaign FROM first f JOIN i USING (tx_id)
             WHERE f.type = 'click' AND abs(f.ts - i.ts) <= 300000)
  SELECT campaign, (ts // 1000 // 600) * 600 AS period, 1 AS bids, 0 AS imps, 0 AS clicks FROM b
  UNION ALL SELECT campaign, (ts // 1000 // 600) * 600, 0, 1, 0 FROM i
  UNION ALL SELECT campaign, (ts // 1000 // 600) * 600, 0, 0, 1 FROM c;
COPY (SELECT campaign, period, sum(bids), sum(imps), sum(clicks) FROM counted GROUP BY ALL ORDER BY ALL)
  TO '{work}/duckdb.csv' (HEADER false);
""")
elapsed = time.perf_counter() - t
events = con.execute("SELECT count(*) FROM e").fetchone()[0]
print(f"duckdb {duckdb.__version__}: {events} events in {elapsed:.3f} s = {events/elapsed:.0f} events/s (one thread)", file=sys.stderr)
PY

if ! diff <(sort "$work/sdp.csv") <(sort "$work/duckdb.csv") > /dev/null; then
  echo "processor bench: sdp-core and DuckDB disagree on the aggregates" >&2
  exit 1
fi
echo "processor bench: aggregates identical ($(wc -l < "$work/sdp.csv") campaign windows)" >&2
