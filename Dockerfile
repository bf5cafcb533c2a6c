# syntax=docker/dockerfile:1
# One image for every role: `serve` (a node, the default), `partner-sim`, `seed-demo`, `doctor`
# and the other `run.py` verbs:  docker run propdev <verb> [args]. See deploy/README.md.

# -- build: the project and its pinned dependencies into a virtualenv --------------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY propdev ./propdev
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install . \
 && /opt/venv/bin/python -m compileall -q /opt/venv

# -- run: no compiler, no pip cache, no root -------------------------------------------------
FROM python:3.11-slim
# A fixed, unprivileged uid/gid: volumes and Kubernetes' runAsUser/fsGroup name it.
RUN groupadd --system --gid 10001 propdev \
 && useradd --system --uid 10001 --gid propdev --no-create-home --shell /usr/sbin/nologin propdev \
 && install -d -o propdev -g propdev -m 0700 /var/lib/propdev
COPY --from=build /opt/venv /opt/venv
COPY run.py /app/run.py
WORKDIR /app
# The root file system is meant to be mounted read-only (compose `read_only: true`, Kubernetes
# `readOnlyRootFilesystem`): no .pyc written at run time, writes go to the data volume and /tmp.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PROPDEV_DATA_DIR=/var/lib/propdev \
    PROPDEV_HOST=0.0.0.0 \
    PROPDEV_PORT=8443
# The data volume: database (SQLite), PKI under pki/, keys under keys/. In production the
# master key comes from a mounted secret: PROPDEV_MASTER_KEY_FILE=/run/secrets/propdev_master_key
# (a file, mode 0400/0600, owned by uid 10001), never from the image.
VOLUME ["/var/lib/propdev"]
USER 10001:10001
EXPOSE 8443
# /healthz over HTTPS, trusting only the project CA (the node's certificate names localhost):
# Python is already in the image, curl is not (one package fewer to patch), and the check
# verifies the certificate instead of `curl -k`.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, ssl, urllib.request as r; ctx = ssl.create_default_context(cafile=os.environ['PROPDEV_DATA_DIR'] + '/pki/ca.pem'); r.urlopen('https://localhost:' + os.environ.get('PROPDEV_PORT', '8443') + '/healthz', context=ctx, timeout=4)"]
ENTRYPOINT ["python", "run.py"]
CMD ["serve"]
