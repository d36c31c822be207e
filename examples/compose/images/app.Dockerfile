# svidgate, the sample services, the demo client and the health probe, all
# statically linked Go binaries (CGO_ENABLED=0). /audit is world-writable
# with the sticky bit so that a fresh named volume mounted there lets every
# gateway uid create its own trail.
FROM scratch
COPY rootfs/ /
LABEL org.opencontainers.image.title="svidgate compose demo: svidgate and sample workloads" \
      org.opencontainers.image.source="examples/compose"
