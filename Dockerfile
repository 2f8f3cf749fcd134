# The payment service: gunicorn + Falcon on a slim Python, as a non-root user.
#
# The base image is pinned by digest: the same bytes on every build, whatever
# the tag points at now (docs/operations.md says how to move it). BASE_IMAGE
# names another image with the same layout (python and pip on PATH) for a
# build where no registry is reachable (deploy/local-base/build.sh).
ARG BASE_IMAGE=python:3.11-slim@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Every runtime package, transitive ones included, at the version locked and
# checked against its hash (`make lock` writes the file from requirements.txt).
COPY requirements.lock .
RUN pip install --require-hashes --no-deps -r requirements.lock

COPY app.py gunicorn.conf.py openapi.json ./
COPY payment/ payment/
COPY sql/ sql/
COPY schemas/ schemas/

RUN useradd --system --uid 10001 --no-create-home payment
USER 10001

EXPOSE 5004
# Liveness, not readiness: a database or broker outage is not cured by
# replacing the container, and /health/ready reports it already.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "payment", "healthcheck"]
# Applies the schema migrations and creates the topics once (`migrate`; not
# with MIGRATE_ON_START=false, where a release step runs `python -m payment
# migrate` first), then starts gunicorn with gunicorn.conf.py. On SIGTERM
# gunicorn stops accepting and lets requests in flight finish
# (graceful_timeout): compose gives it longer (stop_grace_period).
CMD ["python", "-m", "payment", "serve"]
