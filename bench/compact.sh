#!/usr/bin/env bash
# Compaction of one partition's raw JSON lines into Parquet: sdp-lake's compactor (one thread, as
# the Lambda runs it) beside DuckDB doing the same conversion (explicit columns, duplicates
# dropped, sorted the same way, zstd) from the same files, in the same run, with 1 and with 2
# threads, and once with snappy to show what the codec choice costs and saves. Reports input MB/s, rows/s, peak memory (max RSS) and output size of each, and checks
# that both files hold the same rows.
# Usage: bench/compact.sh [TRANSACTIONS]   (default 300,000: about 170 MB of raw JSON in 5 MB files)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-tools
n=${1:-300000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release --locked -p sdp-bench --bin processor-throughput --bin compact-throughput >&2
target/release/processor-throughput generate "$work/events.ndjson" "$n"
mkdir "$work/raw"
split -C 5M -d -a 4 --additional-suffix=.json "$work/events.ndjson" "$work/raw/part-"
rm "$work/events.ndjson"

measure() { # label command... → "label rows in_bytes out_bytes seconds max_rss_kb"
    local label=$1; shift
    /usr/bin/time -f "%M" -o "$work/rss" "$@" > "$work/result"
    echo "$label $(cat "$work/result") $(cat "$work/rss")"
}

# DuckDB's side, as a script so that /usr/bin/time measures the process doing the work.
cat > "$work/duckdb_compact.py" <<'PY'
import sys, time, os, duckdb
raw, out, threads, codec = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
t = time.perf_counter()
con = duckdb.connect()
con.execute(f"SET threads = {threads}")
columns = "{'tx_id':'VARCHAR','type':'VARCHAR','ts':'BIGINT','received_at':'BIGINT','campaign_item_id':'BIGINT','app_uid':'VARCHAR','creative_id':'VARCHAR','creative_category':'VARCHAR','domain':'VARCHAR','win_price':'BIGINT'}"
con.execute(f"""COPY (SELECT DISTINCT * FROM read_json('{raw}/*.json', format='newline_delimited', columns={columns})
  ORDER BY type NULLS FIRST, campaign_item_id NULLS FIRST, ts NULLS FIRST, tx_id NULLS FIRST, received_at NULLS FIRST,
    app_uid NULLS FIRST, creative_id NULLS FIRST, creative_category NULLS FIRST, domain NULLS FIRST, win_price NULLS FIRST)
  TO '{out}' (FORMAT parquet, COMPRESSION {codec}, ROW_GROUP_SIZE 262144)""")
rows = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
size = sum(os.path.getsize(os.path.join(raw, f)) for f in os.listdir(raw))
print(rows, size, os.path.getsize(out), f"{time.perf_counter() - t:.3f}")
PY

{
    measure "sdp-lake_1_thread" target/release/compact-throughput "$work/raw" "$work/sdp"
    measure "duckdb_1_thread" .venv/bin/python "$work/duckdb_compact.py" "$work/raw" "$work/duck1.parquet" 1 zstd
    measure "duckdb_2_threads" .venv/bin/python "$work/duckdb_compact.py" "$work/raw" "$work/duck2.parquet" 2 zstd
    # The codec choice: the same file with snappy, for its size and speed.
    measure "duckdb_1_thread_snappy" .venv/bin/python "$work/duckdb_compact.py" "$work/raw" "$work/duck-snappy.parquet" 1 snappy
} > "$work/results"

.venv/bin/python - "$work" <<'PY'
import sys, duckdb
work = sys.argv[1]
rows = {}
print(f"{'':20} {'rows':>9} {'input MB':>9} {'MB/s':>7} {'rows/s':>10} {'peak MB':>8} {'output MB':>9}")
for line in open(f"{work}/results"):
    label, n, inp, out, secs, rss = line.rsplit(maxsplit=5)
    n, inp, out, secs, rss = int(n), int(inp), int(out), float(secs), int(rss)
    print(f"{label:20} {n:>9} {inp/1e6:>9.1f} {inp/1e6/secs:>7.1f} {n/secs:>10.0f} {rss/1024:>8.0f} {out/1e6:>9.2f}")
    rows[label] = (inp / 1e6 / secs)
con = duckdb.connect()
same = con.execute(f"""SELECT count(*) FROM (
  (SELECT * FROM read_parquet('{work}/sdp/*.parquet') EXCEPT ALL SELECT * FROM read_parquet('{work}/duck1.parquet'))
  UNION ALL
  (SELECT * FROM read_parquet('{work}/duck1.parquet') EXCEPT ALL SELECT * FROM read_parquet('{work}/sdp/*.parquet')))""").fetchone()[0]
print("rows differing between the sdp and DuckDB files:", same)
s, d1 = rows["sdp-lake_1_thread"], rows["duckdb_1_thread"]
print(f"ratio sdp-lake / duckdb (1 thread): {s/d1:.2f}")
sys.exit(1 if same else 0)
PY
