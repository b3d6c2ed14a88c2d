# Diabetes status images from one file. Targets:
#   api          the prediction API with the model baked in (the default, last stage)
#   api-nomodel  the same API without a model: MODEL_URI names one at run time
#   ui           the Streamlit UI (talks to the API over HTTP, no LightGBM)
#
#   docker build --target api -t diabetes-api .            # needs artifacts/model (run `make train` first)
#   docker build --target api-nomodel -t diabetes-api:nomodel .
#   docker build --target ui -t diabetes-ui .
#   docker run --rm -p 8000:8000 --read-only --tmpfs /tmp diabetes-api
#   docker run --rm -p 8501:8501 --read-only --tmpfs /tmp -e API_URL=http://<api-host>:8000 diabetes-ui
#
# How the model gets into the API container, two ways:
#   1. Baked at build time (target `api`): the directory MODEL_DIR of the build context (default artifacts/model,
#      i.e. model.txt + manifest.json as written by `python -m ml.train --output artifacts/model`) is copied to
#      /app/artifacts/model, which is where MODEL_URI points by default. The image is self-contained and its digest
#      pins the model. MODEL_DIR must be a path the .dockerignore lets through (artifacts/model is).
#   2. Fetched at start (target `api-nomodel`, or `api` with MODEL_URI overridden): set MODEL_URI to
#      s3://bucket/prefix holding the model directory's files (boto3 is installed through the `s3` extra;
#      credentials come from the ECS task role or the pod's IRSA role). The service downloads it under /tmp, so
#      the root filesystem stays read-only; /ready answers 503 until the model is loaded. models:/name@alias URIs
#      need MLflow, which the image leaves out on purpose (~180 MB): export the champion to S3 or bake it.
#
# Build arguments:
#   BASE_IMAGE  a Debian-bookworm image with CPython 3.11 (`python3`, `python3 -m venv`, ca-certificates); default:
#               the `python-base` stage, python:3.11-slim-bookworm pinned by digest (buildah/podman without
#               BASE_IMAGE: add --skip-unused-stages=false, they miss that the default names a stage; BuildKit
#               resolves it). The builder and the runtime share it, so the venv's interpreter path exists in
#               both. The offline container test substitutes a debootstrap-made bookworm base.
#   UV_VERSION  uv is installed with pip from PyPI in the builder (not copied from an image on another registry),
#               so the file builds wherever PyPI is reachable. uv and pip's venv stay in the builder.
#   MODEL_DIR   see above.
# Behind a TLS-intercepting proxy, mount its CA bundle for the build only (never bake it in), e.g.
#   buildah bud -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro ...

ARG BASE_IMAGE=python-base

# The default base, pinned by digest (the multi-platform index of python:3.11-slim-bookworm as listed on 2026-08-25 in
# docker-library/repo-info, repos/python/remote/3.11-slim-bookworm.md, commit bc9bbb47: the Docker Official Images'
# own record of what they published). A stage of its own in a plain FROM line, so Dependabot's docker updates move
# the digest (it does not read ARG defaults); builds that pass BASE_IMAGE never use this stage.
FROM python:3.11-slim-bookworm@sha256:fe556eaffd0d96abd8685b83bb8a69addd0dc730fa193669a7df0d49ddcfac02 AS python-base

# ---------------------------------------------------------------------------------------------------------------
# Builder: uv and the lock. Dependencies only: the code is copied next to the venv, never installed into it
# (each image copies only the packages it runs; PYTHONPATH=/app makes them importable).
FROM ${BASE_IMAGE} AS builder
ARG UV_VERSION=0.13.9
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_NATIVE_TLS=1 \
    UV_PYTHON=python3 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/app/.venv
RUN --mount=type=cache,target=/root/.cache/pip \
    python3 -m venv /opt/uv \
    && /opt/uv/bin/pip install "uv==${UV_VERSION}"
WORKDIR /app
COPY pyproject.toml uv.lock ./

# The API: the project's runtime dependencies plus the `s3` extra, no dependency groups. The test suites that
# numpy, scipy, pandas and pyarrow ship inside their packages are never imported at run time (~50 MB each image).
FROM builder AS api-deps
RUN --mount=type=cache,target=/root/.cache/uv \
    /opt/uv/bin/uv sync --frozen --no-default-groups --extra s3 --no-install-project \
    && find /app/.venv/lib -depth -type d -name tests \
       \( -path '*/numpy/*' -o -path '*/scipy/*' -o -path '*/pandas/*' -o -path '*/pyarrow/*' \) -exec rm -rf {} +

# The UI: only its group.
FROM builder AS ui-deps
RUN --mount=type=cache,target=/root/.cache/uv \
    /opt/uv/bin/uv sync --frozen --only-group ui --no-install-project \
    && find /app/.venv/lib -depth -type d -name tests \
       \( -path '*/numpy/*' -o -path '*/scipy/*' -o -path '*/pandas/*' -o -path '*/pyarrow/*' \) -exec rm -rf {} +

# ---------------------------------------------------------------------------------------------------------------
# Runtime base: no compilers, no uv; an unprivileged user with a fixed uid (Kubernetes runAsNonRoot checks it),
# and no setuid/setgid programs left to escalate with. HOME is /tmp, the one writable path when the root
# filesystem is read-only.
FROM ${BASE_IMAGE} AS runtime
ENV PATH=/app/.venv/bin:${PATH} \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin app \
    && find / -xdev -type f -perm /6000 -exec chmod a-s {} +
WORKDIR /app

# ---------------------------------------------------------------------------------------------------------------
FROM runtime AS ui
COPY --from=ui-deps /app/.venv /app/.venv
COPY ml/__init__.py ml/schema.py ml/manifest.py ml/contract.py ml/
COPY frontend/ frontend/
RUN python -m compileall -q ml frontend
# API_URL (the prediction service's base URL) has no default on purpose: set it at run time. The upload limit (MB)
# is what the batch tab's 100,000 rows need (frontend/settings.py); Streamlit's default of 200 MB let one upload
# take the 512 MiB task down.
ENV STREAMLIT_SERVER_ADDRESS=0.0.0.0 \
    STREAMLIT_SERVER_PORT=8501 \
    STREAMLIT_SERVER_HEADLESS=true \
    STREAMLIT_SERVER_FILE_WATCHER_TYPE=none \
    STREAMLIT_SERVER_MAX_UPLOAD_SIZE=20 \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false
USER 10001:10001
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:' + os.environ['STREAMLIT_SERVER_PORT'] + '/_stcore/health', timeout=4)"]
CMD ["streamlit", "run", "frontend/app.py"]

# ---------------------------------------------------------------------------------------------------------------
FROM runtime AS api-nomodel
# LightGBM's wheel links the system OpenMP runtime. The base image fixes the Debian release and its security
# updates are wanted, so the package version is left to the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=api-deps /app/.venv /app/.venv
# Only what serving imports: the schema, the wire contract, the manifest and ml/inference (no training code).
COPY ml/__init__.py ml/schema.py ml/manifest.py ml/contract.py ml/
COPY ml/inference/ ml/inference/
COPY service/ service/
RUN python -m compileall -q ml service \
    && mkdir -p artifacts/model
# `python -m service` starts the server with every option from the service's settings (SERVICE_*, see
# docs/api-guide.md): its protocol with the head, body and idle-connection limits, the keep-alive (longer than the
# load balancer's idle timeout: 60 s for the API; an ALB shared with the UI idles 3600 s, then raise it above that),
# the work in flight, no `server` header, and a drain on SIGTERM (`/ready` 503 first) that fits ECS's and
# Kubernetes' 30 s stop timeout.
# OpenMP threads (a batch's scoring) sleep when idle instead of spinning: on a task's fraction of a core, spinning
# threads take the CPU the event loop needs (on a busy 2-core machine 150 rounds of training took 9.9 s, not 0.5 s).
# glibc serves allocations of 128 KiB or more (request bodies, their copies, a batch's arrays) with mmap and gives
# them back when freed: its default raises that threshold as large blocks are freed, and the heap then kept a flood's
# memory (260-290 MB resident after a flood of 2 MB batches, 150-170 MB with it; tests/benchmarks/batch_flood_memory.py).
ENV MODEL_URI=/app/artifacts/model \
    SERVICE_HOST=0.0.0.0 \
    SERVICE_PORT=8000 \
    OMP_WAIT_POLICY=PASSIVE \
    MALLOC_MMAP_THRESHOLD_=131072
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:' + os.environ['SERVICE_PORT'] + '/ready', timeout=4)"]
CMD ["python", "-m", "service"]

# ---------------------------------------------------------------------------------------------------------------
FROM api-nomodel AS api
ARG MODEL_DIR=artifacts/model
COPY ${MODEL_DIR}/ artifacts/model/
