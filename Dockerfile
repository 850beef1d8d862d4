# syntax=docker/dockerfile:1
# The Sextant image: `sextant` (the CLI, the server, and the Kubernetes controller) and
# `sextant-collector` (the metrics sidecar of trial pods), both in /usr/local/bin.
#
#   docker build -t ghcr.io/sextant-tuning/sextant:0.1.0 .

# --- Build -----------------------------------------------------------------------------------------
# Debian bookworm, so the binaries link against the same glibc (2.36) as the runtime image below.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# --locked: build exactly the dependency versions in Cargo.lock. The cache mounts keep the registry
# and the target directory between builds; the binaries are copied out of the cached target
# directory in the same step, since it is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p sextant -p sextant-collector \
    && mkdir -p /out \
    && cp target/release/sextant target/release/sextant-collector /out/

# --- Runtime ---------------------------------------------------------------------------------------
# distroless/cc: glibc, libgcc, CA certificates and /etc/passwd, and nothing else (no shell, no
# package manager), which is all two Rust binaries linked against glibc need. There is no libssl:
# nothing links OpenSSL today (the HTTP client is plain http), and TLS to the Kubernetes API must
# stay on rustls for this image to keep working. The image is small and has
# little to patch, and the `nonroot` variant already runs as uid/gid 65532, the user the manifests
# in deploy/ and the trial pods' collector sidecar expect. debian:bookworm-slim would work too, at
# the cost of a shell and apt that nothing here uses.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/sextant /out/sextant-collector /usr/local/bin/
USER 65532:65532
EXPOSE 6789
ENTRYPOINT ["/usr/local/bin/sextant"]
