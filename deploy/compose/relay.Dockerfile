# syntax=docker/dockerfile:1
# ferry-relay for the compose demo (docker-compose.yml builds it). From the repository root:
#
#   docker build -f deploy/compose/relay.Dockerfile -t ferry-relay .
#   docker run --rm ferry-relay --check --config /etc/ferry/relay.toml   # after mounting one
#
# The build context is the whole workspace (cargo needs every member's manifest to read
# Cargo.lock); relay.Dockerfile.dockerignore keeps target/, .venv/ and .git/ out of it.
# Builder and runtime are the same Debian release (bookworm), so the binary finds the glibc it
# was linked against.

FROM rust:1.85-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the crates.io downloads and the compiled dependencies between builds; the
# binary is copied out of the cached target/ because a cache mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ferry-relay \
    && install -D -m 0755 target/release/ferry-relay /out/ferry-relay

FROM debian:bookworm-slim
# A system user with no home and no shell: the relay needs neither, nor root. Binding :443 and
# :80 without root is done by the compose file (net.ipv4.ip_unprivileged_port_start=0).
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin ferry
COPY --from=build /out/ferry-relay /usr/local/bin/ferry-relay
USER ferry
EXPOSE 443 80 9090
# SIGTERM: stop accepting, drain for the config's `grace`, exit. SIGHUP: re-read the file.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/ferry-relay"]
CMD ["--config", "/etc/ferry/relay.toml"]
