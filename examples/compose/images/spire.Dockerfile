# SPIRE server and agent, statically linked (make demo-compose-images builds
# them from the version pinned in spire/tools). No shell: the compose file
# runs /spire-server or /spire-agent in exec form, health checks included.
FROM scratch
COPY rootfs/ /
LABEL org.opencontainers.image.title="svidgate compose demo: SPIRE" \
      org.opencontainers.image.source="examples/compose"
