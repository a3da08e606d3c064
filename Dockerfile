# syntax=docker/dockerfile:1
#
# aoai-operator container image: a static (musl) binary on a distroless base.
# Reproducible: pinned base images, `cargo build --locked` against the checked-in Cargo.lock, a fixed
# SOURCE_DATE_EPOCH and path remapping so the binary does not embed the build directory.
# The runtime image has no shell and no package manager, and runs as the non-root user 65532.
#
#   docker build -t aoai-operator:0.1.0 .

FROM rust:1.95.0-alpine3.22 AS build
WORKDIR /src
# The rust:alpine image's toolchain targets x86_64/aarch64-unknown-linux-musl and links statically;
# ring's C parts build with the gcc/musl-dev it ships.
ENV CARGO_INCREMENTAL=0 \
    CARGO_NET_RETRY=5 \
    CARGO_TERM_COLOR=never \
    SOURCE_DATE_EPOCH=0 \
    RUSTFLAGS="-C target-feature=+crt-static -C strip=symbols --remap-path-prefix=/src=."
# The whole workspace (every member's manifest is needed to resolve it); .dockerignore keeps out the rest.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked --package aoai-operator --bin aoai-operator \
    && install -D -m 0555 target/release/aoai-operator /out/aoai-operator

FROM gcr.io/distroless/static-debian12:nonroot AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="aoai-operator" \
      org.opencontainers.image.description="Kubernetes operator for Azure OpenAI / Azure AI Foundry model deployments" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=build /out/aoai-operator /usr/local/bin/aoai-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/aoai-operator"]
CMD ["run", "--metrics-addr=0.0.0.0:8080"]
