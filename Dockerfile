# itsm-bridge container image: a release build, then a runtime of the binary alone.
#
# The runtime image (distroless, glibc) has no shell and no package manager; it
# runs as the unprivileged user 65532 and works on a read-only root filesystem:
# the only writable place it needs is /var/lib/itsm-bridge (the SQLite store, or
# the demo's files), a volume. The healthcheck is the binary itself
# (`itsm-bridge health`), as there is no curl to run.
#
#   docker build -t itsm-bridge .
#   docker run --read-only -v itsm-bridge:/var/lib/itsm-bridge \
#     -v ./bridge.toml:/etc/itsm-bridge/bridge.toml:ro itsm-bridge

FROM rust:1-bookworm AS build
WORKDIR /src
# The manifests and sources only (see .dockerignore): no target/, no .git.
COPY Cargo.toml Cargo.lock ./
COPY bridge-core bridge-core
COPY connectors connectors
COPY migrations migrations
COPY mappings mappings
COPY src src
RUN cargo build --release --locked --bin itsm-bridge \
 && mkdir -p /out/var/lib/itsm-bridge /out/etc/itsm-bridge

# distroless/cc carries glibc and libssl3, which `client_certificate` uses to
# open a PKCS#12 file or an encrypted key.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/itsm-bridge /usr/local/bin/itsm-bridge
COPY --from=build /src/mappings /usr/share/itsm-bridge/mappings
COPY --from=build --chown=65532:65532 /out/var/lib/itsm-bridge /var/lib/itsm-bridge
COPY --from=build /out/etc/itsm-bridge /etc/itsm-bridge
USER 65532:65532
WORKDIR /var/lib/itsm-bridge
VOLUME ["/var/lib/itsm-bridge"]
# [server] listen = "0.0.0.0:9464" in the container: /livez, /healthz, /metrics.
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/itsm-bridge", "health", "--url", "http://127.0.0.1:9464/livez"]
ENTRYPOINT ["/usr/local/bin/itsm-bridge"]
CMD ["run", "--config", "/etc/itsm-bridge/bridge.toml"]
