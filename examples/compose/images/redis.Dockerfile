# Debian's redis-server with exactly the shared libraries ldd lists for it and
# the dynamic loader, plus the static health probe. Built from the host's
# /usr/bin/redis-server (apt-get install redis-server).
FROM scratch
COPY rootfs/ /
LABEL org.opencontainers.image.title="svidgate compose demo: Redis" \
      org.opencontainers.image.source="examples/compose"
