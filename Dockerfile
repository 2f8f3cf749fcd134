# The payment service: gunicorn + Falcon on a slim Python, as a non-root user.
# The same image runs the sandbox ordering service in docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

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
# migrate` first), then starts gunicorn with gunicorn.conf.py.
CMD ["python", "-m", "payment", "serve"]
