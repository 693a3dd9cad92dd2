# The action's image: the deployer, plus the stock proxy (the arm64 bootstrap.zip) and its
# template, so a repository without Rust can deploy it. The deployer falls back to the
# bundled files when FUNCTION_ARTIFACT / TEMPLATE_FILE are not set and their defaults do
# not exist in the workspace.
#
# Build and measure (target: 60 MB or less), wherever a Docker engine runs:
#   docker build -t openai-lambda-proxy:dev .
#   docker image inspect openai-lambda-proxy:dev --format '{{.Size}}' | numfmt --to=iec
#   docker run --rm openai-lambda-proxy:dev --help
#
# checkov:skip=CKV_DOCKER_3: no USER on purpose: GitHub runs container actions as root and mounts the workspace, $GITHUB_OUTPUT and $GITHUB_STEP_SUMMARY owned by the runner's user, which a non-root user could not write
# checkov:skip=CKV_DOCKER_2: no HEALTHCHECK: the image runs a one-shot CLI, not a service

# ---- builder: the deployer for this image's platform, the function for arm64 Lambda -----
# rust:1.94.1-slim-bookworm (the workspace's rust-version), multi-platform index digest.
FROM rust:1.94.1-slim-bookworm@sha256:cf9dd0ec73e75f827fe59123fff9dc65af1a1c8363c3c31ee8d7f8ad0b6a5fb2 AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PATH=/opt/build-tools/bin:$PATH \
    CARGO_TERM_COLOR=never
WORKDIR /src
# cargo-lambda links the arm64 function with Zig on any host; both come from PyPI as wheels
# of known hashes (requirements-docker.txt), in a venv (Debian's Python refuses system-wide pip).
COPY requirements-docker.txt .
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv=3.11.2-1+b1 \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/build-tools \
 && pip install --no-cache-dir --disable-pip-version-check --require-hashes --only-binary=:all: \
      -r requirements-docker.txt \
 && rustup target add aarch64-unknown-linux-gnu
COPY . .
RUN cargo build --locked --profile release-cli --bin openai-proxy-deployer \
 && cargo lambda build --locked --release --arm64 --output-format zip -p openai-proxy-function \
 && install -D -m 0755 target/release-cli/openai-proxy-deployer /out/usr/local/bin/openai-proxy-deployer \
 && install -D -m 0644 target/lambda/openai-proxy-function/bootstrap.zip /out/opt/openai-lambda-proxy/bootstrap.zip \
 && install -D -m 0644 template.yaml /out/opt/openai-lambda-proxy/template.yaml

# ---- runtime: glibc, libgcc and CA certificates, no shell, no package manager ----------
# gcr.io/distroless/cc-debian12 (`latest`), multi-platform index digest. Debian 12 like the
# builder, so the deployer's glibc matches.
FROM gcr.io/distroless/cc-debian12@sha256:e5d81ddde149641e2a9ba55be4545bc125c67de07508b03ba4c22e6eb0ded5aa
COPY --from=builder /out/ /
ENV OPENAI_PROXY_BUNDLED_ARTIFACT=/opt/openai-lambda-proxy/bootstrap.zip \
    OPENAI_PROXY_BUNDLED_TEMPLATE=/opt/openai-lambda-proxy/template.yaml
LABEL org.opencontainers.image.title="openai-lambda-proxy" \
      org.opencontainers.image.description="Deploys the OpenAI-compatible Rust Lambda proxy from GitHub Actions" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["/usr/local/bin/openai-proxy-deployer"]
