# The payment service: gunicorn + Falcon on a slim Python, as a non-root user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY app.py gunicorn.conf.py ./
COPY payment/ payment/
COPY sql/ sql/
COPY schemas/ schemas/

RUN useradd --system --uid 10001 --no-create-home payment
USER 10001

EXPOSE 5004
# gunicorn.conf.py applies sql/schema.sql and creates the topics once, in the
# master, before the workers start.
CMD ["gunicorn", "app:app", "-c", "gunicorn.conf.py"]
