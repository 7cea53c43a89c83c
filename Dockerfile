# junction in a container: one image for every role (`junction api|produce|consume|analytics`).
#
#   docker build -t junction .
#   docker run --rm -e JUNCTION_ADMIN_TOKEN="$(openssl rand -hex 16)" \
#     -p 8081:8081 -p 8082:8082 -p 8000:8000 junction api
#   docker run --rm junction --help-config
#
# compose.yaml runs the whole pipeline (Kafka, Redis and one service per role) from this
# image. The image's default configuration is examples/containers.lua (every listener on
# 0.0.0.0, Kafka at kafka:29092, Redis at redis); environment variables override it
# (`junction --help-config` lists them) and JUNCTION_CONFIG picks another file.

# ---- build: the project's own build, with Debian 12's packages ----
FROM debian:bookworm-slim AS build

# Debian stable only takes security and bug fixes, so the packages are not pinned to a
# version: a rebuild picks those fixes up.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      libuv1-dev libcurl4-openssl-dev librdkafka-dev libhiredis-dev \
      liblua5.4-dev lua-cjson-dev libhttp-parser-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# .dockerignore keeps build trees, caches and .git out of the context. The binary alone
# (BUILD_TESTING=OFF: no tests, no cmocka), installed the standard way: bin/junction, and
# the stock scripts and example configs it finds beside it, in share/junction/.
COPY . .
RUN cmake -S . -B build -DJN_WERROR=ON -DBUILD_TESTING=OFF \
 && cmake --build build --parallel "$(nproc)" \
 && cmake --install build --prefix /usr/local

# ---- runtime: the binary, its shared libraries, the scripts and the example configs ----
FROM debian:bookworm-slim

# The runtime counterparts of the -dev packages above (tests/containers/validate.sh
# checks that they cover every library build/junction links against), certificates for
# https sources, and curl for the health check.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libuv1 libcurl4 librdkafka1 libhiredis0.14 liblua5.4-0 lua-cjson \
      libhttp-parser2.9 libssl3 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

# A user (uid and gid 10001) without a login shell or home directory. The files below
# stay owned by root: the process can read (and hot-reload) the scripts, not change them.
RUN groupadd --gid 10001 junction \
 && useradd --no-log-init --uid 10001 --gid junction --no-create-home \
      --home-dir /opt/junction --shell /usr/sbin/nologin junction

# What `cmake --install` put under /usr/local. The working directory holds nothing of
# junction's: the configs' relative script paths ("scripts/crm.lua") are found under
# /usr/local/share/junction (mount ./scripts over /usr/local/share/junction/scripts to
# edit them live).
WORKDIR /opt/junction
COPY --from=build /usr/local/bin/junction /usr/local/bin/junction
COPY --from=build /usr/local/share/junction /usr/local/share/junction

ENV JUNCTION_CONFIG=/usr/local/share/junction/examples/containers.lua
# Numeric, so a runtime that checks "not root" (runAsNonRoot) can tell: 10001 is junction.
USER 10001:10001

# CRM API, Inventory API, analytics receiver, admin (/healthz /metrics /api/status ...).
EXPOSE 8081 8082 8083 8000

# Every role serves the admin endpoints, so one check fits them all.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8000/healthz"]

ENTRYPOINT ["junction"]
CMD ["api"]
