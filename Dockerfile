# syntax=docker/dockerfile:1
# Two ways to build the same image:
#   docker build -t scrubgate .                      compiles scrubgate in the build stage
#   scripts/docker-image                             runs the test suite on a release binary
#                                                    and puts that very binary in the image
#                                                    (docker build --target prebuilt)
# Run: see README.md ("Docker"): create config.toml (and the HMAC key) first, then
#   docker run -p 3000:3000 -v $PWD/config.toml:/etc/scrubgate/config.toml:ro scrubgate
#
# Everything the build needs is in this repository (Cargo.lock pins every crate);
# .dockerignore keeps target/ (but the one prebuilt binary) and local state out of the
# build context.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --bin scrubgate \
    && strip target/release/scrubgate

# Everything but the binary.
FROM debian:bookworm-slim AS runtime
# Versions are not pinned: bookworm's security updates replace them, and a pin would break
# the build on the next point release. curl is only for the HEALTHCHECK.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 scrubgate \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/scrubgate --create-home scrubgate
COPY config.toml.example /etc/scrubgate/config.toml
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
WORKDIR /var/lib/scrubgate
# SCRUBGATE_DEFAULTS__* sit below the config file: a mounted config's server.listen wins
# over this image default (SCRUBGATE_SERVER__LISTEN would override the file).
ENV SCRUBGATE_CONFIG=/etc/scrubgate/config.toml \
    SCRUBGATE_DEFAULTS__SERVER__LISTEN=0.0.0.0:3000
EXPOSE 3000
# The admin listener (admin.listen, default 127.0.0.1:9898) is plain HTTP on loopback, so
# this works whatever the main listener does ([server.tls], another port).
HEALTHCHECK --interval=15s --timeout=3s --start-period=5s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9898/healthz"]
ENTRYPOINT ["scrubgate"]
CMD ["serve"]

# The release binary the test suite ran (scripts/docker-image), built on Debian 12 like
# this image.
FROM runtime AS prebuilt
COPY target/release/scrubgate /usr/local/bin/scrubgate

# The default: the binary from the build stage.
FROM runtime AS image
COPY --from=build /src/target/release/scrubgate /usr/local/bin/scrubgate
