# The action's image: the deployer (statically linked), a CA bundle, and the stock proxy
# (the arm64 bootstrap.zip) with its template, so a repository without Rust can deploy it.
# The deployer uses the bundled files unless the inputs template-file / function-artifact
# name others. Nothing else is in the image: no shell, no libc, no package manager.
#
# BINARIES says where the three binaries come from:
#   dist    `make image` and the release (release.yml): what scripts/dist.sh laid out in
#           dist/ from the builds CI tested. Nothing is compiled and nothing is pulled:
#           every stage used is FROM scratch, so this builds with no registry at all.
#             dist/<amd64|arm64>/openai-proxy-deployer  static (musl) deployer per platform
#             dist/bootstrap.zip                        the arm64 function
#             dist/ca-certificates.crt                  the build machine's CA bundle
#   source  the default, for the one build nobody can pass an argument to: the runner
#           building `image: Dockerfile` for `uses: <owner>/openai-lambda-proxy@main`
#           (action.yml on main). It compiles in a Rust builder pulled from Docker Hub,
#           which GitHub's runners reach: minutes per job, where a release tag's
#           prebuilt image starts in seconds. Engines skip the stage not chosen.
#
#   make image                    # BINARIES=dist, this machine's platform, podman or docker
#   docker build --build-arg BINARIES=dist -t openai-lambda-proxy:dev .   # after scripts/dist.sh
#
# checkov:skip=CKV_DOCKER_3: no USER on purpose: GitHub runs container actions as root and mounts the workspace, $GITHUB_OUTPUT and $GITHUB_STEP_SUMMARY owned by the runner's user, which a non-root user could not write
# checkov:skip=CKV_DOCKER_2: no HEALTHCHECK: the image runs a one-shot CLI, not a service
# checkov:skip=CKV_DOCKER_7: the one untagged FROM is `${BINARIES}`, a stage of this file (source or dist), not an image
ARG BINARIES=source

# ---- source: the binaries compiled from this checkout (action.yml at main) -------------
# rust:1.94.1-slim-bookworm, multi-platform index digest; rustup in it installs the
# toolchain rust-toolchain.toml pins (and the musl targets) on first use.
FROM rust:1.94.1-slim-bookworm@sha256:cf9dd0ec73e75f827fe59123fff9dc65af1a1c8363c3c31ee8d7f8ad0b6a5fb2 AS source
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PATH=/opt/build-tools/bin:$PATH \
    CARGO_TERM_COLOR=never
WORKDIR /src
# cargo-lambda links with Zig on any host; both from PyPI wheels of known hashes.
COPY requirements-docker.txt .
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv=3.11.2-1+b1 \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/build-tools \
 && pip install --no-cache-dir --disable-pip-version-check --require-hashes --only-binary=:all: \
      -r requirements-docker.txt
COPY . .
RUN triple="$(uname -m)-unknown-linux-musl" \
 && rustup target add "$triple" aarch64-unknown-linux-gnu \
 && cargo lambda build --locked --profile release-cli --target "$triple" \
      --lambda-dir /build/deployer --bin openai-proxy-deployer -p openai-proxy-deployer \
 && cargo lambda build --locked --release --arm64 --output-format zip \
      --lambda-dir /build/function -p openai-proxy-function \
 && install -D -m 0755 /build/deployer/openai-proxy-deployer/bootstrap /out/usr/local/bin/openai-proxy-deployer \
 && install -D -m 0644 /build/function/openai-proxy-function/bootstrap.zip /out/opt/openai-lambda-proxy/bootstrap.zip \
 && install -D -m 0644 template.yaml /out/opt/openai-lambda-proxy/template.yaml \
 && install -D -m 0644 /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/ca-certificates.crt

# ---- dist: the binaries CI built and tested (make image, the release) ------------------
FROM scratch AS dist
# Set by the engine to the platform being built: amd64 or arm64.
ARG TARGETARCH
COPY --chmod=0755 dist/${TARGETARCH}/openai-proxy-deployer /out/usr/local/bin/openai-proxy-deployer
COPY --chmod=0644 dist/bootstrap.zip template.yaml /out/opt/openai-lambda-proxy/
COPY --chmod=0644 dist/ca-certificates.crt /out/etc/ssl/certs/ca-certificates.crt

# hadolint ignore=DL3006
FROM ${BINARIES} AS binaries

# ---- the image ---------------------------------------------------------------------------
FROM scratch
COPY --from=binaries /out/ /
# Both TLS stacks (the AWS SDK's client and reqwest's platform verifier) read their roots
# through rustls-native-certs, which takes SSL_CERT_FILE first.
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    OPENAI_PROXY_BUNDLED_ARTIFACT=/opt/openai-lambda-proxy/bootstrap.zip \
    OPENAI_PROXY_BUNDLED_TEMPLATE=/opt/openai-lambda-proxy/template.yaml
LABEL org.opencontainers.image.title="openai-lambda-proxy" \
      org.opencontainers.image.description="Deploys the OpenAI-compatible Rust Lambda proxy from GitHub Actions" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["/usr/local/bin/openai-proxy-deployer"]
