#!/usr/bin/env bash
# Wall time of a deploy that changes nothing, against moto, in one run:
#   sdp deploy   beside   aws cloudformation package + aws cloudformation deploy (awscli)
# on the same rendered template, each against its own stack. Median of RUNS (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-tools
.venv/bin/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
cargo build --release --locked -p sdp >&2
runs=${1:-5}
work=$(mktemp -d)
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
.venv/bin/python tests/moto_launcher.py -H 127.0.0.1 -p "$port" > "$work/moto.log" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/moto-api/" > /dev/null && break; sleep 0.2; done

export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_REGION=us-west-2 AWS_DEFAULT_REGION=us-west-2 \
  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing CI=true HOME="$work"
# Function builds: moto never runs them, so placeholders stand in for the ones not built.
for f in ingest processor reports compactor trainer predict; do
  mkdir -p "$work/lambda/$f"
  if [ -f "target/lambda/$f/bootstrap" ]; then cp "target/lambda/$f/bootstrap" "$work/lambda/$f/"; else echo "#!/bin/sh" > "$work/lambda/$f/bootstrap"; fi
done
sdp=target/release/sdp
$sdp deploy --yes --artifacts "$work/lambda" --outputs-file "$work/out.json" > /dev/null 2>&1

# The awscli stack gets the same template and the same code keys.
$sdp render --region us-west-2 > "$work/template.yaml"
bucket=sdp-artifacts-123456789012-us-west-2
# One KEY=VALUE per array element: values such as "rate(15 minutes)" hold spaces.
cat > "$work/params.py" <<'PY'
import json, sys
for p in json.load(sys.stdin)["Stacks"][0]["Parameters"]:
    print(f"{p['ParameterKey']}={p['ParameterValue']}")
PY
mapfile -t params < <(.venv/bin/aws cloudformation describe-stacks --stack-name sdp --output json | .venv/bin/python "$work/params.py")
# moto maps a template URL back to its bucket only for amazonaws.com or "localhost" hosts, and
# awscli builds that URL from its endpoint: so awscli talks to the same moto as localhost.
aws_deploy() {
  AWS_ENDPOINT_URL="http://localhost:$port" .venv/bin/aws cloudformation package --template-file "$work/template.yaml" --s3-bucket "$bucket" \
    --output-template-file "$work/packaged.yaml" > /dev/null
  AWS_ENDPOINT_URL="http://localhost:$port" .venv/bin/aws cloudformation deploy --template-file "$work/packaged.yaml" --stack-name sdp-awscli \
    --s3-bucket "$bucket" --capabilities CAPABILITY_IAM --no-fail-on-empty-changeset \
    --parameter-overrides "${params[@]}" > /dev/null
}
aws_deploy # create

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_runs() {
  for _ in $(seq "$runs"); do
    start=$(date +%s.%N); "$@" > /dev/null 2>&1; end=$(date +%s.%N)
    echo "$end - $start" | bc
  done | median
}
sdp_time=$(time_runs $sdp deploy --yes --artifacts "$work/lambda")
aws_time=$(time_runs aws_deploy)
echo "unchanged deploy, median of $runs against moto:" >&2
echo "  sdp deploy                         ${sdp_time}s" >&2
echo "  aws cloudformation package+deploy  ${aws_time}s" >&2
echo "  ratio (awscli / sdp)               $(echo "scale=1; $aws_time / $sdp_time" | bc)x" >&2
