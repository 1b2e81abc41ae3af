# rampd container image: the rampd binary on Debian slim, running as UID 10001.
#
#   docker build -t rampd:0.1.0 --build-arg RAMPD_VERSION=0.1.0 \
#     --build-arg RAMPD_REVISION="$(git rev-parse HEAD)" .
#
# The entrypoint is `rampd`; the default command is `run` (the worker). Other
# subcommands: `docker run --rm rampd:0.1.0 migrate`, `… sandbox --listen 0.0.0.0:8088`,
# `… orders list --flagged`. deploy/compose.yaml and deploy/k8s/ use this image.
#
# Toolchain: Rust >= 1.94 (the workspace's rust-version) and a C compiler (ring, mimalloc
# and the bundled SQLite are compiled with cc); the rust:*-slim images have gcc.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src

# 1. Dependencies only. This layer depends on the manifests and Cargo.lock alone, so a
#    change to rampd's own sources does not rebuild the few hundred dependency crates. The
#    workspace's crates get empty sources (every member's manifest must be present, and
#    the targets it names must exist).
COPY Cargo.toml Cargo.lock ./
COPY domain/Cargo.toml domain/
COPY migrations/Cargo.toml migrations/
COPY sandbox/Cargo.toml sandbox/
COPY workers/Cargo.toml workers/
COPY tests/Cargo.toml tests/
RUN mkdir -p domain/src migrations/src sandbox/src workers/src \
        tests/support tests/e2e tests/webhooks tests/ops tests/chaos \
    && touch domain/src/lib.rs migrations/src/lib.rs sandbox/src/lib.rs workers/src/lib.rs \
             tests/support/mod.rs \
    && for f in workers/src/main.rs tests/e2e/main.rs tests/webhooks/main.rs \
                tests/ops/main.rs tests/chaos/main.rs; do echo 'fn main() {}' > "$f"; done \
    && cargo build --release --locked -p rampd

# 2. rampd itself. COPY keeps the files' own (older) modification times, so touch the
#    crate roots: otherwise cargo would take the empty crates built above as up to date.
COPY domain/src domain/src
COPY migrations/src migrations/src
COPY sandbox/src sandbox/src
COPY workers/src workers/src
RUN touch domain/src/lib.rs migrations/src/lib.rs sandbox/src/lib.rs workers/src/lib.rs \
          workers/src/main.rs \
    && cargo build --release --locked -p rampd \
    && ./target/release/rampd --version

FROM debian:bookworm-slim AS runtime
ARG RAMPD_VERSION=0.1.0
ARG RAMPD_REVISION=unknown
LABEL org.opencontainers.image.title="rampd" \
      org.opencontainers.image.description="Crypto on/off-ramp order orchestration worker" \
      org.opencontainers.image.version="${RAMPD_VERSION}" \
      org.opencontainers.image.revision="${RAMPD_REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"

# CA certificates: rampd verifies the provider's and the tenants' webhook endpoints' TLS
# against the system store. Not version-pinned on purpose: a rebuild picks up Debian's
# security updates of the CA list. /var/lib/rampd is the working directory (where the
# default SQLite file `rampd.db` would go; deployments use PostgreSQL).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 rampd \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/rampd \
        --shell /usr/sbin/nologin rampd \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/rampd

COPY --from=build /src/target/release/rampd /usr/local/bin/rampd

USER 10001:10001
WORKDIR /var/lib/rampd
# 9464: admin (/metrics, /healthz, /readyz) when admin.listen / RAMPD_ADMIN_LISTEN is set.
# 9465: provider callbacks when callbacks.listen / RAMPD_CALLBACKS_LISTEN is set.
EXPOSE 9464 9465
# rampd stops taking work on SIGTERM and lets in-flight steps finish (up to 30 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/rampd"]
CMD ["run"]
