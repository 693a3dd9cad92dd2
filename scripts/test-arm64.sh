#!/usr/bin/env bash
# The arm64 function that ships, run here (`make test-arm64`, part of `make test`):
#
#   1. build bootstrap.zip exactly as the release does: cargo-lambda with Zig (the pinned
#      Python tools in $VENV_DIR), `--release --arm64 --output-format zip`
#   2. take `bootstrap` out of that zip and check it is an aarch64 ELF
#   3. run function/tests/lambda_mode.rs against it under qemu-user
#      (`qemu-aarch64-static -L /usr/aarch64-linux-gnu bootstrap`): the same REST events,
#      stream and buffered mode and the streamed SSE relay, that the host build passes
#
# The build has its own target dir ($CARGO_TARGET_DIR/release-arm64) so it never evicts
# the debug build the other tests use. `scripts/setup.sh` installs qemu-user-static,
# libc6-arm64-cross and the Rust target when missing.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV_DIR:-$root/.venv}
target_dir=${CARGO_TARGET_DIR:-$root/target}
arm_target=$target_dir/release-arm64
lambda_dir=$arm_target/lambda
sysroot=/usr/aarch64-linux-gnu

fail() { echo "error: $*" >&2; exit 1; }

[[ -x "$venv/bin/cargo-lambda" ]] ||
  fail "cargo-lambda is not installed in $venv; run 'make setup' first"
command -v qemu-aarch64-static >/dev/null ||
  fail "qemu-aarch64-static is missing; run 'make setup' (or apt-get install qemu-user-static)"
[[ -e "$sysroot/lib/ld-linux-aarch64.so.1" ]] ||
  fail "$sysroot/lib/ld-linux-aarch64.so.1 is missing; run 'make setup' (or apt-get install libc6-arm64-cross)"
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu ||
  fail "the Rust target aarch64-unknown-linux-gnu is missing; run 'make setup' (or rustup target add aarch64-unknown-linux-gnu)"

started=$(date +%s)
echo "test-arm64: building the release arm64 bootstrap.zip (cargo lambda, Zig) in $arm_target"
(cd "$root" && PATH="$venv/bin:$PATH" CARGO_TARGET_DIR="$arm_target" \
  cargo lambda build --locked --release --arm64 --output-format zip \
  --lambda-dir "$lambda_dir" -p openai-proxy-function)
built=$(date +%s)

zip=$lambda_dir/openai-proxy-function/bootstrap.zip
run_dir=$arm_target/run
rm -rf "$run_dir"
mkdir -p "$run_dir"
"$venv/bin/python" - "$zip" "$run_dir" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    z.extract("bootstrap", sys.argv[2])
os.chmod(os.path.join(sys.argv[2], "bootstrap"), 0o755)
PY
bootstrap=$run_dir/bootstrap
# ELF e_machine (bytes 18-19, little endian): 183 is aarch64.
machine=$(od -An -t u2 -j 18 -N 2 "$bootstrap" | tr -d ' ')
[[ "$machine" == 183 ]] || fail "$zip holds a bootstrap for ELF machine $machine, not aarch64 (183)"
echo "test-arm64: $zip ($(stat -c %s "$zip") bytes), bootstrap is aarch64"

echo "test-arm64: lambda_mode tests against it under qemu-aarch64-static"
(cd "$root" && OPENAI_PROXY_FUNCTION_BINARY="$bootstrap" \
  OPENAI_PROXY_FUNCTION_WRAPPER="qemu-aarch64-static -L $sysroot" \
  cargo nextest run --locked -p openai-proxy-function --test lambda_mode --no-tests=fail)
echo "test-arm64: passed (build $((built - started)) s, tests $(($(date +%s) - built)) s)"
