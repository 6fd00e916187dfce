# The ipfix-collect container image: the collector service, as Kubernetes runs it.
#
# Two stages on the same slim Python base. The first installs the package from this checkout
# into a virtual environment at /opt/ipfix-collect (wheels only: every dependency ships one, so
# no compiler is needed) and then removes pip and setuptools from it. The second copies just
# that environment onto a fresh base: no pip cache, no build front end, no source tree.
#
# It runs as the unprivileged user 10001 (numeric, so Kubernetes can check runAsNonRoot), listens
# for IPFIX on 4739 over TCP and UDP and writes to stdout until told otherwise: every flag is an
# IPFIX_COLLECT_* variable (docs/collector.md). The only writable path it needs is
# /var/lib/ipfix-collect (state, dead-letter file), so the root filesystem can be read-only.
#
#   docker build -t ipfix-collect .                      # python:3.12-slim
#   docker build --build-arg BASE_IMAGE=python:3.13-slim -t ipfix-collect .
#
# Any Debian-like base with python3 >= 3.11 (and its venv module) and useradd will do; .ci/image.sh
# builds it with podman on a Debian 12 base made by mmdebstrap.
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build
# A CA bundle for networks whose TLS to the package index needs one (podman/docker build -v to
# mount it); only the build stage sees it.
ARG PIP_CERT
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ipfix_antrea ./ipfix_antrea
RUN python3 -m venv /opt/ipfix-collect \
 && /opt/ipfix-collect/bin/python -m pip install --no-cache-dir --disable-pip-version-check \
        '.[collector]' \
 && /opt/ipfix-collect/bin/python -m pip uninstall --yes --disable-pip-version-check pip setuptools \
 && /opt/ipfix-collect/bin/ipfix-collect --version

FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="ipfix-collect" \
      org.opencontainers.image.description="IPFIX collector for Antrea's flow records: IPFIX in, Logstash-shaped JSON documents out (Elasticsearch, JSON lines, stdout)" \
      org.opencontainers.image.source="https://github.com/ipfix-antrea/ipfix-antrea" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin ipfix-collect \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/ipfix-collect
COPY --from=build /opt/ipfix-collect /opt/ipfix-collect
ENV PATH=/opt/ipfix-collect/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    IPFIX_COLLECT_INPUT="tcp://0.0.0.0:4739 udp://0.0.0.0:4739"
WORKDIR /var/lib/ipfix-collect
USER 10001:10001
EXPOSE 4739/tcp 4739/udp
ENTRYPOINT ["ipfix-collect"]
