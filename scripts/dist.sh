#!/usr/bin/env bash
# Lays out dist/, all the Dockerfile's dist stage copies (`make image` and the release build
# the image with BINARIES=dist: nothing compiled in the image, nothing pulled):
#
#   dist/bootstrap.zip                        the arm64 function, built exactly as
#                                             scripts/test-arm64.sh builds and tests it (same
#                                             command, same target dir: after `make
#                                             test-arm64` this is that very file)
#   dist/<amd64|arm64>/openai-proxy-deployer  the deployer for each image platform, profile
#                                             release-cli, statically linked against musl by
#                                             Zig (cargo-lambda): the image has no libc
#   dist/ca-certificates.crt                  this machine's CA bundle (the image is FROM
#                                             scratch; SSL_CERT_FILE names it)
#
#   DIST_ARCHES   which deployers to build (default: "amd64 arm64"); Zig cross-links both
#                 from any host
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV_DIR:-$root/.venv}
target_dir=${CARGO_TARGET_DIR:-$root/target}
ca_bundle=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

fail() { echo "error: $*" >&2; exit 1; }

[[ -x "$venv/bin/cargo-lambda" ]] || fail "cargo-lambda is not installed in $venv; run 'make setup' first"
[[ -s "$ca_bundle" ]] || fail "$ca_bundle is missing: install ca-certificates (apt-get install ca-certificates) or set CA_BUNDLE to a PEM bundle"

# The function as scripts/test-arm64.sh builds it (a no-op when that build is current).
arm_target=$target_dir/release-arm64
echo "dist: the arm64 function (as make test-arm64 builds it)"
(cd "$root" && PATH="$venv/bin:$PATH" CARGO_TARGET_DIR="$arm_target" \
  cargo lambda build --locked --release --arm64 --output-format zip \
  --lambda-dir "$arm_target/lambda" -p openai-proxy-function)

rm -rf "$root/dist"
install -D -m 0644 "$arm_target/lambda/openai-proxy-function/bootstrap.zip" "$root/dist/bootstrap.zip"
install -D -m 0644 "$ca_bundle" "$root/dist/ca-certificates.crt"
for arch in ${DIST_ARCHES:-amd64 arm64}; do
  case $arch in
    amd64) triple=x86_64-unknown-linux-musl ;;
    arm64) triple=aarch64-unknown-linux-musl ;;
    *) fail "DIST_ARCHES: unknown architecture $arch (amd64 or arm64)" ;;
  esac
  echo "dist: the deployer for $arch ($triple, static)"
  # cargo-lambda leaves each binary as <lambda-dir>/<name>/bootstrap.
  (cd "$root" && PATH="$venv/bin:$PATH" CARGO_TARGET_DIR="$target_dir/dist" \
    cargo lambda build --locked --profile release-cli --target "$triple" \
    --lambda-dir "$target_dir/dist/lambda-$arch" --bin openai-proxy-deployer -p openai-proxy-deployer)
  install -D -m 0755 "$target_dir/dist/lambda-$arch/openai-proxy-deployer/bootstrap" \
    "$root/dist/$arch/openai-proxy-deployer"
done
ls -l "$root"/dist/*.zip "$root"/dist/*.crt "$root"/dist/*/openai-proxy-deployer
