# syntax=docker/dockerfile:1
#
# Build:  DOCKER_BUILDKIT=1 docker build -t pipelined .
# Run:    docker run --rm -p 8080:8080 pipelined
#
# deploy/check.sh runs this file's builder stage, instruction by instruction, in a clean Debian
# bookworm root standing in for its base image (deploy/builder-stage.sh reads them from here), and
# cli/tests/deploy.rs checks the runtime stage.

# ---- builder ---------------------------------------------------------------------------------
FROM rust:1-slim-bookworm AS builder
# The image has gcc (`cc`, which ring and the other C parts need) but not `make`, which
# tikv-jemalloc-sys runs to build jemalloc. Pinned to bookworm's version (hadolint DL3008):
# deploy/check.sh runs this line, so a version gone from the archive fails CI, not a user's build.
RUN apt-get update \
 && apt-get install -y --no-install-recommends make=4.3-4.1 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
# The registry and target dirs are BuildKit cache mounts, so dependencies are compiled once and
# reused by later builds. The target dir does not survive into the image layer, hence the copy.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/app/target,sharing=locked \
    cargo build --release --locked -p pipelined-cli --bin pipelined \
 && cp /app/target/release/pipelined /usr/local/bin/pipelined

# ---- runtime ---------------------------------------------------------------------------------
# distroless cc: glibc + libgcc, no shell, no package manager; `nonroot` is uid/gid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /usr/local/bin/pipelined /usr/local/bin/pipelined
USER 65532:65532
ENV PIPELINED_BIND=0.0.0.0:8080
EXPOSE 8080
# `pipelined health` derives http://127.0.0.1:8080/healthz from PIPELINED_BIND; no curl needed.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/pipelined", "health"]
# SIGTERM starts the graceful drain (--shutdown-timeout, default 30 s); give `docker stop`
# a longer wait than that: docker stop --time 35.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/pipelined"]
CMD ["serve"]
