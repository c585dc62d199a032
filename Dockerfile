# Starling in a container: a static binary on an empty (scratch) image, run as a non-root
# user, with the file store under the /data volume.
#
#   docker build -t starling .
#   docker run -d --name starling -p 4222:4222 -p 8222:8222 -v starling-data:/data \
#     --stop-timeout 30 starling
#
# Arguments given to `docker run` replace CMD, so keep `-m 8222` (the HEALTHCHECK probes it)
# and `--store file --dir /data` when adding others, e.g. with a configuration file:
#
#   docker run ... -v $PWD/starling.conf:/etc/starling/starling.conf:ro starling \
#     -c /etc/starling/starling.conf -m 8222 --store file --dir /data
#
# (command-line flags win over the file). SIGTERM shuts down gracefully within about ten
# seconds (Docker's default before SIGKILL); --stop-timeout 30 leaves a margin.

FROM golang:1.26 AS build
WORKDIR /src
# Modules first: this layer is reused while go.mod and go.sum do not change. go.mod replaces
# go.etcd.io/bbolt with ./third_party/bbolt, whose go.mod go mod download reads.
COPY go.mod go.sum ./
COPY third_party/bbolt/go.mod third_party/bbolt/
RUN go mod download
COPY . .
# CGO_ENABLED=0: a static binary that needs no libc in the final image.
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags="-s -w" -o /out/starling ./cmd/starling \
 && CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags="-s -w" -o /out/healthcheck ./cmd/healthcheck \
 && mkdir -p /out/data

FROM scratch
LABEL org.opencontainers.image.title="starling" \
      org.opencontainers.image.description="NATS and NATS Streaming compatible server" \
      org.opencontainers.image.source="https://github.com/starling-io/starling"
COPY --from=build /out/starling /out/healthcheck /usr/local/bin/
# The volume's mount point belongs to the user the server runs as: a new named volume
# starts with this owner (a bind mount keeps the host directory's: chown it to 65532).
COPY --from=build --chown=65532:65532 /out/data /data
# 65532: the conventional "nonroot" uid/gid (as distroless); scratch has no /etc/passwd.
USER 65532:65532
# 4222 clients, 6222 routes (with --cluster or a cluster block), 8222 HTTP monitoring.
EXPOSE 4222 6222 8222
VOLUME /data
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/healthcheck", "-timeout", "3s", "http://127.0.0.1:8222/healthz"]
ENTRYPOINT ["/usr/local/bin/starling"]
CMD ["-m", "8222", "--store", "file", "--dir", "/data"]
