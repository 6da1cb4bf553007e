# imafs and mount-helper in a small image (README "Docker").
#   docker build -t imafs .
#   docker run --rm --device /dev/fuse --cap-add SYS_ADMIN imafs demo
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --workspace --bins

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends fuse3 busybox-static ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/imafs /src/target/release/mount-helper /usr/local/bin/
# The OCI hook for a Podman or CRI-O on the same host (copy it out of the image).
COPY contrib/oci-hooks.d/ /usr/share/containers/oci/hooks.d/
ENTRYPOINT ["imafs"]
CMD ["demo"]
