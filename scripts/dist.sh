#!/usr/bin/env bash
# Lays out dist/, all the action's image copies (the Dockerfile runs no compiler):
#
#   dist/bootstrap.zip                        the arm64 function scripts/test-arm64.sh built
#                                             and ran under qemu (run `make test-arm64` first)
#   dist/<amd64|arm64>/openai-proxy-deployer  the deployer for each image platform, profile
#                                             release-cli, linked by Zig (cargo-lambda)
#                                             against glibc 2.36, the image base's (Debian 12)
#
#   DIST_ARCHES   which deployers to build (default: "amd64 arm64"); Zig cross-links both
#                 from any host
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV_DIR:-$root/.venv}
target_dir=${CARGO_TARGET_DIR:-$root/target}
# The image base's glibc: a deployer linked against a newer one would not start in it.
glibc=2.36

fail() { echo "error: $*" >&2; exit 1; }

tested_zip=$target_dir/release-arm64/lambda/openai-proxy-function/bootstrap.zip
[[ -f "$tested_zip" ]] || fail "$tested_zip is missing: run 'make test-arm64' first (it builds and tests the function)"
[[ -x "$venv/bin/cargo-lambda" ]] || fail "cargo-lambda is not installed in $venv; run 'make setup' first"

rm -rf "$root/dist"
install -D -m 0644 "$tested_zip" "$root/dist/bootstrap.zip"
for arch in ${DIST_ARCHES:-amd64 arm64}; do
  case $arch in
    amd64) triple=x86_64-unknown-linux-gnu ;;
    arm64) triple=aarch64-unknown-linux-gnu ;;
    *) fail "DIST_ARCHES: unknown architecture $arch (amd64 or arm64)" ;;
  esac
  echo "dist: the deployer for $arch ($triple, glibc $glibc)"
  # cargo-lambda leaves each binary as <lambda-dir>/<name>/bootstrap.
  (cd "$root" && PATH="$venv/bin:$PATH" CARGO_TARGET_DIR="$target_dir/dist" \
    cargo lambda build --locked --profile release-cli --target "$triple.$glibc" \
    --lambda-dir "$target_dir/dist/lambda-$arch" --bin openai-proxy-deployer -p openai-proxy-deployer)
  install -D -m 0755 "$target_dir/dist/lambda-$arch/openai-proxy-deployer/bootstrap" \
    "$root/dist/$arch/openai-proxy-deployer"
done
ls -l "$root"/dist/*.zip "$root"/dist/*/openai-proxy-deployer
