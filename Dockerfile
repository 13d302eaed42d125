# syntax=docker/dockerfile:1
#
# guard HTTP API (Flask on gunicorn, embedded by `guard serve`).
#
# Configuration is by environment variables only; nothing secret is baked into the image:
#   GUARD_REDIS_URL           redis:// or rediss:// URL of the store (required in production)
#   GUARD_ADMIN_TOKENS        comma-separated bearer tokens with the admin scope
#   GUARD_CLIENT_TOKENS       comma-separated bearer tokens with the client (lease) scope
#   GUARD_TOKENS_FILE         YAML of named, namespace-scoped tokens (SHA-256 digests only)
#   GUARD_METRICS_TOKEN       when set, /metrics needs this bearer token (or an admin token)
#   GUARD_MAX_WAITERS         acquires waiting per namespace and worker (default 64)
#   GUARD_BODY_TIMEOUT        seconds to receive a request body (default 10; then 408)
#   GUARD_NAMESPACE           default namespace (default: "default")
#   GUARD_WORKERS             gunicorn worker count
#   GUARD_CONFIG              path of a limits YAML re-applied at start and after a store reset
#   PROMETHEUS_MULTIPROC_DIR  prometheus_client multiprocess directory shared by the workers
#
# The image publishes gunicorn directly: outside a trusted network put a proxy or load
# balancer in front that terminates TLS and caps connections per client (docs/http.md,
# "Security model"); the Terraform module puts an ALB there.
#
#   docker build -t guard .
#   docker run -p 8000:8000 -e GUARD_REDIS_URL=redis://redis:6379/0 \
#     -e GUARD_ADMIN_TOKENS=... -e GUARD_CLIENT_TOKENS=... guard

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: one wheel for guard plus wheels for every runtime dependency -------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY guard ./guard
RUN pip wheel --wheel-dir /wheels ".[server,aws]"

# ---- runtime: installed from the wheels only, run as an unprivileged user ------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels "guard-concurrency[server,aws]"

RUN groupadd --system --gid 10001 guard \
 && useradd --system --uid 10001 --gid guard --no-create-home --shell /usr/sbin/nologin guard \
 && install -d -o guard -g guard -m 0700 /var/lib/guard/metrics

ENV GUARD_NAMESPACE=default \
    GUARD_WORKERS=2 \
    PROMETHEUS_MULTIPROC_DIR=/var/lib/guard/metrics

USER 10001:10001
WORKDIR /var/lib/guard
EXPOSE 8000

# slim has no curl: probe /healthz with the standard library.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; r = urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2); sys.exit(0 if r.status == 200 else 1)"]

ENTRYPOINT ["guard", "serve", "--bind", "0.0.0.0:8000"]
