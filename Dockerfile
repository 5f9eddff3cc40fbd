# hop's container image (docs/deploy.md).
#
#   docker build -t hop .                    # builds hop inside (target runtime)
#   docker run -p 8080:8080 -v hop-data:/data hop
#
# Targets: `runtime` (the default, last) compiles hop in the `build` stage;
# `runtime-prebuilt` copies a binary built on the host instead
# (`strip -o target/container/hop target/release/hop` first), which is what
# CI does: no
# registry or crates.io mirror is reachable from a container there, and the
# host has already compiled hop. Both give the same image: a minimal glibc
# base, hop alone, non-root, no shell needed.
#
# Base images are arguments so that CI (and air-gapped sites) can pass local
# ones; the defaults are the standard public images.
ARG RUST_IMAGE=docker.io/library/rust:1.88-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# The commit for `hop --version` and the image's labels (no .git in here).
ARG HOP_GIT_COMMIT=unknown
ENV HOP_GIT_COMMIT=${HOP_GIT_COMMIT}
COPY . .
RUN cargo build --release --locked --bin hop \
    && cp target/release/hop /hop \
    && strip /hop

# What both runtime targets share.
FROM ${RUNTIME_IMAGE} AS base
ARG HOP_GIT_COMMIT=unknown
ARG HOP_VERSION=0.1.0
LABEL org.opencontainers.image.title="hop" \
      org.opencontainers.image.description="A distributed URL shortener with exact, real-time click analytics" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.version="${HOP_VERSION}" \
      org.opencontainers.image.revision="${HOP_GIT_COMMIT}"
# Embedded mode keeps everything (SQLite database and click log) under
# /data: mount a volume there. Cluster mode sets HOP_DATABASE_URL (or
# HOP_DATABASE_URL_FILE) and HOP_REDIS_URL and keeps nothing locally.
COPY --chown=65532:65532 deploy/container/data/ /data/
ENV HOP_LISTEN=0.0.0.0:8080 \
    HOP_DATABASE_URL=sqlite:///data/hop.db \
    HOP_LOG_FORMAT=json
VOLUME ["/data"]
WORKDIR /data
USER 65532:65532
EXPOSE 8080
# hop drains its clicks on SIGTERM (give it the time: see docs/deploy.md).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/hop"]
CMD ["serve"]

FROM base AS runtime-prebuilt
ARG HOP_BIN=target/container/hop
COPY --chmod=755 ${HOP_BIN} /usr/local/bin/hop

FROM base AS runtime
COPY --from=build /hop /usr/local/bin/hop
