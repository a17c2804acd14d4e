# syntax=docker/dockerfile:1
# virt-exporter image: a build stage with the compiler for virt-proxy and the
# npm toolchain, and a slim runtime stage that runs as a non-root user.
#   docker build -t ghcr.io/virt-exporter/virt-exporter:0.1.0 .
#   buildah bud --pull=never -t ghcr.io/virt-exporter/virt-exporter:0.1.0 .
# (docs/running-in-a-container.md). No secret enters either stage: the build
# context is filtered by .dockerignore and nothing is fetched with credentials.

FROM debian:bookworm-slim AS build
ENV DEBIAN_FRONTEND=noninteractive
# force-unsafe-io: no fsync per file (this stage is thrown away), as the official
# Debian images do; ~400 packages, most of them Debian's npm.
RUN apt-get update \
 && apt-get install -y --no-install-recommends -o Dpkg::Options::=--force-unsafe-io gcc make libc6-dev libxen-dev npm nodejs ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# npm ci's install script compiles src/ and virt-proxy, so the sources come first.
COPY package.json package-lock.json .npmrc ./
COPY bin/ bin/
COPY native/ native/
COPY scripts/ scripts/
COPY tsconfig.json tsconfig.build.json ./
COPY src/ src/
# npm ci brings Node 22 (the `node` package), builds virt-proxy and compiles build/.
# Behind a TLS-intercepting proxy, give its CA as a build secret, which is
# mounted for this step only and never stored in a layer:
#   buildah bud --secret id=npm-ca,src=/path/to/proxy-ca.pem ...
#   docker build --secret id=npm-ca,src=/path/to/proxy-ca.pem ...
RUN --mount=type=secret,id=npm-ca \
    if [ -s /run/secrets/npm-ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm-ca; fi \
 && npm ci --no-audit --no-fund \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && mkdir -p /out/virt-exporter/native/build \
 && cp -a package.json package-lock.json bin /out/virt-exporter/ \
 && mv build node_modules /out/virt-exporter/ \
 && cp native/build/virt-proxy /out/virt-exporter/native/build/
ARG REVISION=unknown
ARG BRANCH=unknown
RUN node -e 'const fs=require("fs");const v=require("./package.json").version;fs.writeFileSync("/out/virt-exporter/build-info.json",JSON.stringify({version:v,revision:process.env.REVISION,branch:process.env.BRANCH})+"\n")'

FROM debian:bookworm-slim
# libstdc++6 is what the Node binary needs beyond libc (Debian's base has it,
# since apt needs it too; installed only if missing).
RUN { dpkg -s libstdc++6 >/dev/null 2>&1 \
      || { apt-get update && apt-get install -y --no-install-recommends libstdc++6 && rm -rf /var/lib/apt/lists/*; }; } \
 && groupadd --system --gid 9477 virt-exporter \
 && useradd --system --uid 9477 --gid virt-exporter --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin virt-exporter
COPY --from=build /out/virt-exporter /usr/lib/virt-exporter
USER 9477:9477
EXPOSE 9477
ENTRYPOINT ["/usr/lib/virt-exporter/bin/virt-exporter"]
CMD []
