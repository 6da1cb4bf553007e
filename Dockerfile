# imafs and mount-helper in a small image (README "Docker").
#   docker build -t imafs .          (or podman build)
#   docker run --rm --device /dev/fuse --cap-add SYS_ADMIN imafs demo
# The runtime stage takes the binaries from /out of the build stage; tests/dockerfile.rs
# builds this runtime stage with Podman from the release binaries of the same command.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --workspace --bins \
 && mkdir -p /out \
 && cp target/release/imafs target/release/mount-helper /out/

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends fuse3 busybox-static ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /usr/local/bin/
# The OCI hook for a Podman or CRI-O on the same host (copy it out of the image).
COPY contrib/oci-hooks.d/ /usr/share/containers/oci/hooks.d/
ENTRYPOINT ["imafs"]
CMD ["demo"]
