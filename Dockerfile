# jitbot's container image: built with the Rust toolchain, run from a small image
# without a shell, as a non-root user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
# Declared bench targets must exist for Cargo to read the manifest.
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --bin jitbot

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/jitbot /usr/local/bin/jitbot
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/jitbot"]
CMD ["serve"]
