# Multi-stage build of rtnode. The build steps are the README's install
# steps; the runtime image holds the binary, its default configuration and
# nothing else.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo install --locked --path . --root /out

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/rtnode --shell /usr/sbin/nologin rtnode \
    && install -d -o rtnode -g rtnode -m 0750 /var/lib/rtnode
COPY --from=build /out/bin/rtnode /usr/local/bin/rtnode
COPY conf/rtnode.yaml /etc/rtnode/rtnode.yaml
COPY ae-titles.yaml /etc/rtnode/ae-titles.yaml
USER rtnode
VOLUME /var/lib/rtnode
EXPOSE 11112
ENTRYPOINT ["/usr/local/bin/rtnode"]
CMD ["serve", "--config", "/etc/rtnode/rtnode.yaml", "--peers", "/etc/rtnode/ae-titles.yaml", "--data-dir", "/var/lib/rtnode"]
