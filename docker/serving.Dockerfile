# The serving API image: its own small environment (FastAPI, SQLAlchemy, Redis client), no Spark or Airflow.
FROM python:3.11-slim-bookworm

ARG UV_VERSION=0.13.9
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN pip install --no-cache-dir "uv==${UV_VERSION}" && uv venv --python /usr/local/bin/python3.11 "$VIRTUAL_ENV"

WORKDIR /opt/serving
COPY serving/requirements.lock requirements.lock
RUN uv pip sync --no-cache requirements.lock

COPY serving/app app
RUN useradd --uid 50001 --no-create-home serving
USER serving

EXPOSE 8000
# --proxy-headers: the API sits behind a load balancer that terminates TLS.
CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000", "--workers", "2", "--proxy-headers"]
