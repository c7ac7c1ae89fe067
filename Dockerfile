# The `warren` binary in a small image. Not built on the machine this
# project is developed on (it has no Docker engine): scripts/docker-steps.sh
# runs the same build steps outside Docker, and the test suite checks
# deploy/docker-compose.yml with `docker-compose config`.
#
#   docker build -t warren .
#   docker run --rm -p 7001:7001 -p 7000:7000 warren all   # the whole stack, embedded defaults
#
# One image serves every role: the command names it (`warren gold`,
# `warren game`, ...); see deploy/docker-compose.yml.

# --- build -------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin warren \
    && install -D -m 0755 target/release/warren /out/warren

# --- run ---------------------------------------------------------------
# The binary needs glibc, libgcc_s and libstdc++ (the bundled libzmq is
# C++); scripts/docker-steps.sh checks that list.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libstdc++6 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/warren --create-home warren
COPY --from=build /out/warren /usr/local/bin/warren
USER warren
WORKDIR /var/lib/warren
# Keys, the admin token and SQLite databases (when no PostgreSQL is set).
ENV WARREN_DATA_DIR=/var/lib/warren \
    WARREN_READY_FILE=/tmp/warren-ready.json
VOLUME ["/var/lib/warren"]
EXPOSE 7000 7001 7002 7003 7004 7005 7008
# Healthy while the process runs and every listener its ready file names
# accepts a connection.
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=3 \
    CMD ["warren", "health"]
ENTRYPOINT ["warren"]
CMD ["all"]
