# The task platform. `make dev` runs the whole system, `make test` runs every test.
# Both install and start what they need (see scripts/README.md); nothing needs Docker.

SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/todo-platform/target
DATABASE ?= sqlite
export DATABASE

.PHONY: dev test stop fmt lint cluster status bench deps

## make dev: cluster, registry, topics, schemas, SMTP sink and the five services (DATABASE=postgres for PostgreSQL)
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

status:
	scripts/cluster.sh status
	scripts/services.sh status

## make bench: every benchmark, one report in bench/report.md (release builds)
bench:
	scripts/bench.sh

deps:
	scripts/install-deps.sh

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	shellcheck scripts/*.sh .ci/run
