#!/usr/bin/env bash
# The whole product on this machine, no AWS account needed (`make demo`):
#
#   1. build the proxy function and the deployer for this host (debug)
#   2. start a private local AWS emulator (scripts/local-aws.sh run)
#   3. without OPENAI_API_KEY: start the local OpenAI-compatible test upstream
#      (scripts/test-upstream.py; its answers say "[local test upstream]")
#   4. deploy with the deployer into the emulator: secret, artifact bucket and upload,
#      CloudFormation change set, stack (endpoint tests off: the emulator's API Gateway
#      does not invoke functions)
#   5. start the function in local HTTP mode, reading the secret the deployer wrote
#   6. DEPLOYER_COMMAND=test against it; run the report's OpenAI Python SDK snippet as is
#   7. print the report and its path
#
# Everything it started is stopped at the end, also on failure or Ctrl-C.
#
# Environment: OPENAI_API_KEY (use OpenAI itself; needs a network), MODEL_MAPPINGS,
# DEMO_DIR (reports and logs; default $TMPDIR/openai-lambda-proxy-demo), REPORT_FILE
# (default $DEMO_DIR/report.md), and any other deployer variable
# (`openai-proxy-deployer --help`), e.g. PERF_REQUESTS.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV_DIR:-$root/.venv}
python="$venv/bin/python"
out_dir=${DEMO_DIR:-${TMPDIR:-/tmp}/openai-lambda-proxy-demo}
report=${REPORT_FILE:-$out_dir/report.md}

say() { printf '\n==> %s\n' "$*"; }

free_port() {
  "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_http URL PID SECONDS: until URL answers (any HTTP status), while PID lives.
wait_http() {
  local url=$1 pid=$2 seconds=$3
  for _ in $(seq 1 $((seconds * 5))); do
    kill -0 "$pid" 2>/dev/null || return 1
    if "$python" - "$url" <<'PY' 2>/dev/null; then
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=1).read()
except urllib.error.HTTPError:
    pass
PY
      return 0
    fi
    sleep 0.2
  done
  return 1
}

# --- outside the emulator: check, build, then run the rest inside a private emulator ---
if [[ "${1:-}" != "--inside-local-aws" ]]; then
  started=$(date +%s)
  if [[ ! -x "$python" ]] || ! "$python" -c 'import moto' 2>/dev/null; then
    echo "error: the Python tools are not installed in $venv; run 'make setup' first (make demo does)" >&2
    exit 1
  fi
  mkdir -p "$out_dir"
  say "Building the function and the deployer for this host (debug)"
  (cd "$root" && cargo build --locked -p openai-proxy-function -p openai-proxy-deployer --bins)
  target=$(cd "$root" && cargo metadata --no-deps --format-version 1 |
    "$python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  # exec: a signal to this process reaches the emulator's runner, which stops it.
  DEMO_STARTED=$started DEMO_BIN_DIR="$target/debug" exec "$root/scripts/local-aws.sh" run "$0" --inside-local-aws
fi

# --- inside: AWS_ENDPOINT_URL points at this run's emulator ---
bin_dir=$DEMO_BIN_DIR
function_bin="$bin_dir/openai-proxy-function"
deployer="$bin_dir/openai-proxy-deployer"
pids=()
# shellcheck disable=SC2329 # run by the EXIT trap
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
}
trap cleanup EXIT
trap 'echo "interrupted: stopping what the demo started" >&2; exit 130' INT TERM

case "$(uname -m)" in
  x86_64 | amd64) arch=x86_64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "error: no Lambda architecture for $(uname -m)" >&2; exit 1 ;;
esac
models=${MODEL_MAPPINGS:-'{"amazon.nova-lite-v1:0":"gpt-4o-mini","amazon.nova-pro-v1:0":"gpt-4o-mini","amazon.nova-micro-v1:0":"gpt-4o-mini"}'}
rm -f "$report" "$out_dir/deploy-report.md" "$out_dir/deploy-outputs" "$out_dir/upstream-port"

upstream_url=
if [[ -n "${OPENAI_API_KEY:-}" ]]; then
  key=$OPENAI_API_KEY
  upstream_label="OpenAI (OPENAI_API_KEY is set)"
else
  # Shaped like a key so the deployer accepts it; nothing ever sends it to OpenAI.
  key="sk-demo-local-test-upstream-not-a-real-key"
  upstream_label="the local test upstream (scripts/test-upstream.py), not OpenAI: set OPENAI_API_KEY to use OpenAI"
  say "Starting the local OpenAI-compatible test upstream"
  "$python" "$root/scripts/test-upstream.py" --port-file "$out_dir/upstream-port" \
    2>"$out_dir/upstream.log" &
  pids+=($!)
  for _ in $(seq 1 50); do [[ -s "$out_dir/upstream-port" ]] && break; sleep 0.1; done
  [[ -s "$out_dir/upstream-port" ]] || { echo "error: the test upstream did not start; see $out_dir/upstream.log" >&2; exit 1; }
  upstream_url="http://127.0.0.1:$(cat "$out_dir/upstream-port")/v1"
  echo "test upstream: $upstream_url"
fi
echo "upstream: $upstream_label"

say "Deploying into the local AWS emulator ($AWS_ENDPOINT_URL)"
status=0
DEPLOYER_COMMAND=deploy \
  TEMPLATE_FILE="$root/template.yaml" \
  FUNCTION_ARTIFACT="$function_bin" \
  ARCHITECTURE="$arch" \
  OPENAI_API_KEY="$key" \
  MODEL_MAPPINGS="$models" \
  RUN_ENDPOINT_TESTS=false \
  ENABLE_AUTHENTICATION="${ENABLE_AUTHENTICATION:-false}" \
  REPORT_FILE="$out_dir/deploy-report.md" \
  GITHUB_OUTPUT="$out_dir/deploy-outputs" \
  "$deployer" || status=$?
if [[ $status -ne 0 ]]; then
  echo "error: the deploy failed; its report: $out_dir/deploy-report.md" >&2
  exit "$status"
fi
secret_arn=$(sed -n 's/^secret-arn=//p' "$out_dir/deploy-outputs" | tail -n 1)
[[ -n "$secret_arn" ]] || { echo "error: the deployer wrote no secret-arn output" >&2; exit 1; }

say "Starting the function in local HTTP mode (its configuration: the secret in the emulator)"
port=$(free_port)
base="http://127.0.0.1:$port"
env -u OPENAI_API_KEY \
  PROXY_LISTEN_ADDR="127.0.0.1:$port" \
  OPENAI_API_KEY_SECRET_ARN="$secret_arn" \
  ${upstream_url:+OPENAI_BASE_URL="$upstream_url"} \
  LOG_LEVEL=INFO \
  "$function_bin" >"$out_dir/function.log" 2>&1 &
pids+=($!)
if ! wait_http "$base/health" "${pids[-1]}" 30; then
  echo "error: the function did not start; its log ($out_dir/function.log) ends with:" >&2
  tail -n 20 "$out_dir/function.log" >&2
  exit 1
fi
echo "function: $base (OpenAI base URL $base/v1), secret $secret_arn, log $out_dir/function.log"

say "Endpoint tests: DEPLOYER_COMMAND=test API_BASE_URL=$base"
status=0
DEPLOYER_COMMAND=test \
  API_BASE_URL="$base" \
  MODEL_MAPPINGS="$models" \
  REPORT_FILE="$report" \
  "$deployer" || status=$?

# The report says which upstream answered: the demo's context, above the deployer's text.
if [[ -f "$report" ]]; then
  note="> **Demo** (\`make demo\`): deployed into the local AWS emulator; the function ran on this machine at $base; upstream: $upstream_label."
  { printf '%s\n\n' "$note"; cat "$report"; } >"$report.tmp" && mv "$report.tmp" "$report"
fi

# The report's copy-paste snippet, run as is: what a client of the proxy would do.
if [[ $status -eq 0 ]] && "$python" -c 'import openai' 2>/dev/null; then
  say "The report's Python snippet, run with the OpenAI SDK"
  snippet=$(awk '/^```python$/ {on = 1; next} /^```$/ {on = 0} on' "$report")
  env -u OPENAI_API_KEY -u OPENAI_BASE_URL "$python" -c "$snippet" || status=$?
fi

say "Report"
cat "$report" 2>/dev/null || echo "(no report was written)"
echo
echo "report: $report"
echo "deploy report: $out_dir/deploy-report.md"
echo "upstream: $upstream_label"
if [[ $status -eq 0 ]]; then
  echo "demo passed in $(($(date +%s) - ${DEMO_STARTED:-$(date +%s)})) s (build included); stopping what it started"
else
  echo "demo FAILED: the endpoint tests above say what was expected and what came back" >&2
fi
exit "$status"
