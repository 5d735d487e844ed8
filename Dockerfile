# syntax=docker/dockerfile:1
#
# One multi-target Dockerfile for the five services (and todoctl, the operator tool):
#
#   docker build --target task-api -t todo-platform/task-api .      (or: make images)
#
# Stages: `chef` (toolchain + cargo-chef) -> `planner` (recipe.json: the dependency graph only)
# -> `builder` (cooks the dependencies first, so that layer is reused until Cargo.toml/Cargo.lock
# change, then builds every binary of the workspace once) -> `runtime` (Debian slim with the
# shared libraries the binaries link: libsqlite3, libpq; librdkafka is linked statically) ->
# one small target per service: non-root user, read-only friendly, HEALTHCHECK on /healthz.
#
# Without the `rust` image (no registry reachable), the runtime images take binaries compiled on
# the host instead (scripts/images.sh does this): BINARIES names an image holding them in /out,
# RUNTIME_BASE a Debian bookworm image built here (debootstrap):
#
#   docker build --target task-api --build-arg BINARIES=localhost/todo-platform/host-binaries:dev \
#       --build-arg RUNTIME_BASE=localhost/todo-platform/debian:bookworm -t todo-platform/task-api:dev .
#
# deploy/README.md says how this was built and run here.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm
# `builder` (the stage below) or an image with the six binaries in /out
ARG BINARIES=builder
ARG RUNTIME_BASE=debian:${DEBIAN_RELEASE}-slim

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS chef
# Build dependencies of the crates (same list as scripts/install-deps.sh): rdkafka builds
# librdkafka from source (C compiler, make, cmake), diesel links libsqlite3 and libpq.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        g++ make cmake pkg-config libssl-dev libsasl2-dev zlib1g-dev libsqlite3-dev libpq-dev \
        libzstd-dev libcurl4-openssl-dev \
    && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# The dependency layer: rebuilt only when the recipe (manifests and lock file) changes.
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked \
        -p task-api -p ws-gateway -p notification-service -p recurring-task-service \
        -p audit-service -p todoctl \
    && mkdir -p /out \
    && for bin in task-api ws-gateway notification-service recurring-task-service audit-service todoctl; do \
        cp "target/release/${bin}" /out/; \
    done

# The binaries the runtime targets copy: compiled above, or brought in an image (BINARIES).
FROM ${BINARIES} AS binaries

FROM ${RUNTIME_BASE} AS runtime
# Shared libraries the binaries link dynamically (checked with readelf on the local builds:
# libsqlite3.so.0, libpq.so.5, libz.so.1, libssl.so.3 and libcrypto.so.3 (librdkafka's TLS and
# SASL/SCRAM, the registry client's https), libc; libpq5 brings libssl3, libsasl2 and the rest of
# what ldd lists; libssl3 is named anyway, as the Kafka client needs it whatever libpq does),
# CA certificates for TLS to SMTP, webhooks, Kafka and the registry.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libsqlite3-0 libpq5 libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app \
    && mkdir -p /data \
    && chown app:app /data
COPY deploy/docker/healthcheck.sh /usr/local/bin/healthcheck
# The SQLite default (`sqlite://<service>.db`) lands in /data, the one writable place;
# deployments use PostgreSQL or mount a volume there.
WORKDIR /data
ENV RUST_LOG=info
USER 10001:10001
STOPSIGNAL SIGTERM

# Operator tool: topics, schemas and cluster status from the catalogue (`todoctl setup`).
FROM runtime AS todoctl
COPY --from=binaries /out/todoctl /usr/local/bin/todoctl
ENTRYPOINT ["/usr/local/bin/todoctl"]

# Makes the EdDSA key pair (PKCS#8 / SPKI PEM) that docker-compose.yml shares between task-api
# (private + public) and the other services (public), once per volume.
FROM ${RUNTIME_BASE} AS jwt-keygen
RUN apt-get update \
    && apt-get install -y --no-install-recommends openssl \
    && rm -rf /var/lib/apt/lists/*
COPY deploy/docker/jwt-keygen.sh /usr/local/bin/jwt-keygen
ENTRYPOINT ["/usr/local/bin/jwt-keygen"]

FROM runtime AS task-api
COPY --from=binaries /out/task-api /usr/local/bin/task-api
ENV BIND_ADDR=0.0.0.0:8000
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 CMD ["healthcheck", "8000"]
ENTRYPOINT ["/usr/local/bin/task-api"]

FROM runtime AS ws-gateway
COPY --from=binaries /out/ws-gateway /usr/local/bin/ws-gateway
ENV BIND_ADDR=0.0.0.0:8001
EXPOSE 8001
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 CMD ["healthcheck", "8001"]
ENTRYPOINT ["/usr/local/bin/ws-gateway"]

FROM runtime AS notification-service
COPY --from=binaries /out/notification-service /usr/local/bin/notification-service
ENV BIND_ADDR=0.0.0.0:8002
EXPOSE 8002
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 CMD ["healthcheck", "8002"]
ENTRYPOINT ["/usr/local/bin/notification-service"]

FROM runtime AS recurring-task-service
COPY --from=binaries /out/recurring-task-service /usr/local/bin/recurring-task-service
ENV BIND_ADDR=0.0.0.0:8003
EXPOSE 8003
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 CMD ["healthcheck", "8003"]
ENTRYPOINT ["/usr/local/bin/recurring-task-service"]

FROM runtime AS audit-service
COPY --from=binaries /out/audit-service /usr/local/bin/audit-service
ENV BIND_ADDR=0.0.0.0:8004
EXPOSE 8004
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 CMD ["healthcheck", "8004"]
ENTRYPOINT ["/usr/local/bin/audit-service"]
