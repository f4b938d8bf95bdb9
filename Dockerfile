# syntax=docker/dockerfile:1
#
# ConvLens HTTP service image: `convlens serve` on port 8080 as a non-root user.
#
#   docker build -t convlens .
#   docker run --rm -p 8080:8080 --stop-timeout 30 \
#       -v convlens-cache:/var/cache/convlens convlens
#
# Volumes
#   /var/cache/convlens  the on-disk result cache (CONVLENS_CACHE_DIR). Finished
#                        filter pictures survive restarts here. Must be writable
#                        by UID 10001 (a named volume is; chown a bind mount).
#   /models              your own models, read only. The bundled EfficientNet-Lite0
#                        stays in /app/models and is used while CONVLENS_MODEL_PATH
#                        is unset, so an empty /models changes nothing:
#                          -v "$PWD/mymodels:/models:ro" -e CONVLENS_MODEL_PATH=/models/vgg16.h5
#
# Configuration is by environment: every key `section.name` of config/convlens.yaml
# (copied to /app/config, which documents them all) is overridden by
# CONVLENS_SECTION_NAME, e.g. -e CONVLENS_COMPUTE_THREADS=2 -e CONVLENS_JOBS_WORKERS=2.
# A whole file can replace it: -v "$PWD/my.yaml:/app/config/convlens.yaml:ro".
# Change the port with CONVLENS_SERVER_PORT, not `serve --port`: the HEALTHCHECK
# reads CONVLENS_SERVER_PORT.
#
# Stopping: on SIGTERM running jobs get jobs.shutdown_grace_seconds to finish, then
# are cancelled. The image sets it to 8 s so Docker's default 10 s stop timeout
# (then SIGKILL) still ends in a clean exit; to give jobs longer, raise both, e.g.
# -e CONVLENS_JOBS_SHUTDOWN_GRACE_SECONDS=25 --stop-timeout 30.
#
# No Docker engine runs on the development machines: scripts/container-host-run
# reads this file and performs the same build and run steps on the host (same
# packages, same `swift build`, same file layout, ENV, USER, HEALTHCHECK). Run it
# after changing this file.

# ---------------------------------------------------------------- build stage
# Same Swift release and Debian release (12, bookworm) as the development machines.
FROM swift:6.3.1-bookworm AS build

# The -dev packages of the system libraries the package links (scripts/setup has
# the same list for the host); binutils for strip.
RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get -q update \
    && apt-get -q install -y --no-install-recommends \
        binutils \
        libdnnl-dev \
        libhdf5-dev \
        libjpeg62-turbo-dev \
        libpng-dev \
        libdeflate-dev \
        libssl-dev \
        pkg-config \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# Resolve dependencies in their own layer, rebuilt only when Package.* change.
# Package.resolved is not committed (.gitignore): when the working tree has one,
# its versions are used.
COPY Package.* ./
RUN swift package resolve $([ -f Package.resolved ] && echo --force-resolved-versions)

COPY . .

# The Swift standard library and Foundation are linked statically, so the runtime
# image needs no Swift runtime, only the system libraries below.
RUN swift build -c release --product convlens --static-swift-stdlib

# The executable without debug info (the symbol table stays, so crash backtraces
# have function names), and the runtime's crash backtracer for static binaries.
RUN install -d /staging \
    && cp /src/.build/release/convlens /usr/libexec/swift/linux/swift-backtrace-static /staging/ \
    && strip --strip-debug /staging/convlens

# -------------------------------------------------------------- runtime stage
FROM debian:bookworm-slim AS runtime

LABEL org.opencontainers.image.title="ConvLens" \
      org.opencontainers.image.description="CNN visualisation service: heatmaps, activations, filters, predictions"

# Only the runtime libraries the executable links (scripts/container-host-run
# checks every library `ldd` reports against this list and its dependencies).
RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get -q update \
    && apt-get -q install -y --no-install-recommends \
        libdnnl2 \
        libgomp1 \
        libhdf5-103-1 \
        libjpeg62-turbo \
        libpng16-16 \
        libdeflate0 \
        libssl3 \
        libstdc++6 \
        zlib1g \
    && rm -rf /var/lib/apt/lists/*

# A fixed UID/GID so volume permissions can be prepared on the host. The volume
# directories are created and owned before VOLUME declares them (changes after
# VOLUME would be discarded).
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin convlens \
    && install -d -o 10001 -g 10001 -m 0750 /var/cache/convlens \
    && install -d -m 0755 /models

# Least often changed first. Everything is owned by root and read only for the
# service user; it writes only to the cache volume.
COPY models/efficientnet_lite0.h5 models/efficientnet_lite0.json models/imagenet_classes.txt /app/models/
COPY config/convlens.yaml /app/config/
COPY public/ /app/public/
COPY --from=build /staging/convlens /staging/swift-backtrace-static /usr/local/bin/

# The service's own default address is 127.0.0.1, which inside a container is the
# container's private loopback: the published port would reach nothing. So the
# image listens on all the container's interfaces; -p decides what the host exposes.
# OMP_WAIT_POLICY=PASSIVE: OpenMP waiters sleep instead of spinning, which keeps a
# host shared with another busy process from slowing a request 25-fold, for ~7 ms
# more per forward pass when alone (Sources/convlens/WaitPolicy.swift; set here, the
# process need not re-execute itself to set it). ACTIVE suits a dedicated host.
ENV CONVLENS_SERVER_HOST=0.0.0.0 \
    CONVLENS_SERVER_PORT=8080 \
    CONVLENS_SERVER_PUBLIC_DIR=/app/public \
    CONVLENS_CACHE_DIR=/var/cache/convlens \
    CONVLENS_JOBS_SHUTDOWN_GRACE_SECONDS=8 \
    OMP_WAIT_POLICY=PASSIVE \
    SWIFT_BACKTRACE=enable=yes,sanitize=yes,threads=all,images=all,interactive=no,swift-backtrace=/usr/local/bin/swift-backtrace-static

# The bundled model is found as ./models/efficientnet_lite0.json, the config file
# as ./config/convlens.yaml: both relative to this directory.
WORKDIR /app
USER 10001:10001
VOLUME ["/models", "/var/cache/convlens"]
EXPOSE 8080

# Liveness on /healthz with bash's /dev/tcp (no curl in the image). Exit 1, never
# 2 (reserved by Docker), on any failure.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${CONVLENS_SERVER_PORT:-8080} && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q '\"status\":\"ok\"' <&3 || exit 1"]

# Exec form: convlens is PID 1 and receives SIGTERM itself (it handles it).
# Other subcommands work too: docker run --rm convlens predict --input ...
ENTRYPOINT ["/usr/local/bin/convlens"]
CMD ["serve"]
