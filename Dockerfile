# bft-node replica image. `docker compose up -d` builds it; see docs/ops.md.
#
# Build arguments:
#   BASE_IMAGE    any image with python3 (>= 3.11) and its venv module
#   INSTALL_FROM  index  - pip installs the package and its dependencies from your index
#                 wheels - offline: only the wheels in ./wheels of the build context
#                          (made first with `pip wheel . -w wheels/`)
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ARG INSTALL_FROM=index

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# The build context is cut down by .dockerignore to the package, deploy/docker and wheels/.
COPY . /src
RUN set -eu; \
    python3 -m venv /opt/venv; \
    case "$INSTALL_FROM" in \
        wheels) pip install --no-index --find-links /src/wheels bft-node ;; \
        index) pip install /src ;; \
        *) echo "INSTALL_FROM must be index or wheels, not '$INSTALL_FROM'" >&2; exit 2 ;; \
    esac; \
    mkdir -p /opt/bft /cluster /data; \
    cp /src/deploy/docker/healthcheck.py /src/deploy/docker/compose-init.py \
       /src/deploy/docker/run-replica.sh /opt/bft/; \
    chmod 0755 /opt/bft/run-replica.sh; \
    rm -rf /src; \
    useradd --system --uid 10001 --home-dir /data --no-create-home --shell /usr/sbin/nologin bft; \
    chown bft:bft /cluster /data; \
    bft-node --help >/dev/null

USER bft
WORKDIR /data
# Replicas: peers on 7000+I, HTTP (/metrics /status /healthz) on 9100+I.
EXPOSE 7000-7099 9100-9199

# Probes the replica named by $REPLICA_ID at the address its config gives it.
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python3", "/opt/bft/healthcheck.py"]

ENTRYPOINT ["bft-node"]
CMD ["--help"]
