# registry-gateway container image.
#
# No base image is pulled: pass one that has python3 (>= 3.11), python3-venv and
# ca-certificates, e.g. a Debian 12 root filesystem made with debootstrap and `docker import`:
#
#   docker build --network host --build-arg BASE=local/debian:bookworm -t registry-gateway .
#   docker run --network host -v /srv/gateway:/etc/registry-gateway:ro registry-gateway
#
# The build installs the package and its dependencies from PyPI into a venv; the image runs
# as an unprivileged user and reads its config from /etc/registry-gateway/gateway.yaml.
# See docs/operations.md ("Container image").
ARG BASE

FROM ${BASE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md /src/
COPY gateway /src/gateway
RUN python3 -m venv /opt/registry-gateway \
    && /opt/registry-gateway/bin/pip install --no-compile /src \
    && /opt/registry-gateway/bin/python -m compileall -q /opt/registry-gateway/lib \
    && /opt/registry-gateway/bin/registry-gateway --help >/dev/null

FROM ${BASE}
# A fixed numeric uid, so `runAsNonRoot` checks and file ownership on mounts are predictable.
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin registry-gateway \
    && mkdir -p /etc/registry-gateway /var/log/registry-gateway \
    && chown registry-gateway:registry-gateway /var/log/registry-gateway
COPY --from=build /opt/registry-gateway /opt/registry-gateway
ENV PATH=/opt/registry-gateway/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    REGISTRY_GATEWAY_CONFIG=/etc/registry-gateway/gateway.yaml
USER 10001:10001
EXPOSE 5050
# REGISTRY_GATEWAY_HEALTHCHECK_URL overrides the URL (another port, https). Loopback only, so
# TLS is not verified: the certificate names the public host, not 127.0.0.1.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python3", "-c", "import os, ssl, urllib.request; c = ssl.create_default_context(); c.check_hostname = False; c.verify_mode = ssl.CERT_NONE; urllib.request.urlopen(os.environ.get('REGISTRY_GATEWAY_HEALTHCHECK_URL', 'http://127.0.0.1:5050/healthz'), timeout=4, context=c)"]
ENTRYPOINT ["registry-gateway"]
CMD ["serve"]
