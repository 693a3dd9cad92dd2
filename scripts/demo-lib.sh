# shellcheck shell=bash
# shellcheck disable=SC2154 # root, python and out_dir are set by the sourcing script
# What the demos share (scripts/demo.sh, scripts/demo-rollback.sh); sourced, not run.
#
# The sourcing script sets `root` (the repository), `python` (the venv's) and `out_dir`
# (reports and logs) first. Inside the emulator, demo_inside sets bin_dir, function_bin,
# deployer, arch and models; start_upstream sets key, upstream_url and upstream_label;
# start_function sets base. Every process they start is stopped when the script exits.
# The sourcing script also sets `report` (its REPORT_FILE) for show_report.

say() { printf '\n==> %s\n' "$*"; }

# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"

# wait_port_file FILE PID WHAT LOG: until a server started as PID wrote its port to FILE.
wait_port_file() {
  local file=$1 pid=$2 what=$3 log=$4
  for _ in $(seq 1 100); do
    [[ -s "$file" ]] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "error: $what did not start; its log ($log) ends with:" >&2
  tail -n 20 "$log" >&2
  exit 1
}

# build_then_run_inside SCRIPT: outside the emulator. Checks the venv, builds the function
# and the deployer for this host (debug), then runs SCRIPT --inside-local-aws in a private
# emulator (scripts/local-aws.sh run), which it replaces this process with.
build_then_run_inside() {
  local script=$1 started target
  started=$(date +%s)
  if [[ ! -x "$python" ]] || ! "$python" -c 'import moto' 2>/dev/null; then
    echo "error: the Python tools are not installed in ${python%/bin/python}; run 'make setup' first (make demo does)" >&2
    exit 1
  fi
  mkdir -p "$out_dir"
  say "Building the function and the deployer for this host (debug)"
  (cd "$root" && cargo build --locked -p openai-proxy-function -p openai-proxy-deployer --bins)
  target=$(cd "$root" && cargo metadata --no-deps --format-version 1 |
    "$python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  # exec: a signal to this process reaches the emulator's runner, which stops it.
  DEMO_STARTED=$started DEMO_BIN_DIR="$target/debug" exec "$root/scripts/local-aws.sh" run "$script" --inside-local-aws
}

pids=()
# shellcheck disable=SC2329 # run by the EXIT trap
stop_started() {
  local pid
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
}

# demo_inside: inside the emulator (AWS_ENDPOINT_URL points at it). Stops what the demo
# starts on exit, also on Ctrl-C; sets what every deploy needs.
demo_inside() {
  trap stop_started EXIT
  trap 'echo "interrupted: stopping what the demo started" >&2; exit 130' INT TERM
  bin_dir=$DEMO_BIN_DIR
  function_bin="$bin_dir/openai-proxy-function"
  deployer="$bin_dir/openai-proxy-deployer"
  case "$(uname -m)" in
    x86_64 | amd64) arch=x86_64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) echo "error: no Lambda architecture for $(uname -m)" >&2; exit 1 ;;
  esac
  models=${MODEL_MAPPINGS:-'{"amazon.nova-lite-v1:0":"gpt-4o-mini","amazon.nova-pro-v1:0":"gpt-4o-mini","amazon.nova-micro-v1:0":"gpt-4o-mini"}'}
  # The demo's function runs on this machine without client keys: every deployer call
  # (deploy and test) must agree, or the tests would expect keys the function never asks
  # for. The deployer's default is on (the report says when it is off).
  export ENABLE_AUTHENTICATION=${ENABLE_AUTHENTICATION:-false}
}

# start_upstream: OpenAI when OPENAI_API_KEY is set, else the local test upstream.
start_upstream() {
  upstream_url=
  if [[ -n "${OPENAI_API_KEY:-}" ]]; then
    key=$OPENAI_API_KEY
    upstream_label="OpenAI (OPENAI_API_KEY is set)"
  else
    # Shaped like a key so the deployer accepts it; nothing ever sends it to OpenAI.
    key="sk-demo-local-test-upstream-not-a-real-key"
    upstream_label="the local test upstream (scripts/test-upstream.py), not OpenAI: set OPENAI_API_KEY to use OpenAI"
    say "Starting the local OpenAI-compatible test upstream"
    rm -f "$out_dir/upstream-port"
    "$python" "$root/scripts/test-upstream.py" --port-file "$out_dir/upstream-port" \
      2>"$out_dir/upstream.log" &
    pids+=($!)
    wait_port_file "$out_dir/upstream-port" "${pids[-1]}" "the test upstream" "$out_dir/upstream.log"
    upstream_url="http://127.0.0.1:$(cat "$out_dir/upstream-port")/v1"
    echo "test upstream: $upstream_url"
  fi
  echo "upstream: $upstream_label"
}

# deploy ARTIFACT [VAR=VALUE...]: the deployer's deploy of ARTIFACT into the emulator,
# with the demo's key and models; the VARs add to or override its settings.
deploy() {
  local artifact=$1
  shift
  env DEPLOYER_COMMAND=deploy \
    TEMPLATE_FILE="$root/template.yaml" \
    FUNCTION_ARTIFACT="$artifact" \
    ARCHITECTURE="$arch" \
    OPENAI_API_KEY="$key" \
    MODEL_MAPPINGS="$models" \
    "$@" \
    "$deployer"
}

# deploy_untested ARTIFACT REPORT OUTPUTS WHAT: deploy ARTIFACT with the endpoint tests off
# (the emulator's API Gateway does not invoke functions), its report to REPORT and its step
# outputs to OUTPUTS; when it fails, says "WHAT failed" and exits with its status.
deploy_untested() {
  local artifact=$1 its_report=$2 outputs=$3 what=$4 status=0
  deploy "$artifact" RUN_ENDPOINT_TESTS=false REPORT_FILE="$its_report" GITHUB_OUTPUT="$outputs" || status=$?
  if [[ $status -ne 0 ]]; then
    echo "error: $what failed; its report: $its_report" >&2
    exit "$status"
  fi
}

# endpoint_tests URL REPORT: the deployer's endpoint tests (DEPLOYER_COMMAND=test) of URL
# with the demo's models, its report to REPORT; returns the deployer's status.
endpoint_tests() {
  DEPLOYER_COMMAND=test API_BASE_URL="$1" MODEL_MAPPINGS="$models" REPORT_FILE="$2" "$deployer"
}

# show_report TITLE: the report ($report) under TITLE, then its path.
show_report() {
  say "$1"
  cat "$report" 2>/dev/null || echo "(no report was written)"
  echo
  echo "report: $report"
}

# The seconds since the demo started (the build included).
elapsed() {
  echo $(($(date +%s) - ${DEMO_STARTED:-$(date +%s)}))
}

# output NAME FILE: the last value of step output NAME in a $GITHUB_OUTPUT file.
output() {
  sed -n "s/^$1=//p" "$2" | tail -n 1
}

# start_function SECRET_ARN: the function in local HTTP mode, configured by the secret the
# deployer wrote into the emulator.
start_function() {
  local secret_arn=$1 port
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
  if ! wait_http "$base/health" 30 "${pids[-1]}"; then
    echo "error: the function did not start; its log ($out_dir/function.log) ends with:" >&2
    tail -n 20 "$out_dir/function.log" >&2
    exit 1
  fi
  echo "function: $base (OpenAI base URL $base/v1), secret $secret_arn, log $out_dir/function.log"
}
