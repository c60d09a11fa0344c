# syntax=docker/dockerfile:1
# Build: docker build -t scrubgate .
# Run:   docker run -p 3000:3000 -v $PWD/config.toml:/etc/scrubgate/config.toml:ro scrubgate

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --bin scrubgate \
    && strip target/release/scrubgate

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/scrubgate --create-home scrubgate
COPY --from=build /src/target/release/scrubgate /usr/local/bin/scrubgate
COPY config.toml.example /etc/scrubgate/config.toml
USER scrubgate
WORKDIR /var/lib/scrubgate
# Listen on all interfaces inside the container; the config file can override everything else.
ENV SCRUBGATE_CONFIG=/etc/scrubgate/config.toml \
    SCRUBGATE_SERVER__LISTEN=0.0.0.0:3000
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=3s --start-period=5s --retries=3 \
    CMD curl -fsS http://127.0.0.1:3000/healthz || exit 1
ENTRYPOINT ["scrubgate"]
CMD ["serve"]
