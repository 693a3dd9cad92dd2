#!/usr/bin/env bash
# Benchmark of client-key limits (docs/benchmarks.md, "Limits of client keys"): the
# release proxy in local HTTP mode, its usage table in the local AWS's DynamoDB, in front
# of the test upstream. In one run, interleaved: requests of a key without limits and of
# a key with limits (high enough never to refuse), at one connection (oha). Reports the
# added latency of limits, the proxy's own share of it (the request log's `usage_ms` is
# the wait for DynamoDB), and DynamoDB calls per request (counted in the emulator's
# access log). Not part of `make test`.
#
#   BENCH_REQUESTS  requests per run (default 2000)
#   BENCH_ROUNDS    rounds, each key once per round (default 3)
#   OHA             oha, when not on PATH (cargo install --locked oha@1.16.0)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
venv=${VENV_DIR:-$root/.venv}
python="$venv/bin/python"
requests=${BENCH_REQUESTS:-2000}
rounds=${BENCH_ROUNDS:-3}
oha=${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}
if [[ ! -x $oha ]]; then
  echo "error: oha not found: cargo install --locked oha@1.16.0" >&2
  exit 1
fi

# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
log() { echo "▹▹▹▹▹ $*" >&2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-spend.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  LOCAL_AWS_STATE="$work/aws" scripts/local-aws.sh stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

log "building the release proxy"
cargo build --release --locked -q -p openai-proxy-function
target=${CARGO_TARGET_DIR:-$root/target}
binary="$target/release/openai-proxy-function"

log "starting the local AWS and the test upstream"
aws_port=$(free_port)
LOCAL_AWS_PORT=$aws_port LOCAL_AWS_STATE="$work/aws" scripts/local-aws.sh start >/dev/null
endpoint="http://127.0.0.1:$aws_port"
moto_log="$work/aws/moto.log"
"$python" scripts/test-upstream.py --port-file "$work/upstream.port" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [[ -s $work/upstream.port ]] && break; sleep 0.1; done
upstream="http://127.0.0.1:$(cat "$work/upstream.port")/v1"

export AWS_ENDPOINT_URL=$endpoint AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
table=$("$python" - <<'PY'
import boto3, uuid
name = f"bench-usage-{uuid.uuid4().hex[:8]}"
boto3.client("dynamodb").create_table(
    TableName=name, BillingMode="PAY_PER_REQUEST",
    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
print(name)
PY
)
unlimited=bench-unlimited-key-0123456789
limited=bench-limited-key-0123456789
"$python" - "$upstream" "$unlimited" "$limited" >"$work/config.json" <<'PY'
import hashlib, json, sys
upstream, unlimited, limited = sys.argv[1:]
digest = lambda key: hashlib.sha256(key.encode()).hexdigest()
print(json.dumps({
    "openai_api_key": "sk-bench-0123456789abcdef",
    "openai_base_url": upstream,
    "model_mappings": {"amazon.nova-lite-v1:0": "gpt-4o-mini"},
    "client_api_keys": [
        digest(unlimited),
        {"name": "limited", "sha256": digest(limited),
         "limits": {"requests_per_minute": 10000000, "tokens_per_minute": 1000000000000, "usd_per_day": 1000000, "usd_per_month": 1000000}},
    ],
}))
PY

PROXY_LISTEN_ADDR=127.0.0.1:0 PROXY_CONFIG_FILE="$work/config.json" ENABLE_AUTHENTICATION=true \
  USAGE_TABLE=$table LOG_LEVEL=INFO "$binary" >"$work/proxy.out" 2>"$work/proxy.err" &
pids+=($!)
for _ in $(seq 1 100); do grep -q '"serving plain HTTP"' "$work/proxy.err" 2>/dev/null && break; sleep 0.1; done
address=$(grep -o '"address":"[^"]*"' "$work/proxy.err" | head -1 | cut -d'"' -f4)
[[ -n $address ]] || { echo "error: the proxy did not start: $(cat "$work/proxy.err")" >&2; exit 1; }
body='{"model":"amazon.nova-lite-v1:0","max_tokens":16,"messages":[{"role":"user","content":"Say ok"}]}'

dynamodb_calls() { grep -c '"POST / HTTP/1.1"' "$moto_log" || true; }

# run KEY NAME: one oha run; its p50 and p99 (ms) and the DynamoDB calls it caused.
run() {
  local key=$1 name=$2 before after
  before=$(dynamodb_calls)
  "$oha" --no-tui --output-format json -n "$requests" -c 1 -m POST -T application/json \
    -H "authorization: Bearer $key" -d "$body" "http://$address/v1/chat/completions" >"$work/$name.json"
  after=$(dynamodb_calls)
  "$python" - "$work/$name.json" "$((after - before))" "$requests" <<'PY'
import json, sys
result = json.load(open(sys.argv[1]))
ok = result["statusCodeDistribution"].get("200", 0)
if ok != int(sys.argv[3]):
    sys.exit(f"error: {ok} of {sys.argv[3]} requests answered 200: {result['statusCodeDistribution']}")
p = result["latencyPercentiles"]
print(f"{p['p50'] * 1000:.3f} {p['p99'] * 1000:.3f} {int(sys.argv[2]) / int(sys.argv[3]):.2f}")
PY
}

log "warming up"
run "$unlimited" warm >/dev/null
run "$limited" warm >/dev/null
: >"$work/rounds"
for round in $(seq 1 "$rounds"); do
  log "round $round of $rounds"
  echo "$round off $(run "$unlimited" off)" >>"$work/rounds"
  lines_before=$(wc -l <"$work/proxy.out")
  echo "$round on $(run "$limited" on)" >>"$work/rounds"
  tail -n +"$((lines_before + 1))" "$work/proxy.out" >"$work/on-$round.log"
done

"$python" - "$work" "$rounds" "$requests" <<'PY'
import json, statistics, sys
from pathlib import Path
work, rounds, requests = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rows = [line.split() for line in (work / "rounds").read_text().splitlines()]
by = {(r[0], r[1]): (float(r[2]), float(r[3]), float(r[4])) for r in rows}
print(f"Limits of client keys: {requests} sequential requests per run, {rounds} rounds, release build, local AWS (moto) DynamoDB\n")
print("| round | p50 without limits | p50 with limits | added p50 | of which DynamoDB (usage_ms p50) | proxy's own share | p99 without / with | DynamoDB calls per request without / with |")
print("|---|---:|---:|---:|---:|---:|---|---|")
for r in range(1, rounds + 1):
    off, on = by[(str(r), "off")], by[(str(r), "on")]
    waits = [json.loads(l).get("usage_ms") for l in (work / f"on-{r}.log").read_text().splitlines() if l.startswith("{")]
    waits = [w for w in waits if w is not None]
    wait = statistics.median(waits) if waits else float("nan")
    added = on[0] - off[0]
    print(f"| {r} | {off[0]:.3f} ms | {on[0]:.3f} ms | {added:.3f} ms | {wait:.3f} ms | {added - wait:.3f} ms | {off[1]:.3f} / {on[1]:.3f} ms | {off[2]:.2f} / {on[2]:.2f} |")
PY
