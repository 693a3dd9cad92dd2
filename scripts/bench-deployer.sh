#!/usr/bin/env bash
# Deployer benchmark against the local AWS emulator (docs/benchmarks.md, "Deployer"):
#   - a full first deploy by the deployer, next to `aws cloudformation deploy` (awscli from
#     the venv) deploying the same template, parameters and zip to a fresh stack;
#   - a no-op redeploy (nothing changed).
# Each is run ROUNDS times (default 3) on fresh stacks; the median wall time is reported.
# Usage: scripts/local-aws.sh run scripts/bench-deployer.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

: "${AWS_ENDPOINT_URL:?run through scripts/local-aws.sh run scripts/bench-deployer.sh}"
rounds=${ROUNDS:-3}
target=${CARGO_TARGET_DIR:-target}
venv=${VENV_DIR:-.venv}

cargo build --quiet --profile release-cli -p openai-proxy-deployer
deployer="$target/release-cli/openai-proxy-deployer"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A 4 MB bootstrap: the size of the release function's zip, incompressible like code.
python3 - "$work/bootstrap" <<'PY'
import os, struct, sys
header = bytearray(64)
header[:4] = b"\x7fELF"; header[4] = 2; header[5] = 1; header[6] = 1; header[16] = 2
header[18:20] = struct.pack("<H", 62)
with open(sys.argv[1], "wb") as f:
    f.write(bytes(header) + os.urandom(4 * 1024 * 1024))
PY
chmod 755 "$work/bootstrap"

now() { date +%s.%N; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

deploy_with_deployer() {
  env DEPLOYER_COMMAND=deploy STACK_NAME="$1" LAMBDA_FUNCTION_NAME="$1" API_GATEWAY_NAME="$1" \
    FUNCTION_ARTIFACT="$work/bootstrap" OPENAI_API_KEY=sk-bench-0123456789abcdefgh \
    RUN_ENDPOINT_TESTS=false ENABLE_AUTHENTICATION=false "$deployer" >"$work/$1.log" 2>&1
}

full=() noop=() cli=()
for i in $(seq "$rounds"); do
  stack="bench-d-$i-$RANDOM"
  t0=$(now); deploy_with_deployer "$stack"; t1=$(now)
  deploy_with_deployer "$stack"; t2=$(now)
  grep -q "no changes" "$work/$stack.log" || { echo "second deploy of $stack was not a no-op" >&2; cat "$work/$stack.log" >&2; exit 1; }
  full+=("$(minus "$t1" "$t0")") noop+=("$(minus "$t2" "$t1")")

  # awscli deploys the same template with the same parameters and the zip the deployer
  # uploaded (its S3 key and the secret come from the deployer's stack).
  # shellcheck disable=SC2016 # backticks are JMESPath literals, not shell
  params=$("$venv/bin/aws" cloudformation describe-stacks --stack-name "$stack" \
    --query 'Stacks[0].Parameters[?ParameterKey!=`LambdaFunctionName` && ParameterKey!=`ApiGatewayName`].[ParameterKey,ParameterValue]' \
    --output text | awk '{printf "%s=%s ", $1, $2}')
  other="bench-c-$i-$RANDOM"
  t0=$(now)
  # shellcheck disable=SC2086 # one word per Key=Value pair
  "$venv/bin/aws" cloudformation deploy --template-file template.yaml --stack-name "$other" \
    --capabilities CAPABILITY_IAM CAPABILITY_NAMED_IAM \
    --parameter-overrides $params LambdaFunctionName="$other" ApiGatewayName="$other" >/dev/null
  t1=$(now)
  cli+=("$(minus "$t1" "$t0")")
done

f=$(printf '%s\n' "${full[@]}" | median)
n=$(printf '%s\n' "${noop[@]}" | median)
c=$(printf '%s\n' "${cli[@]}" | median)
printf 'rounds: %s\n' "$rounds"
printf 'deployer full deploy (median s): %.2f   [%s]\n' "$f" "${full[*]}"
printf 'deployer no-op redeploy (median s): %.2f   [%s]\n' "$n" "${noop[*]}"
printf 'aws cloudformation deploy (median s): %.2f   [%s]\n' "$c" "${cli[*]}"
printf 'ratio deployer / awscli: %s\n' "$(awk -v a="$f" -v b="$c" 'BEGIN { printf "%.2f", a / b }')"
