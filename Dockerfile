# unipruning container image: the static pure-Go binary on an empty base.
#
# This machine's Docker has no registry (no `golang` builder image can be
# pulled), so the binary is built on the host and copied in:
#
#   make static                       # CGO_ENABLED=0 go build -trimpath -o bin/unipruning-static ./cmd/unipruning
#   docker build -t unipruning:dev .
#
# (deploy/compose-run.sh does both.) Where a registry is reachable, a
# builder stage can replace the first step:
#
#   FROM golang:1.26 AS build
#   WORKDIR /src
#   COPY . .
#   RUN CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o /unipruning ./cmd/unipruning
#   ... and below: COPY --from=build /unipruning /unipruning
#
# The image holds only the binary and three empty directories owned by the
# unprivileged user it runs as (named volumes mounted there inherit it):
#   /data  per-process state (Raft log and snapshots, NATS JetStream store)
#   /out   run output (the Γ store written by the finishing leader)
#   /tmp   scratch
# Job files refer to the model and calibration text as ../shared/data/...
# relative to the working directory /app: mount the data at /shared/data
# (read-only) and the configs at /app/configs.
FROM scratch
COPY --chown=65532:65532 deploy/docker/rootfs/ /
COPY bin/unipruning-static /unipruning
ENV TMPDIR=/tmp
WORKDIR /app
USER 65532:65532
# 4222 NATS clients, 7001 Raft, 9100 Prometheus metrics
EXPOSE 4222 7001 9100
ENTRYPOINT ["/unipruning"]
CMD ["--help"]
