# syntax=docker/dockerfile:1
#
# Container image for mailroute_exporter.
#
#   docker build -t mailroute_exporter:0.1.0 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
#
# The build stage and the runtime stage are both Debian 12 (bookworm): the release
# binary links against glibc, and distroless/cc-debian12 ships the same glibc and
# libgcc_s that the rust:*-bookworm image linked against. Move both together.

# ---------------------------------------------------------------------------
# Build stage
# ---------------------------------------------------------------------------
FROM rust:1.95.0-bookworm AS build

WORKDIR /src

# Dependencies first, in their own layer: this layer is reused as long as
# Cargo.toml and Cargo.lock are unchanged. Placeholder targets only let Cargo read
# the manifest; nothing is compiled here, so no stale artifact can survive into
# the real build below.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src /state \
 && printf 'fn main() {}\n' > src/main.rs \
 && : > src/lib.rs \
 && cargo fetch --locked \
 && rm -rf src

# The sources, and the status page template that askama compiles into the binary.
# If the crate gains other include_str!/include_bytes! of files outside src/, add a
# COPY line for them here.
COPY build.rs ./
COPY src ./src
COPY templates ./templates

# The image build has no .git: the revision comes from the build argument (build.rs
# reads MAILROUTE_REVISION) and ends up in mailroute_build_info{revision}.
ARG REVISION=unknown
ENV MAILROUTE_REVISION=${REVISION}

# Exactly the command CI uses, so that the image and CI build the same thing.
RUN cargo build --release --locked

# ---------------------------------------------------------------------------
# Runtime stage: no shell, no package manager, runs as uid/gid 65532 (nonroot)
# ---------------------------------------------------------------------------
FROM gcr.io/distroless/cc-debian12:nonroot

ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG SOURCE=https://example.invalid/mailroute_exporter

LABEL org.opencontainers.image.title="mailroute_exporter" \
      org.opencontainers.image.description="Prometheus exporter for postmasters: SMTP rejects and misroutes from MTA logs, and DNS checks of the mail domains" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

COPY --from=build /src/target/release/mailroute_exporter /usr/local/bin/mailroute_exporter
# Where [maillog] state_file goes in the deploy/ examples; owned by nonroot so a
# fresh named volume mounted here is writable.
COPY --from=build --chown=65532:65532 /state /var/lib/mailroute_exporter

# The distroless "nonroot" user, by number: Kubernetes can only verify runAsNonRoot
# against a numeric user (hadolint DL3066 asks the same).
USER 65532:65532

# 2553 = 25 (SMTP) + 53 (DNS).
EXPOSE 2553

# No HEALTHCHECK: the distroless image has neither a shell nor curl/wget to run one,
# and the exporter has no self-probe subcommand. Let the orchestrator probe the HTTP
# endpoints instead: GET /-/healthy (liveness) and GET /-/ready (readiness); see
# deploy/kubernetes/mailroute.yaml. Under docker compose, Prometheus' `up` series
# for job="mailroute" is the health signal.

ENTRYPOINT ["/usr/local/bin/mailroute_exporter"]

# Default for a sidecar: tail the MTA log in a volume shared at /var/log/mail,
# without a config file. To use a config file instead, mount it read-only and
# replace the command, e.g.
#   docker run ... -v ./config.toml:/etc/mailroute_exporter/config.toml:ro \
#     mailroute_exporter serve --config.file=/etc/mailroute_exporter/config.toml
CMD ["serve", "--maillog.path=/var/log/mail/mail.log"]
