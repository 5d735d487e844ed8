# The task platform. `make dev` runs the whole system, `make test` runs every test.
# Both install and start what they need (see scripts/README.md); nothing needs Docker.

SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/todo-platform/target
DATABASE ?= sqlite
export DATABASE
# plaintext, or sasl_ssl: the local cluster with a SASL_SSL listener, a SCRAM user and ACLs per
# service (scripts/kafka-security.sh)
KAFKA_SECURITY ?= plaintext
export KAFKA_SECURITY

.PHONY: help dev test stop fmt lint cluster status bench chaos deps
.DEFAULT_GOAL := help

## make help: this list of targets (from the `## ` comment above each one)
help:
	@echo "Targets (README.md says more; the contract is docs/contract.md):"
	@sed -n 's/^## make \([^:]*\): \(.*\)/\1\t\2/p' $(MAKEFILE_LIST) | \
		awk -F'\t' '{ printf "  make %-14s %s\n", $$1, $$2 }'

## make dev: cluster, registry, topics, schemas, SMTP sink and the five services (DATABASE=postgres for PostgreSQL, KAFKA_SECURITY=sasl_ssl for SASL_SSL + ACLs, SCALE=2 for two instances of each behind haproxy)
dev:
	scripts/dev.sh

## make test: start the infrastructure and run every test (ARGS="..." goes to cargo test)
test:
	scripts/test.sh $(ARGS)

## make stop: stop services and infrastructure
stop:
	scripts/stop.sh

## make cluster: only Kafka, the registry, topics and schemas
cluster:
	scripts/cluster.sh up

## make status: what runs (brokers, registry, topics, schemas, services) and whether it is ready
status:
	scripts/cluster.sh status
	scripts/services.sh status

## make chaos: the reliability suite in its long mode (60 s outages, ten kills per service)
chaos:
	CHAOS_MODE=long scripts/test.sh -p system-tests --test chaos -- --nocapture --test-threads=1

## make bench: every benchmark, one report in bench/report.md (release builds)
bench:
	scripts/bench.sh

## make deps: install the Debian packages and the Python venv the project needs (root or sudo)
deps:
	scripts/install-deps.sh

## make fmt: format the Rust code
fmt:
	cargo fmt --all

## make lint: what CI checks before the tests (fmt, clippy with warnings denied, shellcheck, cargo-deny)
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	shellcheck scripts/*.sh .ci/run
	scripts/deny.sh

# ---- deployment (deploy/README.md) --------------------------------------------------------
IMAGE_PREFIX ?= todo-platform
IMAGE_TAG ?= dev
SERVICES := task-api ws-gateway notification-service recurring-task-service audit-service
K8S_OUT ?= build/k8s
# The stack of compose-up without Prometheus and Grafana, whose images cannot be built here.
COMPOSE_LOCAL_SERVICES := kafka-1 kafka-2 kafka-3 schema-registry kafka-ui topic-init postgres mailpit \
	jwt-keygen $(SERVICES)

.PHONY: images images-release k8s compose-up compose-down compose-test

## make images: every image of the compose stack, built on this machine (Docker if it answers, else podman; scripts/images.sh)
images:
	scripts/containers.sh start
	eval "$$(scripts/containers.sh env)" && scripts/images.sh all

## make images-release: release images through the Dockerfile's cargo-chef stages (Docker with Docker Hub; IMAGE_PREFIX, IMAGE_TAG)
images-release:
	@if ! docker info >/dev/null 2>&1; then \
		echo "make images-release needs a running Docker engine that reaches Docker Hub (the rust image), and none answers here (docker info failed)."; \
		echo "Build on a machine with Docker: make images-release IMAGE_PREFIX=registry.example.com/todo IMAGE_TAG=1.0.0"; \
		exit 1; \
	fi
	for s in $(SERVICES) todoctl; do \
		docker build --target $$s -t $(IMAGE_PREFIX)/$$s:$(IMAGE_TAG) . || exit 1; \
	done

## make k8s: render every overlay of deploy/k8s into build/k8s/<overlay>.yaml and validate it (offline)
k8s:
	scripts/deploy-tools.sh
	scripts/k8s.sh render $(K8S_OUT)
	scripts/k8s.sh validate $(K8S_OUT)/*.yaml

## make compose-up: the whole system in containers on the default ports, images built here (make compose-down stops it)
compose-up:
	scripts/containers.sh start
	eval "$$(scripts/containers.sh env)" && scripts/images.sh all \
		&& set -a && source <(scripts/images.sh env) && set +a \
		&& scripts/containers.sh compose up -d --no-build --pull never $(COMPOSE_LOCAL_SERVICES)
	@echo "task-api http://127.0.0.1:8000  Kafka UI http://127.0.0.1:8080  Mailpit http://127.0.0.1:8025  registry http://127.0.0.1:8081/apis/ccompat/v7"

## make compose-down: stop the stack of compose-up and drop its volumes
compose-down:
	scripts/containers.sh compose down -v --remove-orphans

## make compose-test: build the images, bring the whole stack up, run the end-to-end story and the Kafka UI check against it, down -v
compose-test:
	scripts/compose-test.sh
