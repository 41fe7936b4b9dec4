# The serving API image: its own small environment (FastAPI, SQLAlchemy, Redis client), no Spark or Airflow.
FROM python:3.11-slim-bookworm

ARG UV_VERSION=0.13.9
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/opt/middle-office:/opt/middle-office/serving

RUN pip install --no-cache-dir "uv==${UV_VERSION}" && uv venv --python /usr/local/bin/python3.11 "$VIRTUAL_ENV"

WORKDIR /opt/middle-office/serving
COPY serving/requirements.lock requirements.lock
RUN uv pip sync --no-cache requirements.lock

# The API imports the platform's shared modules (the OLTP models and migrations, the serving-store
# readers, the event contracts) and reads the contracts in schemas/: the repository's own files, laid out
# as in the repository (mo finds schemas/ beside itself), never a copy kept in serving/.
COPY mo /opt/middle-office/mo
COPY schemas /opt/middle-office/schemas
COPY serving/app app
RUN python -c "import app.main, app.cli" \
 && useradd --uid 50001 --no-create-home serving
USER serving

EXPOSE 8000
# --proxy-headers: the API sits behind a load balancer that terminates TLS. docker-compose.yml runs
# several workers (SERVING_WORKERS) with PROMETHEUS_MULTIPROC_DIR, so /metrics adds up every worker.
CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000", "--workers", "2", "--proxy-headers"]
