# zeoraid in a container: a multi-stage build (the Rust toolchain stays in
# the build stage), run as an unprivileged user, healthy while /readyz
# answers 200. UNTESTED: the machine this project is developed and tested
# on has no container daemon, so this file has never been built; the
# steps are the ones scripts/system-packages and `cargo install` run.
#
#   docker build -t zeoraid .
#   docker run -v /etc/zeoraid:/etc/zeoraid:ro -v zeoraid-state:/var/lib/zeoraid \
#       -p 8100:8100 zeoraid
#
# The configuration must listen on 0.0.0.0 (`listen`, `[http] listen`) to be
# reachable from outside the container, and keep `state_dir` under
# /var/lib/zeoraid (a volume: the array state must survive the container).

FROM rust:1-bookworm AS build
# protoc and protobuf's .proto files build the etcd client.
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler libprotobuf-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo install --locked --path . --root /out

FROM debian:bookworm-slim
# curl for the health check; ca-certificates for TLS members.
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/zeoraid --create-home zeoraid
COPY --from=build /out/bin/zeoraid /usr/local/bin/zeoraid
USER zeoraid
WORKDIR /var/lib/zeoraid
VOLUME ["/var/lib/zeoraid"]
EXPOSE 8100 8101
# /readyz is 200 while the array takes writes (optimal, degraded or
# recovering) and 503 on a cluster's standby and while draining.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
  CMD curl -fsS http://127.0.0.1:8101/readyz || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/zeoraid"]
CMD ["serve", "--config", "/etc/zeoraid/zeoraid.toml"]
