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

show_report "Report"
echo "deploy report: $out_dir/deploy-report.md"
echo "upstream: $upstream_label"
if [[ $status -eq 0 ]]; then
  echo "demo passed in $(elapsed) s (build included); stopping what it started"
else
  echo "demo FAILED: the endpoint tests above say what was expected and what came back" >&2
fi
exit "$status"
