# syntax=docker/dockerfile:1
#
# The gateway image: `docker build -t llm-gateway .` from the repository root.
#
# Two stages: the builder turns the project and every dependency into wheels; the final stage
# installs those wheels on a clean slim base, so no compiler, header or pip cache reaches it.
# The same image runs the fake upstream (`docker run IMAGE fake-upstream --host 0.0.0.0`).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
# Most dependencies ship manylinux wheels; the compiler is here for the platforms where one
# does not (e.g. a new CPU architecture), and it stays in this stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY admin ./admin
# With the `otel` extra, so GATEWAY_OTEL_ENABLED=true works in the image.
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[otel]'

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=4000 \
    GATEWAY_WORKERS=1 \
    GATEWAY_DATA_DIR=/var/lib/gateway
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid gateway --home-dir /var/lib/gateway --create-home \
       --shell /usr/sbin/nologin gateway
# The wheels are bind-mounted for this one step, so they never become a layer of the image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels 'llm-gateway[otel]'
# A placeholder config with no models, so the image starts; mount the real one over it
# (compose: deploy/compose/gateway.yaml; Helm: the chart's ConfigMap).
RUN mkdir -p /etc/gateway && printf 'models: []\n' > /etc/gateway/config.yaml
USER 10001:10001
WORKDIR /var/lib/gateway
EXPOSE 4000
# slim has no curl: the standard library does the probe. Any non-2xx answer or no answer fails it.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('GATEWAY_PORT', '4000'), timeout=2)"]
# One process per container; GATEWAY_WORKERS raises it. SIGTERM drains for GATEWAY_DRAIN_SECONDS.
ENTRYPOINT ["gateway"]
CMD ["serve", "--config", "/etc/gateway/config.yaml"]
