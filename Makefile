# The front door. Every target is a thin call into the `pipelines` CLI (or pytest / the image scripts).
# Pipeline config: MODEL=<name> for models/<name>/pipeline.yaml, or PIPELINE_CONFIG=path; without either the
# project's first model (first_model in .copier-answers.yml), in the template the demo's pipelines/pipeline.yaml.
# Local state: .platform/
SHELL := /bin/bash
# Recursive (=) so the lookup happens again after `setup` installed uv.
UV = $(shell command -v uv 2>/dev/null || echo python3 -m uv)
RUN = $(UV) run --frozen
PIPELINES = $(RUN) pipelines
VERSION ?=
ARGS ?=# extra CLI flags for validate/deploy, e.g. ARGS=--allow-incomparable
CANARY ?=# deploy TARGET=stack CANARY=10: the candidate serves 10% of requests, judged before it takes over
TARGET ?= local# deploy/rollback target: local (bentoml serve here) or stack (release image on the Pulumi stack)
STACK ?= dev
BASE_IMAGE ?= mlops-platform-base:bookworm
KEEP ?= 7# backups of one source to keep
FORMAT ?= md# audit: md (a table) or json
REASON ?=# retire: why the version retires
DEST ?=# backup: where archives go, a folder or s3://bucket/prefix (default: platform.backup_destination)
# What a person or a workflow passes (`make NAME=value`, or NAME in the environment). Make never expands
# these values (a `$(shell ...)` in one stays text) and never pastes them into a recipe: a target gets
# the ones it takes as environment variables, read by its recipe as "$$NAME", so each value is one
# argument to the CLI, which validates it. ARGS alone is split into words (never globbed or parsed).
INPUTS := MODEL VERSION FROM TO STACK TARGET CANARY ARGS KEEP DEST BACKUP IMAGE_TAG IMAGE_REGISTRY BASE_IMAGE FORMAT REASON
$(foreach name,$(INPUTS),$(eval override $(name) := $$(value $(name))))
# $(call takes,<target>,<inputs>): that target's recipe gets those inputs in its environment.
takes = $(foreach name,$(2),$(eval $(1): export $(name) := $$($(name))))
# Every target that reads the pipeline config takes MODEL=<name> as PIPELINE_MODEL: the CLI reads
# models/<name>/pipeline.yaml, and refuses a name with no folder there, listing the ones there are.
CONFIG_TARGETS := demo platform data train validate build deploy rollback reproduce promote traffic monitor \
                  monitoring-ui status down backup restore stack-up audit audit-verify retire gc
$(foreach target,$(CONFIG_TARGETS),$(eval $(target): export PIPELINE_MODEL := $$(MODEL)))

.DEFAULT_GOAL := help
.PHONY: help setup demo platform data train validate build deploy rollback reproduce traffic monitor monitoring-ui status down \
        test test-unit test-infra test-integration test-template test-stack lint bench \
        base-image images stack-up requirements k8s-images test-kubernetes lint-workflows promote backup restore \
        audit audit-verify retire gc

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

setup: ## install uv if missing, then the locked environment (.venv)
	@command -v uv >/dev/null || python3 -m pip install --quiet uv
	@# Bytecode compiled once here (a minute on a fresh machine), not at each start: a command importing
	@# mlflow or bentoml would otherwise compile ~2,700 modules every time (~10 s on 2 cores), and always
	@# where PYTHONDONTWRITEBYTECODE is set.
	$(UV) sync --frozen --compile-bytecode

demo: setup ## the whole loop on this machine: MLflow, train, gate, bento, serve, traffic, monitoring
	$(PIPELINES) demo

platform: setup ## start the local MLflow server (127.0.0.1:5000)
	$(PIPELINES) platform

data: ## check the dataset and print its version
	$(PIPELINES) data

train: ## train, log to MLflow, register @challenger (MODEL=<name>: models/<name>/pipeline.yaml, for every target)
	$(PIPELINES) train

$(call takes,validate,ARGS)
validate: ## gate @challenger against thresholds and @champion (ARGS=--allow-incomparable waives an impossible comparison)
	set -f; $(PIPELINES) validate $$ARGS

build: ## build the bento for @challenger from the registry
	$(PIPELINES) build

$(call takes,deploy,TARGET STACK CANARY ARGS)
deploy: ## gate, build and serve @challenger (TARGET=local|stack; CANARY=<percent> on the stack), then promote it
	set -f; $(PIPELINES) deploy --target="$$TARGET" --stack="$$STACK" $${CANARY:+--canary="$$CANARY"} $$ARGS

$(call takes,rollback,TARGET STACK)
rollback: ## serve @previous again (TARGET=local|stack) and swap the aliases back
	$(PIPELINES) rollback --target="$$TARGET" --stack="$$STACK"

$(call takes,reproduce,VERSION)
reproduce: ## retrain VERSION=<n> from its recorded snapshot and compare metrics
	@test -n "$$VERSION" || { echo "usage: make reproduce VERSION=<model version>"; exit 2; }
	$(PIPELINES) reproduce -- "$$VERSION"

$(call takes,promote,VERSION FROM TO)
promote: ## copy model VERSION=<n> from registry FROM=<uri> into TO=<uri> (or PROMOTE_FROM_URI, PROMOTE_TO_URI; logins: PROMOTE_FROM_USERNAME/_PASSWORD, PROMOTE_TO_*) and gate it there
	@test -n "$$VERSION" || { echo "usage: make promote VERSION=<model version> FROM=<tracking uri> TO=<tracking uri>"; exit 2; }
	$(PIPELINES) promote $${FROM:+--from="$$FROM"} $${TO:+--to="$$TO"} -- "$$VERSION"  # make echoes no password

$(call takes,audit,VERSION FORMAT)
audit: ## the audit timeline of the model (VERSION=<n>: one version's; FORMAT=md|json), from its records alone
	$(PIPELINES) audit $${VERSION:+--version="$$VERSION"} --format="$$FORMAT"

audit-verify: ## recompute every model's audit hash chain; names the first broken link, exit 1 if one is
	$(PIPELINES) audit verify

$(call takes,retire,VERSION REASON)
retire: ## retire VERSION=<n> REASON=<why>: tag it retired, remove its bentos and release images (refused while it serves)
	@test -n "$$VERSION" -a -n "$$REASON" || { echo "usage: make retire VERSION=<model version> REASON=<why>"; exit 2; }
	$(PIPELINES) retire --reason="$$REASON" -- "$$VERSION"

$(call takes,gc,TARGET STACK ARGS)
gc: ## retire versions outside the lifecycle, delete old monitoring output and judged logs (TARGET=stack: its volumes); ARGS=--dry-run says what would go
	set -f; $(PIPELINES) gc --target="$$TARGET" --stack="$$STACK" $$ARGS

traffic: ## send sample traffic (half of it shifted) to the local serving URL
	$(PIPELINES) traffic

monitor: ## judge the logged traffic with Evidently once: OK / DRIFT / NOT ENOUGH DATA
	$(PIPELINES) monitor

monitoring-ui: ## serve the Evidently UI with the monitoring reports (127.0.0.1:8000)
	$(PIPELINES) monitoring-ui

status: ## what runs where: MLflow, the front, stacks; per model its aliases, local serving, monitoring verdict; storage
	$(PIPELINES) status

down: ## stop the local serving and MLflow processes (state is kept)
	$(PIPELINES) down

$(call takes,backup,TARGET STACK KEEP DEST ARGS)
backup: ## archive the tracking state (TARGET=local|stack) to DEST (a folder or s3://...): database + artifacts; keeps KEEP
	set -f; $(PIPELINES) backup --target="$$TARGET" --stack="$$STACK" --keep="$$KEEP" $${DEST:+--dir="$$DEST"} $$ARGS

$(call takes,restore,BACKUP TARGET STACK ARGS)
restore: ## restore BACKUP=<archive, a path or s3://...> into an empty platform (TARGET=local|stack; ARGS=--force replaces one)
	@test -n "$$BACKUP" || { echo "usage: make restore BACKUP=<archive .tar.gz> [TARGET=stack] [ARGS=--force]"; exit 2; }
	set -f; $(PIPELINES) restore --target="$$TARGET" --stack="$$STACK" $$ARGS -- "$$BACKUP"

$(call takes,base-image,BASE_IMAGE)
base-image: ## the offline base image (mmdebstrap from Debian packages) for hosts without Docker Hub
	services/base-image.sh

$(call takes,images,BASE_IMAGE)
images: ## build the service images on BASE_IMAGE, as the stack does (classic builder)
	for service in tracking serving monitoring front postgres; do \
	  DOCKER_BUILDKIT=0 docker build --network host --build-arg BASE_IMAGE="$$BASE_IMAGE" \
	    -f services/$$service/Dockerfile -t mlops-$${service/serving/serving-runtime}:latest services || exit 1; done

$(call takes,k8s-images,IMAGE_TAG IMAGE_REGISTRY BASE_IMAGE)
k8s-images: ## the three images as [IMAGE_REGISTRY/]mlops-<image>:IMAGE_TAG, pushed when IMAGE_REGISTRY is set (kubernetes target)
	@test -n "$$IMAGE_TAG" || { echo "usage: make k8s-images IMAGE_TAG=<version> [IMAGE_REGISTRY=<registry/path>]"; exit 2; }
	for service in tracking serving monitoring; do \
	  image="$${IMAGE_REGISTRY:+$$IMAGE_REGISTRY/}mlops-$${service/serving/serving-runtime}:$$IMAGE_TAG"; \
	  DOCKER_BUILDKIT=0 docker build --network host --build-arg BASE_IMAGE="$$BASE_IMAGE" \
	    -f services/$$service/Dockerfile -t "$$image" services || exit 1; \
	  if [[ -n "$$IMAGE_REGISTRY" ]]; then docker push "$$image" || exit 1; fi; echo "built $$image"; done

$(call takes,stack-up,STACK)
stack-up: ## apply the stack (policy pack on) serving the registry's @champion image, not the stack file's
	$(PIPELINES) stack-up --stack="$$STACK"

requirements: ## recompile services/*/requirements.txt against uv.lock
	services/compile-requirements.sh

$(call takes,test,BASE_IMAGE)  # the stack tier builds on it (and tests/kubernetes)
test: setup ## every tier: unit, Pulumi mocks, integration (real processes), template (copier), Docker stack
	$(RUN) pytest tests --durations=30

test-unit: setup
	$(RUN) pytest tests/unit

test-infra: setup
	$(RUN) pytest tests/infra

test-integration: setup
	$(RUN) pytest tests/integration

test-template: setup ## copier copy of this template, the copy's unit tier and release loop, copier update (tests/template)
	@test -f copier.yml || { echo "test-template: a project made from the template has no template to copy"; exit 2; }
	$(RUN) pytest tests/template

$(call takes,test-kubernetes,BASE_IMAGE)
test-kubernetes: setup ## the kubernetes target offline: mocks, schemas 1.30-1.33, Checkov, own checks, pods on Docker
	$(RUN) pytest tests/infra/test_kubernetes_program.py tests/kubernetes

$(call takes,test-stack,BASE_IMAGE)
test-stack: setup
	.ci/setup-docker.sh
	$(RUN) pytest tests/stack

bench: setup ## benchmarks as ratios to a baseline in the same run; tables in bench/results/
	$(RUN) python bench/serving_bench.py
	$(RUN) python bench/monitoring_bench.py
	$(RUN) python bench/task_bench.py
	$(RUN) python bench/capacity_bench.py
	$(RUN) python bench/data_bench.py

lint: setup lint-workflows ## ruff, hadolint and the workflow linters
	$(RUN) ruff check .
	$(RUN) hadolint services/*/Dockerfile services/serving/release.Dockerfile

lint-workflows: setup ## .github/workflows: actionlint, zizmor (offline) and GitHub's workflow schema
	$(RUN) actionlint
	$(RUN) zizmor --offline --quiet .github
	$(RUN) check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
