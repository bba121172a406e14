# Multi-stage build of rtnode. The build steps are the README's install
# steps (and, with FEATURES=torch, the CI's: tests/setup-torch.sh, then a
# build against that libtorch); the runtime image holds the binary, its
# default configuration and, for torch, the libtorch it was linked with.
#
#   docker build -t rtnode .                              # body contour only
#   docker build --build-arg FEATURES=torch -t rtnode .   # TorchScript models
#
# With torch the image carries PyPI's torch==2.13.0 libraries (the CUDA 13
# build, about 4.7 GB): they run on the CPU, and on NVIDIA GPUs given to the
# container (`--gpus all`). The binary finds them through its RUNPATH, which
# is why they live at the same path in both stages.
ARG FEATURES=""

FROM rust:1-bookworm AS build
ARG FEATURES
RUN apt-get update && apt-get install -y --no-install-recommends cmake g++ python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ENV RTNODE_TORCH_VENV=/opt/rtnode-torch
RUN set -e; mkdir -p /opt/rtnode-torch; \
    if [ "$FEATURES" = "torch" ]; then \
      torch_env=$(bash tests/setup-torch.sh full); eval "$torch_env"; \
      cargo install --locked --path . --root /out --features torch; \
    else \
      cargo install --locked --path . --root /out; \
    fi

FROM debian:bookworm-slim
# The report's fonts (report.fonts): Latin, Greek, Cyrillic; Japanese,
# Korean, Chinese.
RUN apt-get update && apt-get install -y --no-install-recommends fonts-dejavu-core fonts-wqy-microhei \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --home /var/lib/rtnode --shell /usr/sbin/nologin rtnode \
    && install -d -o rtnode -g rtnode -m 0750 /var/lib/rtnode
COPY --from=build /opt/rtnode-torch /opt/rtnode-torch
COPY --from=build /out/bin/rtnode /usr/local/bin/rtnode
COPY conf/rtnode.yaml /etc/rtnode/rtnode.yaml
COPY ae-titles.yaml /etc/rtnode/ae-titles.yaml
USER rtnode
VOLUME /var/lib/rtnode
# DICOM, and DICOM over TLS when network.tls is configured; the HTTP API
# when http.address is set off loopback (which needs http.tls or
# http.behind_proxy, and a tokens file).
EXPOSE 11112 2762 8080
ENTRYPOINT ["/usr/local/bin/rtnode"]
CMD ["serve", "--config", "/etc/rtnode/rtnode.yaml", "--peers", "/etc/rtnode/ae-titles.yaml", "--data-dir", "/var/lib/rtnode"]
