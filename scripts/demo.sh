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

# shellcheck source=scripts/demo-lib.sh
. "$root/scripts/demo-lib.sh"

# --- outside the emulator: check, build, then run the rest inside a private emulator ---
[[ "${1:-}" == "--inside-local-aws" ]] || build_then_run_inside "$0"

# --- inside: AWS_ENDPOINT_URL points at this run's emulator ---
demo_inside
rm -f "$report" "$out_dir/deploy-report.md" "$out_dir/deploy-outputs"
start_upstream

say "Deploying into the local AWS emulator ($AWS_ENDPOINT_URL)"
deploy_untested "$function_bin" "$out_dir/deploy-report.md" "$out_dir/deploy-outputs" "the deploy"
secret_arn=$(output secret-arn "$out_dir/deploy-outputs")
[[ -n "$secret_arn" ]] || { echo "error: the deployer wrote no secret-arn output" >&2; exit 1; }

start_function "$secret_arn"

say "Endpoint tests: DEPLOYER_COMMAND=test API_BASE_URL=$base"
status=0
endpoint_tests "$base" "$report" || status=$?

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

# A client reaching its cap: a named key limited to 2 requests a minute, counted in the
# stack's DynamoDB usage table; its third request is refused as OpenAI refuses, and the
# usage command's table (appended to the report) shows the client at its limit.
if [[ $status -eq 0 ]]; then
  say "A capped client: CLIENT_API_KEYS=demo-capped=<key>;requests_per_minute=2"
  capped_key="demo-capped-$(date +%s%N)"
  first_model=$("$python" -c 'import json,sys; print(next(iter(json.loads(sys.argv[1]))))' "$models")
  DEPLOYER_COMMAND=setup-secrets CLIENT_API_KEYS="demo-capped=$capped_key;requests_per_minute=2" "$deployer" >"$out_dir/capped-setup.log" 2>&1 ||
    { echo "error: setup-secrets with the capped key failed: $out_dir/capped-setup.log" >&2; exit 1; }
  usage_table=$("$python" -c 'import json,sys; print(json.loads(sys.argv[1]).get("UsageTableName", ""))' "$(output stack-outputs "$out_dir/deploy-outputs")")
  [[ -n $usage_table ]] || { echo "error: the stack has no UsageTableName output" >&2; exit 1; }
  ENABLE_AUTHENTICATION=true USAGE_TABLE=$usage_table start_function "$secret_arn"
  capped="$out_dir/capped.md"
  {
    echo "### Demo: a client reaching its cap"
    echo
    echo "\`demo-capped\` may send 2 requests a minute (\`CLIENT_API_KEYS=demo-capped=<key>;requests_per_minute=2\`):"
    echo
    echo "| request | HTTP status | answer |"
    echo "|---|---|---|"
    for n in 1 2 3; do
      answer=$(curl -s -o "$out_dir/capped-$n.json" -w '%{http_code}' "$base/v1/chat/completions" \
        -H "authorization: Bearer $capped_key" -H 'content-type: application/json' \
        -d "{\"model\":\"$first_model\",\"max_tokens\":8,\"messages\":[{\"role\":\"user\",\"content\":\"Say ok\"}]}")
      what=$("$python" -c 'import json,sys; e=json.load(open(sys.argv[1])).get("error"); print(e["code"] + ": " + e["message"] if e else "answered")' "$out_dir/capped-$n.json")
      echo "| $n | $answer | $what |"
    done
    echo
  } >"$capped"
  grep -q '| 3 | 429 | rate_limit_exceeded' "$capped" ||
    { echo "error: the third request of the capped client was not refused:" >&2; cat "$capped" >&2; status=1; }
  DEPLOYER_COMMAND=usage GITHUB_STEP_SUMMARY="$out_dir/usage.md" "$deployer" >"$out_dir/usage.log" 2>&1 ||
    { echo "error: DEPLOYER_COMMAND=usage failed: $out_dir/usage.log" >&2; status=1; }
  cat "$out_dir/usage.md" >>"$capped" 2>/dev/null || true
  cat "$capped" >>"$report"
fi

show_report "Report"
echo "deploy report: $out_dir/deploy-report.md"
echo "upstream: $upstream_label"
if [[ $status -eq 0 ]]; then
  echo "demo passed in $(elapsed) s (build included); stopping what it started"
else
  echo "demo FAILED: the endpoint tests above say what was expected and what came back" >&2
fi
exit "$status"
