# The action's image: the deployer, plus the stock proxy (the arm64 bootstrap.zip) and its
# template, so a repository without Rust can deploy it. The deployer falls back to the
# bundled files when FUNCTION_ARTIFACT / TEMPLATE_FILE are not set and their defaults do
# not exist in the workspace.
#
# No compiler runs here: the image only copies binaries CI built and tested (what is tested
# is what ships). `scripts/dist.sh` lays them out in dist/ (the release workflow runs it):
#   dist/bootstrap.zip                      the arm64 function, as `make test-arm64` tested it
#   dist/<amd64|arm64>/openai-proxy-deployer  the deployer per image platform (TARGETARCH),
#                                           linked against Debian 12's glibc like the base
#
# Build and measure (target: 60 MB or less), wherever a Docker engine runs:
#   scripts/dist.sh && docker build -t openai-lambda-proxy:dev .
#   docker image inspect openai-lambda-proxy:dev --format '{{.Size}}' | numfmt --to=iec
#   docker run --rm openai-lambda-proxy:dev --help
#
# checkov:skip=CKV_DOCKER_3: no USER on purpose: GitHub runs container actions as root and mounts the workspace, $GITHUB_OUTPUT and $GITHUB_STEP_SUMMARY owned by the runner's user, which a non-root user could not write
# checkov:skip=CKV_DOCKER_2: no HEALTHCHECK: the image runs a one-shot CLI, not a service

# glibc, libgcc and CA certificates, no shell, no package manager.
# gcr.io/distroless/cc-debian12 (`latest`), multi-platform index digest.
FROM gcr.io/distroless/cc-debian12@sha256:e5d81ddde149641e2a9ba55be4545bc125c67de07508b03ba4c22e6eb0ded5aa
# Set by BuildKit to the platform being built: amd64 or arm64.
ARG TARGETARCH
COPY --chmod=0755 dist/${TARGETARCH}/openai-proxy-deployer /usr/local/bin/openai-proxy-deployer
COPY --chmod=0644 dist/bootstrap.zip template.yaml /opt/openai-lambda-proxy/
ENV OPENAI_PROXY_BUNDLED_ARTIFACT=/opt/openai-lambda-proxy/bootstrap.zip \
    OPENAI_PROXY_BUNDLED_TEMPLATE=/opt/openai-lambda-proxy/template.yaml
LABEL org.opencontainers.image.title="openai-lambda-proxy" \
      org.opencontainers.image.description="Deploys the OpenAI-compatible Rust Lambda proxy from GitHub Actions" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["/usr/local/bin/openai-proxy-deployer"]
