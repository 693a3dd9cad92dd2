#!/usr/bin/env bash
# A guarded deploy rolling a bad release back, on this machine, no AWS account needed
# (`make demo-rollback`):
#
#   1. build the proxy function and the deployer for this host (debug)
#   2. start a private local AWS emulator (scripts/local-aws.sh run) whose CloudFormation
#      monitoring window lasts DEMO_SECONDS_PER_MINUTE s per minute (default 10)
#   3. without OPENAI_API_KEY: start the local OpenAI-compatible test upstream
#   4. deploy the good version (the host build), start it in local HTTP mode and put the
#      gate (scripts/demo-gate.py) in front of it: the emulator's API Gateway does not
#      invoke Lambda, so the gate plays API Gateway in front of the deployed code
#      (forwards while the stack's function has the good code, answers chat completions
#      for the mapped models with HTTP 500 while it has any other); the endpoint tests
#      pass through it
#   5. deploy a bad version (the same bootstrap with bytes appended: still an ELF, another
#      CodeSha256) with the endpoint tests on, through the gate: they fail inside the
#      monitoring window, the deployer cancels the update, CloudFormation rolls back, the
#      previous version passes its tests again, and the deploy exits 1 ("rolled back: ...")
#   6. check that against the emulator (stack UPDATE_ROLLBACK_COMPLETE, the function's
#      code is the good version's) and the step outputs (rolled-back=true)
#   7. print the bad deploy's report and its path
#
# Exits 0 when the rollback happened as designed, non-zero otherwise. Everything it
# started is stopped at the end, also on failure or Ctrl-C.
#
# Environment: OPENAI_API_KEY (use OpenAI itself; needs a network), MODEL_MAPPINGS,
# DEMO_DIR (reports and logs; default $TMPDIR/openai-lambda-proxy-demo-rollback),
# REPORT_FILE (the bad deploy's report; default $DEMO_DIR/report.md),
# DEMO_SECONDS_PER_MINUTE, and any other deployer variable (`openai-proxy-deployer
# --help`), e.g. ROLLBACK_WINDOW_MINUTES or PERF_REQUESTS.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV_DIR:-$root/.venv}
python="$venv/bin/python"
out_dir=${DEMO_DIR:-${TMPDIR:-/tmp}/openai-lambda-proxy-demo-rollback}
report=${REPORT_FILE:-$out_dir/report.md}

# shellcheck source=scripts/demo-lib.sh
. "$root/scripts/demo-lib.sh"

# --- outside the emulator: check, build, then run the rest inside a private emulator ---
if [[ "${1:-}" != "--inside-local-aws" ]]; then
  seconds_per_minute=${DEMO_SECONDS_PER_MINUTE:-10}
  if ! [[ "$seconds_per_minute" =~ ^[0-9]+$ ]] || ((seconds_per_minute < 1)); then
    echo "error: DEMO_SECONDS_PER_MINUTE='$seconds_per_minute' is not a whole number of seconds ≥ 1 (e.g. DEMO_SECONDS_PER_MINUTE=10)" >&2
    exit 2
  fi
  # The emulator inherits it: the monitoring window's real length per emulated minute.
  # Long enough for the endpoint tests of a debug build on a busy machine; a cancelled
  # update does not wait for the rest of it.
  export LOCALAWS_MONITORING_SECONDS_PER_MINUTE=$seconds_per_minute
  build_then_run_inside "$0"
fi

# --- inside: AWS_ENDPOINT_URL points at this run's emulator ---
demo_inside
good_report="$out_dir/good-deploy-report.md"
good_outputs="$out_dir/good-deploy-outputs"
bad_outputs="$out_dir/bad-deploy-outputs"
rm -f "$report" "$good_report" "$good_outputs" "$bad_outputs" "$out_dir/good-test-report.md" \
  "$out_dir/gate-port" "$out_dir/gate.log"
window=${ROLLBACK_WINDOW_MINUTES:-3}
echo "CloudFormation's monitoring window: ROLLBACK_WINDOW_MINUTES=$window min, ${LOCALAWS_MONITORING_SECONDS_PER_MINUTE} s per minute in this emulator"
start_upstream

# deployed FUNCTION STACK: "<CodeSha256 of FUNCTION> <status of STACK>", read from the emulator.
deployed() {
  "$python" - "$1" "$2" <<'PY'
import sys, boto3
function, stack = sys.argv[1:]
code = boto3.client("lambda").get_function_configuration(FunctionName=function)["CodeSha256"]
status = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
print(code, status)
PY
}

# --- 1. the good version ---
say "1/2 Deploying the good version (the host build of the function) into the local AWS emulator ($AWS_ENDPOINT_URL)"
deploy_untested "$function_bin" "$good_report" "$good_outputs" "the deploy of the good version"
secret_arn=$(output secret-arn "$good_outputs")
function_name=$(output function-name "$good_outputs")
stack_id=$(output stack-id "$good_outputs")
if [[ -z "$secret_arn" || -z "$function_name" || -z "$stack_id" ]]; then
  echo "error: the deployer wrote no secret-arn, function-name or stack-id output ($good_outputs)" >&2
  exit 1
fi
state=$(deployed "$function_name" "$stack_id")
read -r good_code _ <<<"$state"
echo "deployed: function $function_name, CodeSha256 $good_code"

start_function "$secret_arn"

say "Starting the gate: it plays API Gateway in front of the deployed code"
"$python" "$root/scripts/demo-gate.py" --target "$base" --function "$function_name" \
  --good-code-sha256 "$good_code" --models "$models" --port-file "$out_dir/gate-port" 2>"$out_dir/gate.log" &
pids+=($!)
wait_port_file "$out_dir/gate-port" "${pids[-1]}" "the gate" "$out_dir/gate.log"
gate="http://127.0.0.1:$(cat "$out_dir/gate-port")"
cat <<EOF
gate: $gate (log $out_dir/gate.log)
  What it stands for: API Gateway in front of the stack's Lambda function. The
  emulator's API Gateway does not invoke Lambda, so on each request the gate reads
  the function's CodeSha256 from the emulator. While it is the good version's
  ($good_code), the gate forwards to the function running on this
  machine ($base); while it is any other (the bad release), it answers chat
  completions for the mapped models with HTTP 500 in OpenAI's error shape, as a
  release with a broken chat path would.
EOF

say "Endpoint tests of the good version: DEPLOYER_COMMAND=test API_BASE_URL=$gate"
status=0
endpoint_tests "$gate" "$out_dir/good-test-report.md" || status=$?
if [[ $status -ne 0 ]]; then
  echo "demo-rollback FAILED: the good version failed its endpoint tests (report: $out_dir/good-test-report.md)" >&2
  exit 1
fi

# --- 2. the bad version ---
bad_bin="$out_dir/bootstrap-bad"
cp "$function_bin" "$bad_bin"
# Bytes after the ELF image change the zip's SHA-256, not what the program does: the
# gate is what makes this release "bad".
printf '\nopenai-lambda-proxy demo: the bad release\n' >>"$bad_bin"
chmod 0755 "$bad_bin"

say "2/2 Deploying a bad version ($bad_bin) with the endpoint tests on, through the gate"
echo "expected: its tests fail inside the monitoring window, the deployer cancels the update,"
echo "CloudFormation rolls back, the previous version passes its tests again, and the deploy exits 1"
status=0
deploy "$bad_bin" \
  RUN_ENDPOINT_TESTS=true \
  API_BASE_URL="$gate" \
  REPORT_FILE="$report" \
  GITHUB_OUTPUT="$bad_outputs" || status=$?

say "Checking the rollback against the emulator"
state=$(deployed "$function_name" "$stack_id") || state="(unreadable) (unreadable)"
read -r code_after stack_status <<<"$state"
headline=$(grep -m 1 -o 'rolled back: [^*]*' "$report" 2>/dev/null || true)
problems=()
[[ $status -eq 1 ]] || problems+=("the deploy exited $status, not 1")
[[ -n "$headline" ]] || problems+=("the report ($report) has no \"rolled back: ...\" headline")
[[ "$headline" == *"passed its tests"* ]] || problems+=("the report does not say the previous version passed its tests")
[[ "$(output rolled-back "$bad_outputs" 2>/dev/null)" == true ]] || problems+=("the step output rolled-back is not true ($bad_outputs)")
[[ "$stack_status" == UPDATE_ROLLBACK_COMPLETE ]] || problems+=("the stack is $stack_status, not UPDATE_ROLLBACK_COMPLETE")
[[ "$code_after" == "$good_code" ]] || problems+=("the function's CodeSha256 is $code_after, not the good version's $good_code")
echo "deploy exit status: $status"
echo "stack: $stack_status"
echo "function code: $code_after ($([[ "$code_after" == "$good_code" ]] && echo "the good version's" || echo "NOT the good version's"))"
echo "gate: $(grep -c '^gate: good ' "$out_dir/gate.log" || true) requests answered by the good version, $(grep -c '^gate: bad ' "$out_dir/gate.log" || true) by the bad one"

show_report "Report of the bad deploy"
echo "good deploy's report: $good_report; its endpoint tests: $out_dir/good-test-report.md"
echo "upstream: $upstream_label"
if [[ ${#problems[@]} -eq 0 ]]; then
  echo "${headline:-}"
  echo "demo-rollback passed in $(elapsed) s (build included): the bad version was rolled back as designed; stopping what it started"
  exit 0
fi
echo "demo-rollback FAILED: the rollback did not happen as designed:" >&2
printf '  - %s\n' "${problems[@]}" >&2
echo "the deploy's output above and its report ($report) say what it did instead" >&2
exit 1
